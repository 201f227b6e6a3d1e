"""CLIP image embeddings stored beside the shards, so dedup, retrieval and re-scoring never
recompute them.

In the model pool, every step that uses CLIP holds the process's shared encoder
(`step.clip_encoder`, filters/clip_encoder.py), which embeds each image of a batch once;
`collect` copies those embeddings (cache hits: no second forward pass) into the verdicts
of the samples still kept, as float16, keyed by the encoder's label (model@weights).

Per unit, next to `shards/NNNNN.tar` (written after the shard, before the ledger):
    embeddings/NNNNN.json         {"model": label, "dim": D, "keys": [...], "files": {label: name}}
    embeddings/NNNNN.<id>.npy     float16, one row per kept sample, in shard order
The .npy names carry a hash of the keys they hold and are written before the json that
names them, so a reader (or a pass killed mid-rewrite) always finds a json whose files
match it; files no json names are deleted on the next write. A second CLIP model in the
same build (e.g. ViT-L-14 for aesthetic, ViT-B-32 for clip_score) gets `NNNNN.<id>.1.npy`.
The dedup pass drops removed keys when it rewrites a shard (`drop_keys`) and keeps their
rows aside in `embeddings/removed/NNNNN.{json,npy}` (same layout), so a second run of the
pass (resume, or run alone) compares the same rows as the first: the semantic step's
k-means sees the same input and finds the same groups.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from pipeline.output_layout import EMBED_DIR, atomic_write, atomic_write_bytes
from pipeline.verdict import Status


def clip_encoders(steps) -> list:
    """The distinct CLIP encoders the steps share (one per model + weights)."""
    found = {}
    for s in steps:
        enc = getattr(s, "clip_encoder", None)
        if enc is not None:
            found.setdefault(enc.label, enc)
    return [found[k] for k in sorted(found)]


def collect(steps, images: list, verdicts: list) -> None:
    """Give each verdict still pending its image embedding from every encoder in use."""
    idx = [i for i, v in enumerate(verdicts) if v.status == Status.PENDING]
    for enc in clip_encoders(steps) if idx else []:
        emb = enc.embed_images([images[i] for i in idx]).float().cpu().numpy().astype(np.float16)
        for j, i in enumerate(idx):
            verdicts[i].embeddings[enc.label] = emb[j]


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


REMOVED_DIR = "removed"  # under EMBED_DIR: rows of the samples the dedup pass removed


def write_unit_embeddings(out_dir: Path, unit_name: str, keys: list[str], vectors: list[dict]) -> None:
    """`vectors[i]` = {label: float16 vector} of keys[i]. Only keys with every label are
    stored; nothing to store removes a file left by an earlier run of the unit (and a
    freshly written unit has no removed rows)."""
    _write(Path(out_dir) / EMBED_DIR, unit_name, keys, vectors)
    _remove(Path(out_dir) / EMBED_DIR / REMOVED_DIR, unit_name)


def _write(folder: Path, unit_name: str, keys: list[str], vectors: list[dict]) -> None:
    meta_path = folder / f"{unit_name}.json"
    labels = sorted({lab for v in vectors for lab in v})
    rows = [i for i, v in enumerate(vectors) if labels and all(lab in v for lab in labels)]
    if not rows:
        _remove(folder, unit_name)
        return
    folder.mkdir(parents=True, exist_ok=True)
    kept_keys = [keys[i] for i in rows]
    tag = hashlib.blake2b("\n".join(kept_keys + labels).encode("utf-8"), digest_size=4).hexdigest()
    files = {lab: f"{unit_name}.{tag}.npy" if n == 0 else f"{unit_name}.{tag}.{n}.npy" for n, lab in enumerate(labels)}
    for lab in labels:
        atomic_write_bytes(folder / files[lab], _npy_bytes(np.stack([vectors[i][lab] for i in rows]).astype(np.float16)))
    meta = {"model": labels[0], "dim": int(len(vectors[rows[0]][labels[0]])), "keys": kept_keys, "files": files}
    with atomic_write(meta_path) as fh:  # last: the npy files it names are complete
        fh.write(json.dumps(meta).encode("utf-8"))
    _remove(folder, unit_name, keep=set(files.values()))


def _remove(folder: Path, unit_name: str, keep: set[str] | None = None) -> None:
    """The unit's files, or (keep given) its .npy files the current json does not name."""
    old = ([] if keep is not None else [folder / f"{unit_name}.json"]) + list(folder.glob(f"{unit_name}.*.npy"))
    for p in old:
        if keep is None or p.name not in keep:
            p.unlink(missing_ok=True)


def read_unit_embeddings(out_dir: Path, unit_name: str, removed: bool = False) -> tuple[list[str], dict[str, np.ndarray]]:
    """(keys in shard order, {label: N x D float16}); ([], {}) when the unit has none.
    removed=True: the rows the dedup pass took out of the unit instead."""
    return _read(Path(out_dir) / EMBED_DIR / (REMOVED_DIR if removed else ""), unit_name)


def _read(folder: Path, unit_name: str) -> tuple[list[str], dict[str, np.ndarray]]:
    meta_path = folder / f"{unit_name}.json"
    if not meta_path.exists():
        return [], {}
    meta = json.loads(meta_path.read_text())
    return meta["keys"], {lab: np.load(folder / name, allow_pickle=False) for lab, name in meta["files"].items()}


def all_unit_embeddings(out_dir: Path, unit_name: str) -> tuple[list[str], dict[str, np.ndarray]]:
    """The unit's rows and its removed rows, each key once (a pass killed between the two
    writes of drop_keys leaves a key in both)."""
    keys, arrays = read_unit_embeddings(out_dir, unit_name)
    rkeys, rarrays = read_unit_embeddings(out_dir, unit_name, removed=True)
    extra = [i for i, k in enumerate(rkeys) if k not in set(keys)]
    if not extra or set(rarrays) != set(arrays):
        return (keys, arrays) if keys else (rkeys, rarrays)
    return keys + [rkeys[i] for i in extra], {lab: np.concatenate([a, rarrays[lab][extra]]) for lab, a in arrays.items()}


def drop_keys(out_dir: Path, unit_name: str, removed) -> None:
    """Rewrite the unit's embeddings without `removed` keys (the dedup pass, after its
    shard); their rows go to removed/ first, so none is ever lost."""
    keys, arrays = read_unit_embeddings(out_dir, unit_name)
    if not any(k in removed for k in keys):
        return
    row = lambda a, i: {lab: x[i] for lab, x in a.items()}  # noqa: E731
    rkeys, rarrays = read_unit_embeddings(out_dir, unit_name, removed=True)
    gone = [i for i, k in enumerate(keys) if k in removed and k not in set(rkeys)]
    _write(Path(out_dir) / EMBED_DIR / REMOVED_DIR, unit_name, rkeys + [keys[i] for i in gone],
           [row(rarrays, i) for i in range(len(rkeys))] + [row(arrays, i) for i in gone])
    vectors = [row(arrays, i) for i, k in enumerate(keys) if k not in removed]
    _write(Path(out_dir) / EMBED_DIR, unit_name, [k for k in keys if k not in removed], vectors)
