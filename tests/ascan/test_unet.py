import pytest
import torch

import ascan
from ascan.profile import count_params
from ascan.unet import load_classifier_weights, timestep_embedding
from tests.ascan.conftest import REAL_UNETS, UNETS, built


def inputs(cfg, b=2, h=16, w=40, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, cfg.in_channels, h, w, generator=g).to(device)
    t = torch.tensor([10.0, 700.0][:b]).to(device)
    txt = torch.randn(b, 7, cfg.text_dim, generator=g).to(device)
    return x, t, txt


@pytest.mark.parametrize("name", UNETS)
def test_param_count_matches_registry(name):
    m = ascan.create_model(name, device="meta")
    assert count_params(m) == pytest.approx(ascan.get_config(name).params_m * 1e6, rel=5e-3)


def test_tiny_is_tiny_and_xl_is_paper_scale():
    assert count_params(ascan.create_model("ascan_unet_tiny", device="meta")) < 1e6
    assert count_params(ascan.create_model("ascan_unet_xl", device="meta")) == pytest.approx(2.4e9, rel=0.05)


@pytest.mark.parametrize("name", UNETS)
def test_layout_c_heavy_high_res_t_heavy_low_res(name):
    m = ascan.create_model(name, device="meta")
    kinds = [[type(b).__name__[0] for b in stage.blocks] for stage in m.down]
    c_share = [k.count("C") / len(k) for k in kinds]
    assert c_share[0] > 0.5 > c_share[-1] and c_share == sorted(c_share, reverse=True)
    assert [type(b).__name__ for b in m.mid.blocks] == ["TBlock"] * len(m.mid.blocks)
    # The up path mirrors the down path: same layouts, reversed stage order.
    assert [[type(b).__name__[0] for b in s.blocks] for s in m.up] == kinds


@pytest.mark.parametrize("name", UNETS)
def test_meta_forward_keeps_shape_odd_aspect(name):
    cfg = ascan.get_config(name)
    m = ascan.create_model(name, device="meta")
    x, t, txt = inputs(cfg, device="meta")
    assert m(x, t, txt).shape == x.shape


@pytest.mark.parametrize("name", REAL_UNETS)
def test_forward_backward_reaches_every_parameter(name):
    m = built(name).train()
    m.zero_grad(set_to_none=True)
    x, t, txt = inputs(m.cfg, h=16, w=24)
    out = m(x, t, txt)
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing[:5]}"


@pytest.mark.parametrize("h,w", [(16, 40), (40, 16), (8, 8), (24, 56)])
def test_any_size_divisible_by_8(h, w):
    m = built("ascan_unet_tiny").eval()
    x, t, txt = inputs(m.cfg, h=h, w=w)
    with torch.no_grad():
        y = m(x, t, txt)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_size_not_divisible_raises():
    m = built("ascan_unet_tiny")
    x, t, txt = inputs(m.cfg, h=12, w=16)
    with pytest.raises(ValueError, match="divisible by 8"):
        m(x, t, txt)


def test_output_depends_on_timestep_and_text():
    m = built("ascan_unet_tiny").eval()
    x, t, txt = inputs(m.cfg)
    with torch.no_grad():
        y = m(x, t, txt)
        assert not torch.allclose(y, m(x, t + 100, txt), atol=1e-4)
        assert not torch.allclose(y, m(x, t, torch.randn_like(txt)), atol=1e-4)
        # A scalar timestep broadcasts over the batch.
        assert torch.allclose(m(x, 10.0, txt)[0], y[0], atol=1e-5)


def test_text_mask_hides_padding():
    m = built("ascan_unet_tiny").eval()
    x, t, txt = inputs(m.cfg)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[0, 3:] = False
    with torch.no_grad():
        y = m(x, t, txt, mask)
        txt2 = txt.clone()
        txt2[0, 3:] = 50.0  # change only padded tokens
        assert torch.allclose(y, m(x, t, txt2, mask), atol=1e-5)
        assert not torch.allclose(y, m(x, t, txt2), atol=1e-4)  # without the mask they matter


