"""CLIP image embeddings computed once per sample in the model pool and stored beside the
shards: two CLIP steps on one tiny CLIP (saved and loaded through the user's settings)
send each image through the tower once, the verdicts of the samples still kept carry the
same float16 vectors, and the per-unit files round-trip, follow a dedup rewrite, and are
never left naming files that do not match them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from filter_dev.photos import load_photo
from filters.concepts import ConceptFilter
from filters.nsfw import NsfwFilter, save_clip_head
from filters.tiny_open_clip import save_tiny_open_clip
from pipeline.embeddings import EMBED_DIR, all_unit_embeddings, drop_keys, read_unit_embeddings, write_unit_embeddings
from pipeline.step_runner import ModelStepRunner
from pipeline.verdict import Status, Verdict


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("emb")
    return {**save_tiny_open_clip(d, "tiny-emb-clip", seed=2), "dir": d}


def test_two_clip_steps_embed_each_image_once_and_kept_samples_carry_it(tiny):
    clip = {k: tiny[k] for k in ("clip_model", "clip_weights")}
    head = tiny["dir"] / "head.safetensors"
    save_clip_head(str(head), [(np.random.default_rng(0).normal(0, 0.5, (1, 32)), np.zeros(1))])
    nsfw = NsfwFilter.ready(backend="clip", head_path=str(head), device="cpu", threshold=1.0, **clip)
    concepts = ConceptFilter.ready(clip_config=tiny["clip_config"], device="cpu", threshold=1.0, **clip)
    images = [load_photo(n, 256) for n in ("astronaut", "chelsea", "coffee")]
    verdicts = [Verdict() for _ in images]
    verdicts[1].fail("decode_error", "x")  # not kept: no embedding stored for it
    enc = concepts.clip_encoder
    assert nsfw.clip_encoder is enc and enc.label == f"tiny-emb-clip@{tiny['clip_weights']}"
    before = enc.images_encoded
    ModelStepRunner([nsfw], []).run(images, [{} for _ in images], verdicts, score_all=False)
    assert enc.images_encoded - before == 2  # nsfw embedded the two live images; storing them cost nothing
    assert verdicts[1].embeddings == {} and verdicts[0].embeddings.keys() == verdicts[2].embeddings.keys() == {enc.label}

    # with a second step on the same encoder: still one pass per image; a sample a CPU filter rejected gets none
    verdicts = [Verdict(Status.REJECTED), Verdict(Status.FAILED), Verdict()]
    images = [im.copy() for im in images]  # new arrays: not in the encoder's cache
    before = enc.images_encoded
    ModelStepRunner([nsfw, concepts], []).run(images, [{} for _ in images], verdicts, score_all=False)
    assert enc.images_encoded - before == 1 and verdicts[0].embeddings == {}
    v = verdicts[2].embeddings[enc.label]
    assert v.dtype == np.float16 and v.shape == (32,)
    expected = enc.embed_images([images[2]]).numpy()[0]
    np.testing.assert_allclose(v.astype(np.float32), expected, atol=2e-3)
    assert verdicts[2].copy().embeddings[enc.label] is v  # travels back from the pool with the verdict


def test_unit_files_round_trip_follow_dedup_and_stay_consistent(tmp_path):
    rng = np.random.default_rng(0)
    keys = ["k0", "k1", "k2", "k3"]
    vecs = [{"A@w": rng.normal(size=8).astype(np.float16), "B": rng.normal(size=4).astype(np.float16)} for _ in keys]
    vecs[3] = {}  # a kept sample no CLIP step saw (e.g. it came back without one): left out, not misaligned
    write_unit_embeddings(tmp_path, "00007", keys, vecs)
    got_keys, arrays = read_unit_embeddings(tmp_path, "00007")
    assert got_keys == ["k0", "k1", "k2"] and set(arrays) == {"A@w", "B"}
    assert arrays["A@w"].dtype == np.float16 and arrays["A@w"].shape == (3, 8)
    np.testing.assert_array_equal(arrays["B"][1], vecs[1]["B"])
    meta = json.loads((tmp_path / EMBED_DIR / "00007.json").read_text())
    assert meta["model"] == "A@w" and meta["dim"] == 8

    drop_keys(tmp_path, "00007", {"k1": "k0"})
    got_keys, arrays = read_unit_embeddings(tmp_path, "00007")
    assert got_keys == ["k0", "k2"]
    np.testing.assert_array_equal(arrays["A@w"], np.stack([vecs[0]["A@w"], vecs[2]["A@w"]]))
    files = sorted(p.name for p in (tmp_path / EMBED_DIR).iterdir() if p.is_file())
    assert len(files) == 3 and "00007.json" in files  # the old .npy files are gone
    # the removed row is kept aside, so a second dedup pass compares the same rows
    rkeys, removed = read_unit_embeddings(tmp_path, "00007", removed=True)
    assert rkeys == ["k1"] and np.array_equal(removed["B"][0], vecs[1]["B"])
    assert all_unit_embeddings(tmp_path, "00007")[0] == ["k0", "k2", "k1"]
    snapshot = sorted(str(p) for p in (tmp_path / EMBED_DIR).rglob("*"))
    drop_keys(tmp_path, "00007", {"k1": "k0"})  # idempotent (the dedup pass may run again)
    assert sorted(str(p) for p in (tmp_path / EMBED_DIR).rglob("*")) == snapshot

    write_unit_embeddings(tmp_path, "00007", ["k0"], [{}])  # a redone unit with nothing to store (nor removed rows)
    assert read_unit_embeddings(tmp_path, "00007") == ([], {}) and not any(p.is_file() for p in (tmp_path / EMBED_DIR).rglob("*"))
