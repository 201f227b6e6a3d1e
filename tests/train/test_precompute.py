"""Precomputed latents (train/precompute.py, `stages.N.data.latents`): the loss from stored
latents equals the loss from online encoding for the same noise and timesteps; the trainer
reads them with no encoder forward in the step; a mismatch with the stage fails naming both
sides; a killed precompute resumes, skipping the shards it finished."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.train.conftest import ROOT, SUBPROCESS_ENV, tiny_config, write_config
from train.config import parse_config
from train.data import DataError, make_loader
from train.latents import decode_latents
from train.precompute import precompute


def _cfg(out, vae_dir, shards, latents):
    cfg = tiny_config(out, vae_dir, shards=shards)
    cfg["stages"] = {2: {**cfg["stages"][2], "init_from": "none", "max_steps": 3, "checkpoint_every": 100}}
    cfg["stages"][2]["data"].update(latents=str(latents), val_holdout_shards=0, num_workers=0)
    cfg["diffusion"]["caption_dropout"] = 0.5  # both paths drop captions, to their empty-caption embedding
    cfg["logging"].update(sample_prompts=["astronaut"], sample_seeds=1, sample_guidance_scales=[2.0])
    return cfg


@pytest.fixture(scope="module")
def latents(tmp_path_factory, shards, vae_dir):
    out = tmp_path_factory.mktemp("latents")
    cfg = _cfg(out, vae_dir, shards, out / "latents")
    assert precompute(parse_config(cfg), 2, None, None) == 0
    return cfg, out / "latents"


def _batch(source, kind):
    loader = make_loader([str(source)], kind, task="t2i", train=False, batch_size=4, bucket_table=[(64, 64)], seed=0,
                         rank=0, world=1, num_workers=0, max_upscale=1.0)
    return next(iter(loader))


def test_loss_from_latents_equals_online_loss(latents, shards):
    from train.tasks import T2ITask

    cfg_dict, folder = latents
    cfg = parse_config(cfg_dict)
    task = T2ITask(cfg, cfg.stages[2], "cpu")
    task.model.eval()
    with torch.no_grad():  # open the zero-initialised paths: the prediction then depends on latents and text
        torch.manual_seed(1)
        for p in task.model.parameters():
            if not p.any():
                p.normal_(0, 0.05)
    online, stored = _batch(shards / "00000.tar", "shards"), _batch(folder / "00000.tar", "latents")
    assert stored["keys"] == online["keys"] and stored["size"] == 4  # keyed like the source, same order

    def loss(batch, seed):
        with torch.no_grad():
            return float(task.loss(task.model, batch, torch.Generator().manual_seed(seed)))

    want = [loss(online, s) for s in range(4)]  # 4 seeds x 4 captions at p 0.5: some dropped, some kept
    encoded_empty = task.empty_caption()
    task.use_latents(folder)
    assert torch.allclose(task.empty_caption()[0], encoded_empty[0], atol=2e-3)
    got = [loss(stored, s) for s in range(4)]
    assert got == pytest.approx(want, rel=5e-5)  # float16 storage: measured ~5e-6
    # The tolerance discriminates: another sample's latent, or another caption, moves the loss by more.
    def moved(key):
        other = {**stored, key: stored[key].flip(0)}
        return [abs(loss(other, s) - w) / w for s, w in enumerate(want)]

    assert min(moved("mean")) > 5e-4
    assert max(moved("tokens")) > 1e-4  # seeds that drop most captions hardly see the text


def test_trainer_reads_latents_without_encoders(latents, tmp_path, monkeypatch):
    from diffusers import AutoencoderKL

    from train.stage import train
    from train.tasks import T2ITask

    def forbidden(*args, **kwargs):
        raise AssertionError("the step encoded images although the latents are precomputed")

    monkeypatch.setattr(AutoencoderKL, "encode", forbidden)
    monkeypatch.setattr(T2ITask, "encode", forbidden)
    cfg_dict, folder = latents
    assert train(parse_config({**cfg_dict, "out_dir": str(tmp_path)}), 2, tmp_path, resume=False, max_steps=None) == 0
    rows = [json.loads(line) for line in (tmp_path / "stage2" / "metrics_rank0.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and all(r["loss"] > 0 for r in rows)
    assert f"training on precomputed latents: 4 shards in {folder}" in (tmp_path / "stage2" / "train.log").read_text()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["complete"] and manifest["totals"]["samples"] == 13 and manifest["resolution"] == 64


@pytest.mark.parametrize("change, sides", [
    (lambda c: c["text_encoder"].update(max_length=8), ("'max_length': 16", "'max_length': 8")),
    (lambda c: c["stages"][2].update(resolution=32), ("resolution: latents have 64, the stage has 32",)),
])
def test_latents_that_do_not_fit_the_stage_fail_naming_both_sides(latents, tmp_path, change, sides):
    from train.stage import train

    cfg_dict, folder = latents
    cfg = copy.deepcopy(cfg_dict)
    change(cfg)
    with pytest.raises(DataError) as err:
        train(parse_config(cfg), 2, tmp_path, resume=False, max_steps=None)
    assert "stages.2.data.latents" in str(err.value) and "train/precompute.py" in str(err.value)
    for side in sides:
        assert side in str(err.value)


def _one_sample_shards(shards, dst):
    """The pipeline's shards split to one sample each: enough shards to kill a run between two."""
    import webdataset as wds

    dst.mkdir()
    i = 0
    for rec in wds.tarfile_to_samples()(iter({"url": str(p)} for p in sorted(shards.glob("*.tar")))):
        with wds.TarWriter(str(dst / f"{i:05d}.tar")) as sink:
            sink.write({k: v for k, v in rec.items() if not k.startswith("__") or k == "__key__"})
        i += 1
    return i