def test_channels_last_bf16_and_checkpointing():
    m = built("ascan_unet_tiny").eval()
    x, t, txt = inputs(m.cfg)
    with torch.no_grad():
        ref = m(x, t, txt)
        cl = m.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last), t, txt)
        m.to(memory_format=torch.contiguous_format)
        assert torch.allclose(cl, ref, atol=1e-4, rtol=1e-3)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = m(x, t, txt)
    assert torch.isfinite(low).all()
    assert (low.float() - ref).norm() / ref.norm() < 0.1
    # Gradient checkpointing gives the same gradients.
    m.train()
    grads = []
    for ckpt in (False, True):
        m.set_grad_checkpointing(ckpt)
        m.zero_grad()
        m(x, t, txt).square().mean().backward()
        grads.append(m.conv_in.weight.grad.clone())
    m.set_grad_checkpointing(False)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


@pytest.mark.parametrize("c_norm", ["batch", "group"])
def test_classifier_weights_warm_start_down_path(c_norm):
    torch.manual_seed(1)
    cls = ascan.create_model("ascan_nano", c_norm=c_norm)
    with torch.no_grad():  # make every tensor distinct from the UNet's own init
        for p in cls.parameters():
            p.add_(torch.randn_like(p))
    unet = ascan.create_model("ascan_unet_tiny")
    src_sd = cls.state_dict()
    copied = load_classifier_weights(unet, src_sd)
    dst_sd = unet.state_dict()
    for src, dst in copied:
        assert src.startswith("stages.") and dst == "down." + src.removeprefix("stages.")
        assert torch.equal(dst_sd[dst], src_sd[src])
    # Every classifier stage parameter lands in the UNet (only BN running stats stay behind).
    stage_params = {n for n, _ in cls.named_parameters() if n.startswith("stages.")}
    assert {src for src, _ in copied} == stage_params
    # ...and nothing outside the down path changed.
    assert all(dst.startswith("down.") for _, dst in copied)


def test_warm_start_preserves_the_classifier_function():
    """At step 0 the copied down stages compute the classifier's stages on the same input,
    whatever the timestep and text: the layers added around them start as no-ops. Stage 0
    runs at stride 1 in the UNet (the latent is already 8x down) and 2 in the classifier, so
    the comparison is exact from stage 1 on; the UNet's output starts at zero."""
    torch.manual_seed(2)
    cls = ascan.create_model("ascan_nano", c_norm="group").eval()
    with torch.no_grad():
        for p in cls.parameters():
            p.add_(0.5 * torch.randn_like(p))
    unet = ascan.create_model("ascan_unet_tiny").eval()
    load_classifier_weights(unet, cls.state_dict())
    x, t, txt = inputs(unet.cfg, h=16, w=16)
    with torch.no_grad():
        cond = unet.time_embed(timestep_embedding(t, unet.cfg.freq_dim))
        assert cond.abs().sum() > 0
        for i in range(1, len(unet.down)):
            feats = torch.randn(2, cls.cfg.widths[i - 1], 16, 16)  # stage i's input width
            want = cls.stages[i](feats)
            got = unet.down[i](feats, cond, txt, None)
            assert torch.allclose(got, want, atol=1e-5), i
        assert torch.equal(unet(x, t, txt), torch.zeros_like(x))
    added = [n for n, p in unet.named_parameters() if n.endswith(("mod.1.weight", "cross_attn.proj.weight"))]
    assert added and all(not unet.get_parameter(n).any() for n in added)


def test_warm_start_from_ddp_checkpoint_and_wrong_variant():
    cls_sd = {"module." + k: v for k, v in ascan.create_model("ascan_nano").state_dict().items()}
    assert load_classifier_weights(ascan.create_model("ascan_unet_tiny"), cls_sd)
    with pytest.raises(ValueError, match="does not match"):
        load_classifier_weights(ascan.create_model("ascan_unet_tiny"), ascan.create_model("ascan_t").state_dict())
    with pytest.raises(ValueError, match="no classifier weights"):
        load_classifier_weights(ascan.create_model("ascan_unet_tiny"), {"head.weight": torch.zeros(1)})


@pytest.mark.parametrize("name", UNETS)
def test_every_unet_can_warm_start_from_its_classifier(name):
    unet = ascan.create_model(name, device="meta")
    cls = ascan.create_model(unet.cfg.classifier, device="meta")
    copied = load_classifier_weights(unet, cls.state_dict())
    assert len(copied) == sum(1 for n, _ in cls.named_parameters() if n.startswith("stages."))
