"""FSDP (workflows/accelerate_fsdp_xl.yaml) on two CPU processes with gloo: the trainer shards
the tiny UNet and its EMA by AsCAN block, its checkpoints are whole safetensors files that
load into an unsharded model, and a resumed sharded run repeats the uninterrupted losses."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import ascan
from tests.train.conftest import ROOT, launch_two, tiny_config, write_config
from train.checkpoint import load_weights, read_optimizer_files
from train.sharding import wrap_targets

FSDP_CONFIG = ROOT / "workflows" / "accelerate_fsdp_xl.yaml"


def test_config_parses_and_its_wrap_policy_picks_every_ascan_block():
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(FSDP_CONFIG))
    assert cfg.distributed_type == "FSDP" and cfg.fsdp_config["fsdp_version"] == 2
    names = cfg.fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(",")
    with torch.device("meta"):
        unet = ascan.create_model("ascan_unet_xl", in_channels=4, text_dim=768)
    targets = wrap_targets(unet, names)
    blocks = [m for m in unet.modules() if type(m).__name__ in ("CBlock", "TBlock")]
    assert len(targets) == len(blocks) > 20 and {type(m).__name__ for m in targets} == {"CBlock", "TBlock"}
    inside = sum(p.numel() for m in targets for p in m.parameters())
    assert inside / sum(p.numel() for p in unet.parameters()) > 0.9  # the root's own unit stays small
    with pytest.raises(ValueError, match="names no module class"):
        wrap_targets(unet, ["TransformerBlock"])


def _launch(config, out, *extra):
    proc = launch_two(config, out, *extra, launcher=("--config_file", str(FSDP_CONFIG)), port=29541)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _losses(stage_dir) -> dict[int, float]:
    rows = [json.loads(line) for line in (stage_dir / "metrics_rank0.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def test_fsdp_two_processes_checkpoints_whole_and_resume_exact(tmp_path, shards, vae_dir):
    cfg = tiny_config(tmp_path, vae_dir, shards=shards)
    cfg["stages"] = {2: cfg["stages"][2]}
    cfg["stages"][2].update(init_from="none", max_steps=6, checkpoint_every=3, keep_checkpoints=3, batch_size=2,
                            val_batches=1)
    # validation and a sample grid still run at the end (both collective when sharded), but small
    cfg["logging"].update(sample_prompts=["a cat"], sample_seeds=1, sample_guidance_scales=[1.0])
    cfg["diffusion"]["sample_steps"] = 2
    config = write_config(tmp_path / "t.yaml", cfg)

    whole = tmp_path / "whole" / "stage2"
    _launch(config, tmp_path / "whole")
    log = (whole / "train.log").read_text()
    assert "FSDP: AsCANUNet and its EMA sharded over 2 processes" in log and "2 process(es)" in log

    # The checkpoint is whole: every tensor at its full shape, loadable without FSDP.
    ckpt = whole / "checkpoints" / "step_00000006"
    unet = ascan.create_model("ascan_unet_tiny", **json.loads((ckpt / "state.json").read_text())["unet"]["overrides"])
    for name in ("model", "ema"):
        sd = load_weights(ckpt / f"{name}.safetensors")
        assert {k: v.shape for k, v in sd.items()} == {k: v.shape for k, v in unet.state_dict().items()}
        unet.load_state_dict(sd)
    opt = read_optimizer_files(ckpt)
    params = list(unet.parameters())
    assert sorted(opt["state"]) == list(range(len(params)))
    assert all(opt["state"][i]["exp_avg"].shape == p.shape for i, p in enumerate(params))
    unsharded = torch.optim.AdamW(params)
    unsharded.load_state_dict(opt)  # the same format an unsharded run writes

    # Resume from step 3 (drop the later checkpoint and the steps after it): steps 4-6 repeat exactly.
    resumed = tmp_path / "resumed" / "stage2"
    shutil.copytree(whole, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step_00000006")
    (resumed / "final.json").unlink()
    for r in (0, 1):
        metrics = resumed / f"metrics_rank{r}.jsonl"
        metrics.write_text("".join(line + "\n" for line in metrics.read_text().splitlines() if json.loads(line)["step"] <= 3))
    _launch(config, tmp_path / "resumed", "--resume")
    assert "resumed from" in (resumed / "train.log").read_text()
    expected, got = _losses(whole), _losses(resumed)
    assert sorted(got) == sorted(expected) == list(range(1, 7))
    assert [got[s] for s in range(4, 7)] == [expected[s] for s in range(4, 7)]
    assert len(set(expected.values())) == 6  # real, varying losses
    for name in ("model", "ema"):
        a = load_weights(whole / "checkpoints" / "step_00000006" / f"{name}.safetensors")
        b = load_weights(resumed / "checkpoints" / "step_00000006" / f"{name}.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)
