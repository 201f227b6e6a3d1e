import pytest
import timm
import torch

import ascan
from ascan.profile import count_macs, count_params
from tests.ascan.conftest import CLASSIFIERS, REAL_CLASSIFIERS, built

ASYMMETRIC = [n for n in CLASSIFIERS if not n.endswith("_sym")]
SYMMETRIC = [n for n in CLASSIFIERS if n.endswith("_sym")]


def c_fraction(layouts):
    return [layout.count("C") / len(layout) for layout in layouts]


def test_registry_has_the_documented_variants():
    names = set(ascan.list_models())
    assert {"ascan_t", "ascan_b", "ascan_l", "ascan_t_sym", "ascan_b_sym", "ascan_l_sym"} <= names
    assert ascan.list_models("ascan_?_sym") == ["ascan_b_sym", "ascan_l_sym", "ascan_t_sym"]


def test_create_model_overrides_and_errors():
    m = ascan.create_model("ascan_nano", num_classes=7, drop_path=0.1)
    assert m.head.out_features == 7 and m.cfg.drop_path == 0.1
    with pytest.raises(TypeError, match="unknown config field"):
        ascan.create_model("ascan_nano", num_clases=7)
    with pytest.raises(KeyError, match="unknown AsCAN variant"):
        ascan.create_model("ascan_zz")


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_param_count_matches_registry(name):
    m = ascan.create_model(name, device="meta")
    assert count_params(m) == pytest.approx(ascan.get_config(name).params_m * 1e6, rel=5e-3)


@pytest.mark.parametrize("name", ASYMMETRIC)
def test_layout_is_asymmetric(name):
    frac = c_fraction(ascan.get_config(name).layouts)
    assert frac[0] > 0.5 > frac[-1], f"{name}: first stage must be C-heavy, last T-heavy: {frac}"
    assert all(a >= b for a, b in zip(frac, frac[1:])), f"{name}: C share must not grow with depth: {frac}"


@pytest.mark.parametrize("name", SYMMETRIC)
def test_symmetric_baseline_matches_its_asymmetric_variant(name):
    sym, asym = ascan.get_config(name), ascan.get_config(name.removesuffix("_sym"))
    assert all(layout.count("C") == layout.count("T") for layout in sym.layouts)
    assert sym.widths == asym.widths
    assert sym.params_m == pytest.approx(asym.params_m, rel=0.01)  # equal params for the ablation


def test_ascan_t_has_no_more_macs_than_coatnet_0():
    x = torch.empty(1, 3, 224, 224, device="meta")
    with torch.device("meta"):
        coatnet = timm.create_model("coatnet_0_224", pretrained=False)
    assert count_macs(ascan.create_model("ascan_t", device="meta"), x) <= count_macs(coatnet, x)


@pytest.mark.parametrize("name", REAL_CLASSIFIERS)
def test_forward_backward_reaches_every_parameter(name):
    m = built(name).train()
    m.zero_grad(set_to_none=True)
    out = m(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 1000)
    assert torch.isfinite(out).all()
    out.logsumexp(-1).mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in m.parameters())


@pytest.mark.parametrize("name", REAL_CLASSIFIERS)
def test_channels_last_and_bf16_autocast(name):
    m = built(name).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = m(x)
        cl = m.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
        m.to(memory_format=torch.contiguous_format)
        assert torch.allclose(cl, ref, atol=1e-4, rtol=1e-3)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = m(x)
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    rel = (low.float() - ref).norm() / ref.norm()
    assert rel < 0.1, f"bf16 output is {rel:.3f} away from fp32"


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_meta_forward_shape_any_size(name):
    m = ascan.create_model(name, device="meta")
    assert m(torch.empty(1, 3, 96, 160, device="meta")).shape == (1, 1000)