def _contents(folder):
    import webdataset as wds

    out = {}
    for p in sorted(folder.glob("*.tar")):
        for rec in wds.tarfile_to_samples()(iter([{"url": str(p)}])):
            b = decode_latents((64, 64), [rec])
            out[rec["__key__"]] = (b["mean"], b["std"], b["tokens"], b["mask"])
    return out


def test_killed_precompute_resumes_skipping_finished_shards(tmp_path, shards, vae_dir):
    n = _one_sample_shards(shards, tmp_path / "src")
    folder = tmp_path / "latents"
    cfg = _cfg(tmp_path, vae_dir, shards, folder)
    cfg["stages"][2]["data"]["train"] = str(tmp_path / "src" / "*.tar")
    config = write_config(tmp_path / "t.yaml", cfg)
    cmd = [sys.executable, str(ROOT / "train" / "precompute.py"), "--config", str(config), "--stage", "2"]

    killed = subprocess.Popen(cmd, env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not list(folder.glob("*.tar")):
            assert killed.poll() is None, killed.stderr.read().decode()[-3000:]
            time.sleep(0.01)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
    finally:
        if killed.poll() is None:
            os.killpg(killed.pid, signal.SIGKILL)
    done = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.tar")}
    assert 1 <= len(done) < n

    resumed = subprocess.run(cmd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{n} shards, {n} on this process, {len(done)} already done, {n - len(done)} to encode" in resumed.stderr
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.tar") if p.name in done} == done
    assert len(list(folder.glob("*.tar"))) == n and not list(folder.glob("*.tmp"))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["complete"] and manifest["totals"]["samples"] == n

    # the same latents as a run that was never interrupted
    whole = tmp_path / "whole"
    assert subprocess.run([*cmd, "--out", str(whole)], env=SUBPROCESS_ENV, capture_output=True, timeout=300).returncode == 0
    a, b = _contents(folder), _contents(whole)
    assert sorted(a) == sorted(b) and len(a) == n
    for key in a:
        assert all(torch.equal(x, y) for x, y in zip(a[key], b[key])), key


def test_precompute_refuses_to_mix_settings_in_one_folder(latents):
    from train.stage import StartError

    cfg_dict, folder = latents
    cfg = copy.deepcopy(cfg_dict)
    cfg["text_encoder"]["max_length"] = 8
    before = (folder / "manifest.json").read_text()
    with pytest.raises(StartError, match="holds latents computed with other settings") as err:
        precompute(parse_config(cfg), 2, None, None)
    assert "'max_length': 16" in str(err.value) and "'max_length': 8" in str(err.value)
    assert (folder / "manifest.json").read_text() == before
