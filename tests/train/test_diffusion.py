"""The sampler and EMA defaults a diffusion researcher checks first: no clipping of latents,
sampling that starts at the last training timestep, an EMA that warms up."""

from __future__ import annotations

import pytest
import torch

from train.config import DiffusionConfig
from train.diffusion import ema_decay_at, make_sampler, make_scheduler, update_ema


@pytest.mark.parametrize("sampler", ["ddim", "dpm"])
def test_samplers_never_clip_latents_and_start_at_the_last_timestep(sampler):
    cfg = DiffusionConfig(sampler=sampler)
    train_sched = make_scheduler(cfg)
    assert train_sched.config.clip_sample is False
    s = make_sampler(cfg, train_sched)
    s.set_timesteps(10)
    assert int(s.timesteps[0]) == cfg.num_train_timesteps - 1  # "leading" spacing would start at 900
    # A latent whose predicted x0 is 3 (SD-VAE latents reach that): one step must move toward
    # 3 * sqrt(alpha_bar_prev), not toward the clipped 1.
    t = s.timesteps[0]
    abar = train_sched.alphas_cumprod[int(t)]
    x_t = torch.full((1, 4, 2, 2), 3.0) * abar.sqrt()
    eps = torch.zeros_like(x_t)
    prev = s.step(eps, t, x_t).prev_sample
    prev_abar = train_sched.alphas_cumprod[int(s.timesteps[1])]
    assert torch.allclose(prev, torch.full_like(prev, 3.0) * prev_abar.sqrt(), rtol=1e-3)


def test_ema_warms_up_then_holds_its_decay():
    assert ema_decay_at(0, 0.9999) == pytest.approx(0.1)
    assert ema_decay_at(10, 0.9999) == pytest.approx(11 / 20)
    assert ema_decay_at(5000, 0.9999) == pytest.approx(5001 / 5010)
    assert ema_decay_at(10**7, 0.9999) == 0.9999
    # After 5000 updates toward a fixed target, the warmed-up EMA is ~all target; a fixed
    # 0.9999 would still hold 61 % of the initial weights.
    ema, model = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with torch.no_grad():
        ema.weight.fill_(0.0)
        model.weight.fill_(1.0)
    for n in range(1, 5001):
        update_ema(ema, model, ema_decay_at(n, 0.9999))
    assert ema.weight.min() > 0.99
    assert 0.9999**5000 > 0.6


def test_update_ema_is_the_weighted_mean():
    ema, model = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    expected = [0.9 * e + 0.1 * p for e, p in zip(ema.parameters(), model.parameters())]
    update_ema(ema, model, 0.9)
    for e, want in zip(ema.parameters(), expected):
        assert torch.allclose(e, want.detach())
