"""The stage-0 VAE task on real photos (scikit-image's), split BY PHOTO: a few hundred Adam
steps on 32 px crops of the training photos must lift PSNR on photos it never saw; the loss
is a function of the generator's state; the export loads back through load_vae with a
scaling factor that gives unit-std latents."""

from __future__ import annotations

import json
import time

import pytest
import torch

from filter_dev.photos import load_rgb, skimage_photos
from tests.train.conftest import tiny_config
from train import checkpoint as ckpt_io
from train.config import VAEConfig, parse_config
from train.encoders import load_vae, scaling_factor
from train.vae_task import VAETask, psnr

HELD_OUT = ("chelsea", "coffee", "rocket", "moon")  # natural photos, none a view of a training photo
SIDE, BATCH, STEPS = 32, 8, 200


def _photos(held_out: bool) -> list[torch.Tensor]:
    """(3, H, W) in [-1, 1], downscaled to 128 px so a 32 px crop still holds some of the scene."""
    return [torch.from_numpy(load_rgb(p, 128).copy()).permute(2, 0, 1).float() / 127.5 - 1
            for p in skimage_photos() if (p.stem in HELD_OUT) == held_out]


def _crop_batches(photos, gen: torch.Generator):
    """Endless batches of random crops, shaped like train/data.py's."""
    while True:
        crops = []
        for _ in range(BATCH):
            im = photos[int(torch.randint(len(photos), (1,), generator=gen))]
            y, x = (int(torch.randint(n - SIDE + 1, (1,), generator=gen)) for n in im.shape[1:])
            crops.append(im[:, y:y + SIDE, x:x + SIDE])
        yield {"pixels": torch.stack(crops), "size": BATCH}


def _tiles(photos) -> list[dict]:
    """Every non-overlapping 32 px tile of the held-out photos, in batches."""
    tiles = torch.cat([im.unfold(1, SIDE, SIDE).unfold(2, SIDE, SIDE).permute(1, 2, 0, 3, 4).reshape(-1, 3, SIDE, SIDE)
                       for im in photos])
    return [{"pixels": tiles[i:i + BATCH], "size": len(tiles[i:i + BATCH])} for i in range(0, len(tiles), BATCH)]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vae_task")
    raw = tiny_config(tmp / "out", tmp / "vae")
    raw["stages"] = {0: {"task": "vae", "data": {"train": str(tmp / "unused")}, "resolution": SIDE, "batch_size": BATCH,
                         "max_steps": STEPS, "lr": 1e-3, "val_batches": 100}}
    return parse_config(raw)


@pytest.fixture(scope="module")
def trained(cfg):
    """-> (task, held-out PSNR before, after): plain Adam on the task's loss, as stage.py runs it."""
    task = VAETask(cfg, cfg.stages[0], "cpu")
    val = _tiles(_photos(held_out=True))

    def held_out_psnr():
        task.model.eval()
        sums = task.evaluate(task.model, val)
        task.model.train()
        return float(sums["psnr_sum"] / sums["count"])

    before, start = held_out_psnr(), time.perf_counter()
    opt = torch.optim.Adam(task.model.parameters(), lr=cfg.stages[0].lr)
    noise, batches = torch.Generator().manual_seed(0), _crop_batches(_photos(held_out=False), torch.Generator().manual_seed(1))
    for _ in range(STEPS):
        loss = task.loss(task.model, next(batches), noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = held_out_psnr()
    print(f"held-out PSNR {before:.2f} dB -> {after:.2f} dB after {STEPS} steps ({time.perf_counter() - start:.1f} s)")
    return task, before, after


def test_training_lifts_held_out_psnr(trained):
    task, before, after = trained
    # Measured: 12.8 dB untrained -> 21.3-21.9 dB after 200 steps (held-out tiles, posterior mean).
    assert after > before + 5, (before, after)
    assert task.model.config.block_out_channels == [16, 32, 32] and task.pixel_multiple == 4


def test_loss_is_a_function_of_the_generator(cfg):
    task = VAETask(cfg, cfg.stages[0], "cpu")
    batch = next(_crop_batches(_photos(held_out=False), torch.Generator().manual_seed(2)))
    with torch.no_grad():
        first, again = (task.loss(task.model, batch, torch.Generator().manual_seed(7)) for _ in range(2))
        other = task.loss(task.model, batch, torch.Generator().manual_seed(8))
    assert float(first) == float(again)
    assert float(first) != float(other)  # the posterior sample really comes from `gen`
    json.dumps(task.describe())  # checkpoints store it in state.json


def test_export_loads_back_with_unit_std_latents(trained, tmp_path):
    task, _, _ = trained
    path = tmp_path / "vae"
    load_vae(VAEConfig(path=str(path), init_config=task.cfg.vae.init_config))  # the random VAE a T2I stage left there
    photos = _photos(held_out=False)
    report = task.export(task.model, _crop_batches(photos, torch.Generator().manual_seed(3)), path, max_batches=8)
    print("export:", report)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae"]  # nothing left beside it

    auto = VAEConfig(path=str(path), scaling_factor="auto")
    vae = load_vae(auto)
    assert vae.config.scaling_factor == pytest.approx(1 / report["latent_std"]) == report["scaling_factor"]
    assert scaling_factor(auto, vae) == vae.config.scaling_factor  # what the T2I stages multiply latents by
    for name, tensor in task.model.state_dict().items():
        assert torch.equal(vae.state_dict()[name], tensor), name  # the trained weights, not the random ones
    # Other training crops than the ones measured: unit std after scaling, within sampling error.
    pixels = torch.cat([next(_crop_batches(photos, torch.Generator().manual_seed(4)))["pixels"] for _ in range(4)])
    with torch.no_grad():
        latents = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
    print(f"scaled latent std on other training crops: {float(latents.std()):.3f}")
    assert 0.8 < float(latents.std()) < 1.25, float(latents.std())


def test_init_from(trained, cfg, tmp_path):
    task, _, _ = trained
    ckpt_io.save_weights(task.model, tmp_path / "model.safetensors")
    fresh = VAETask(cfg, cfg.stages[0], "cpu")
    with pytest.raises(ValueError, match="cannot start from a classify checkpoint.*init_from: none"):
        fresh.init_from(tmp_path, "classify")
    message, names = fresh.init_from(tmp_path, "vae")
    assert len(names) == len(task.model.state_dict()) and "loaded the VAE" in message
    assert all(torch.equal(fresh.model.state_dict()[n], task.model.state_dict()[n]) for n in names)


def test_psnr_per_image():
    a = torch.zeros(2, 3, 4, 4)
    b = a.clone()
    b[1] += 0.1  # MSE 0.01 -> 20 dB; image 0 identical -> the 100 dB floor
    assert psnr(a, b).tolist() == pytest.approx([100.0, 20.0])
