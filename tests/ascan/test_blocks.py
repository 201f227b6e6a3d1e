import inspect

import pytest
import torch

from ascan.blocks import BlockCfg, CBlock, Stage, TBlock, check_layout


def test_same_constructor_and_forward_shape():
    assert inspect.signature(CBlock.__init__) == inspect.signature(TBlock.__init__)
    assert inspect.signature(CBlock.forward) == inspect.signature(TBlock.forward)


@pytest.mark.parametrize("block", [CBlock, TBlock])
@pytest.mark.parametrize("stride,in_dim,out_dim", [(1, 16, 16), (2, 16, 32), (1, 32, 16)])
def test_stride_and_width_change(block, stride, in_dim, out_dim):
    m = block(in_dim, out_dim, stride, BlockCfg(head_dim=8), cond_dim=12, ctx_dim=10)
    x = torch.randn(2, in_dim, 8, 12)
    y = m(x, cond=torch.randn(2, 12), ctx=torch.randn(2, 5, 10))
    assert y.shape == (2, out_dim, 8 // stride, 12 // stride)
    assert torch.isfinite(y).all()


def test_t_block_cross_attention_respects_mask():
    torch.manual_seed(0)
    m = TBlock(16, 16, 1, BlockCfg(head_dim=8), ctx_dim=6).eval()
    x, ctx = torch.randn(2, 16, 4, 4), torch.randn(2, 5, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    y = m(x, ctx=ctx, ctx_mask=mask)
    ctx2 = ctx.clone()
    ctx2[~mask] = 100.0  # padding changes: output must not
    assert torch.allclose(y, m(x, ctx=ctx2, ctx_mask=mask), atol=1e-5)
    ctx2[0, 0] = 100.0  # a real token changes: output must
    assert not torch.allclose(y, m(x, ctx=ctx2, ctx_mask=mask), atol=1e-3)
    # A row with no real token attends to everything instead of producing NaN.
    assert torch.isfinite(m(x, ctx=ctx, ctx_mask=torch.zeros(2, 5, dtype=torch.bool))).all()


def test_c_block_timestep_modulation_changes_output():
    torch.manual_seed(0)
    m = CBlock(8, 8, 1, BlockCfg(norm="group"), cond_dim=4).eval()
    x = torch.randn(1, 8, 6, 6)
    assert not torch.allclose(m(x, cond=torch.zeros(1, 4)), m(x, cond=torch.ones(1, 4)))


@pytest.mark.parametrize("layout", ["", "TC", "CTC", "CX"])
def test_bad_layouts_rejected(layout):
    with pytest.raises(ValueError):
        check_layout(layout)


def test_stage_builds_layout_in_order():
    s = Stage(8, 16, "CCT", 2, BlockCfg(head_dim=8))
    assert [type(b).__name__ for b in s.blocks] == ["CBlock", "CBlock", "TBlock"]
    assert s(torch.randn(1, 8, 8, 8)).shape == (1, 16, 4, 4)
