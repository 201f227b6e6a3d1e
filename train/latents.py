"""Precomputed latents: the format train/precompute.py writes and the trainer reads
(`stages.N.data.latents: DIR`), and the check that they fit the stage.

    DIR/manifest.json            what they were computed with (VAE, text encoder, resolution,
                                 bucket table, source shards) and per-shard counts
    DIR/empty_caption.safetensors the text encoder's "" (caption dropout without the encoder)
    DIR/<source shard name>.tar  one per source shard, keyed like it; per sample:
        latent.npy  (2, C, h, w) float16: the VAE posterior's mean and std (unscaled), so each
                    epoch still draws a fresh latent mean + std * eps
        tokens.npy  (L, D) float16, mask.npy (L,) uint8: the text encoder's output
        json        {"bucket": [H, W], "txt": caption}

A shard's tar is renamed into place only when complete: it is the shard's done marker.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import torch

from train.data import DataError

MANIFEST = "manifest.json"
EMPTY_CAPTION = "empty_caption.safetensors"
# What must match between the latents and the stage that reads them (the manifest's keys).
IDENTITY = ("vae", "text_encoder", "resolution", "bucket_table")


def identity(cfg, sc, table) -> dict:
    """The settings the latents depend on, as the manifest records them."""
    from train.encoders import text_encoder_location, vae_location

    te = cfg.text_encoder
    return {"vae": {"path": vae_location(cfg.vae), "subfolder": cfg.vae.subfolder},
            "text_encoder": {"path": text_encoder_location(te), "kind": te.kind, "max_length": te.max_length},
            "resolution": sc.resolution, "bucket_table": [list(hw) for hw in table]}


def shard_name(url: str) -> str:
    return os.path.basename(url)


def check_unique_names(urls: list[str], setting: str) -> None:
    names = [shard_name(u) for u in urls]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{setting}: two source shards are named {dup!r}; latents are stored by shard name, "
                        "so give shards unique names (e.g. one folder per build)")


def mismatches(found: dict, expected: dict) -> list[str]:
    return [f"{k}: latents have {found.get(k)!r}, the stage has {expected[k]!r}" for k in IDENTITY
            if found.get(k) != expected[k]]


def latent_shards(folder: str | Path, sources: list[str], expected: dict, setting: str) -> list[str]:
    """The latent tars for `sources` (the stage's training shards), after checking the
    manifest against the stage; fails naming both sides of any difference."""
    folder = Path(folder)
    fix = f"rerun `python train/precompute.py --config CFG --stage N`, or point {setting} elsewhere"
    if not (folder / MANIFEST).is_file():
        raise DataError(f"{setting}: {folder} has no {MANIFEST}; write the latents with train/precompute.py first")
    manifest = json.loads((folder / MANIFEST).read_text())
    diff = mismatches(manifest, expected)
    if diff:
        raise DataError(f"{setting}: the latents in {folder} do not fit this stage:\n  " + "\n  ".join(diff) + f"\n{fix}")
    check_unique_names(sources, setting)
    paths = [folder / shard_name(u) for u in sources]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{setting}: {len(missing)} of {len(paths)} training shards have no latents in {folder} "
                        f"(first: {missing[0]}); the precompute was interrupted or covers other shards: {fix}")
    return [str(p) for p in paths]


def load_empty_caption(folder: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    from safetensors.torch import load_file

    t = load_file(str(Path(folder) / EMPTY_CAPTION))
    return t["tokens"].float(), t["mask"].bool()


def encode_sample(key: str, mean, std, tokens, mask, bucket, txt: str) -> dict:
    """One sample as the latent tar stores it (arrays as .npy: no pickle)."""
    def npy(a: np.ndarray) -> bytes:
        buf = io.BytesIO()
        np.save(buf, a, allow_pickle=False)
        return buf.getvalue()

    latent = torch.stack([mean, std]).to(torch.float16).cpu().numpy()
    return {"__key__": key, "latent.npy": npy(latent), "tokens.npy": npy(tokens.to(torch.float16).cpu().numpy()),
            "mask.npy": npy(mask.to(torch.uint8).cpu().numpy()),
            "json": json.dumps({"bucket": list(bucket), "txt": txt}).encode()}


def _array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def decode_latents(bucket, recs, rng=None) -> dict:
    """Latent records of one bucket -> a batch: mean, std, tokens, mask (float16 / bool), txt, keys."""
    keys, lat, tok, mask, txt, bad = [], [], [], [], [], 0
    for rec in recs:
        try:
            a = _array(rec["latent.npy"])
            lat.append(a)
            tok.append(_array(rec["tokens.npy"]))
            mask.append(_array(rec["mask.npy"]))
            txt.append(json.loads(rec["json"]).get("txt", ""))
            keys.append(rec["__key__"])
        except Exception:  # noqa: BLE001 - a bad sample is skipped and counted, never a dead run
            bad += 1
            del lat[len(keys):], tok[len(keys):], mask[len(keys):], txt[len(keys):]
    batch = {"keys": keys, "bucket": bucket, "bad": bad, "size": len(keys)}
    if keys:
        latent = torch.from_numpy(np.stack(lat))
        batch |= {"mean": latent[:, 0], "std": latent[:, 1], "tokens": torch.from_numpy(np.stack(tok)),
                  "mask": torch.from_numpy(np.stack(mask)).bool(), "txt": txt}
    return batch


def record_bucket(rec: dict) -> tuple[int, int] | None:
    try:
        return tuple(json.loads(rec["json"])["bucket"])
    except Exception:  # noqa: BLE001 - counted as unreadable by the caller
        return None
