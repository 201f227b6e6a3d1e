"""The CLIP steps in a real build (Ray, one model actor): clip_score and aesthetic on one
tiny CLIP (saved, loaded by path in the actor), their scores in the ledger for every kept
row (clip_score_caption from the model actor's second trip, after fusion in the CPU
worker), each kept sample's embedding stored beside its shard in shard order, and the copy the
duplicate pass removes gone from the embeddings as from the shard; filter-report shows the
removed copy beside the kept one, histograms of the new scores, and exports the pairs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import webdataset as wds

from demo.loopback_server import LoopbackServer
from filter_dev.photos import skimage_photos
from filters.aesthetic import aesthetic_mlp
from filters.tiny_open_clip import save_tiny_open_clip
from pipeline.dedup import run_dedup
from pipeline.embeddings import read_unit_embeddings
from pipeline.ledger import read_ledger
from pipeline.report.cli import main as report_main
from pipeline.runner import run_build
from tests.pipeline.conftest import workflow, write_jsonl

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")


@pytest.fixture(scope="module")
def built(ray_session, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clipbuild")
    clip = save_tiny_open_clip(tmp, "tiny-build-clip", seed=5)
    mlp = aesthetic_mlp([32, 16, 8, 4, 2, 1])
    torch.save({f"layers.{k}": v for k, v in mlp.state_dict().items()}, tmp / "aesthetic.pth")
    www = tmp / "www"
    www.mkdir()
    src = {p.name: p for p in skimage_photos()}
    for n in PHOTOS:
        shutil.copy(src[n], www / n)
    shutil.copy(src["chelsea.png"], www / "chelsea_copy.png")  # an exact copy: the dedup pass removes one
    names = [*PHOTOS, "chelsea_copy.png"]
    settings = {"device": "cpu", **{k: clip[k] for k in ("clip_model", "clip_config", "clip_weights")}}
    with LoopbackServer(www) as server:
        urls = write_jsonl(tmp / "urls.jsonl", [{"url": server.url(n), "caption": f"a photo of {n[:-4]}"} for n in names])
        cfg = workflow([{"type": "url_list", "path": str(urls)}], output={"shard_size": 3},
                       filters={"blur": {"enabled": False},
                                "clip_score": {"enabled": True, **settings},
                                "aesthetic": {"enabled": True, "model_path": str(tmp / "aesthetic.pth"), **settings}},
                       annotate={"fused": {"enabled": True, "template": "{alt}, seen from afar"}},
                       dedup={"enabled": True})
        manifest = run_build(cfg, tmp / "out", show_progress=False)
    return manifest, tmp / "out", clip


def test_scores_in_ledger_and_embeddings_beside_shards(built):
    manifest, out, clip = built
    ledger = read_ledger(out).to_pandas()
    assert manifest["counts"]["status"] == {"kept": 5, "rejected": 1, "failed": 0}
    assert manifest["counts"]["reasons"]["rejected"] == {"duplicate": 1}
    kept = ledger[ledger["status"] == "kept"]
    assert kept["clip_score_alt"].between(-1, 1).all() and kept["aesthetic_score"].between(0, 10).all()
    label = f"tiny-build-clip@{clip['clip_weights']}"
    stored = 0
    for tar in sorted((out / "shards").glob("*.tar")):
        shard_keys = [s["__key__"] for s in wds.WebDataset(str(tar), shardshuffle=False)]
        keys, arrays = read_unit_embeddings(out, tar.stem)
        assert keys == shard_keys and set(arrays) == {label}  # one model, both steps: one embedding per sample
        assert arrays[label].dtype == np.float16 and arrays[label].shape == (len(keys), 32)
        np.testing.assert_allclose(np.linalg.norm(arrays[label].astype(np.float32), axis=1), 1, atol=1e-2)
        stored += len(keys)
    assert stored == 5
    # the caption score: stored image embedding . text embedding of the shard's fused txt
    from filters.clip_score import ClipScoreFilter

    enc = ClipScoreFilter.ready(**{k: clip[k] for k in ("clip_model", "clip_config", "clip_weights")}, device="cpu").encoder
    for tar in sorted((out / "shards").glob("*.tar")):
        txt = {s["__key__"]: s["txt"].decode() for s in wds.WebDataset(str(tar), shardshuffle=False)}
        keys, arrays = read_unit_embeddings(out, tar.stem)
        assert all(txt[k].endswith("seen from afar") for k in keys)
        img = torch.nn.functional.normalize(torch.as_tensor(arrays[label].astype(np.float32)), dim=-1)
        want = (img * enc.embed_texts([txt[k] for k in keys])).sum(-1).numpy()
        np.testing.assert_allclose(kept.set_index("key").loc[keys, "clip_score_caption"], want, atol=1e-5)
    dup = ledger.loc[ledger["reason"] == "duplicate", "key"].item()
    assert not any(dup in read_unit_embeddings(out, p.stem)[0] for p in (out / "ledger").glob("*.parquet"))


def test_report_shows_the_duplicate_pair_and_the_new_scores(built, tmp_path, capsys):
    _, out, _ = built
    ledger = read_ledger(out).to_pandas()
    dup = ledger[ledger["reason"] == "duplicate"].iloc[0]
    kept_source = ledger.set_index("key").loc[dup["detail"], "source"]
    html = tmp_path / "r.html"
    assert report_main([str(out), "--html", str(html)]) == 0
    text = capsys.readouterr().out
    assert "Duplicates removed: 1 (1 exact, 0 near" in text and dup["source"] in text and kept_source in text
    page = html.read_text()
    section = page[page.index('<section id="duplicates">'):page.index('<section id="captions">')]
    assert section.count("<img") == 2  # the removed copy (from rejects/) beside the kept sample (from its shard)
    assert "histogram of clip_score_alt" in page and "histogram of aesthetic_score" in page
    assert "histogram of clip_score_caption" in page and "clip_score: clip_score_caption, threshold -1" in page  # its own grid

    # what-if on the caption threshold: every kept row has a caption score below 1
    assert report_main([str(out), "--what-if", "clip_score.threshold_caption=1"]) == 0
    rows = {ln.split()[0]: ln.split() for ln in capsys.readouterr().out.splitlines() if ln.strip()}
    assert rows["kept"][1:3] == ["5", "0"] and rows["clip_score"][1:3] == ["0", "6"]

    # the pass run again adds no second thumbnail; the export lists the pair with both sources
    rejects = {p.name: p.read_bytes() for p in (out / "rejects").glob("*.tar")}
    run_dedup(out)
    assert {p.name: p.read_bytes() for p in (out / "rejects").glob("*.tar")} == rejects
    assert report_main([str(out), "--export", str(tmp_path / "dups.csv"), "--duplicates"]) == 0
    pairs = pd.read_csv(tmp_path / "dups.csv")
    assert pairs[["key", "source", "kept_key", "kept_source", "kind", "distance"]].values.tolist() == [
        [dup["key"], dup["source"], dup["detail"], kept_source, "exact", 0]]


def test_semantic_pass_removes_a_planted_copy_and_is_idempotent(built, tmp_path, capsys):
    """SemDeDup on the stored embeddings (`python pipeline/dedup.py OUT --semantic`): two
    distinct photos given the same embedding (written through the real file format) are
    grouped; the one with fewer original pixels is removed, named as semantic in its
    ledger detail and in dedup.parquet, from its shard and its embeddings; a rerun changes nothing."""
    from pipeline.dedup import main as dedup_main
    from pipeline.embeddings import write_unit_embeddings

    _, built_out, _ = built
    out = tmp_path / "out"
    shutil.copytree(built_out, out)
    ledger = read_ledger(out).to_pandas().set_index("key")
    kept = ledger[ledger["status"] == "kept"]
    src = lambda name: kept.index[kept["source"].str.endswith("/" + name)].item()  # noqa: E731
    a, b = src("astronaut.png"), src("coffee.png")  # 512x512 vs 400x600: coffee has fewer pixels, so it goes
    unit_a, unit_b = (Path(kept.loc[k, "shard"]).stem for k in (a, b))
    keys_a, arr_a = read_unit_embeddings(out, unit_a)
    (label,) = arr_a
    keys_b, arr_b = read_unit_embeddings(out, unit_b)
    vec_b = arr_b[label].copy()
    vec_b[keys_b.index(b)] = arr_a[label][keys_a.index(a)]
    write_unit_embeddings(out, unit_b, keys_b, [{label: v} for v in vec_b])
    sims = np.stack([read_unit_embeddings(out, u)[1][label] for u in sorted({unit_a, unit_b})])
    eps = 0.001  # far below 1 - the closest distinct pair of this tiny CLIP's embeddings (checked next)
    x = np.concatenate(list(sims)).astype(np.float32)
    s = (x @ x.T)[np.triu_indices(len(x), 1)]
    assert (s > 1 - eps).sum() == 1

    assert dedup_main([str(out), "--semantic", "--eps", str(eps)]) == 0
    assert "1 semantic" in capsys.readouterr().out
    after = read_ledger(out).to_pandas().set_index("key")
    assert (after.loc[b, "status"], after.loc[b, "reason"]) == ("rejected", "duplicate")
    assert after.loc[b, "detail"].startswith(f"{a} (semantic, cos 1.0")
    assert after["status"].value_counts().to_dict() == {"kept": 4, "rejected": 2}
    assert b not in [s["__key__"] for t in (out / "shards").glob("*.tar") for s in wds.WebDataset(str(t), shardshuffle=False)]
    assert b not in read_unit_embeddings(out, unit_b)[0] and b in read_unit_embeddings(out, unit_b, removed=True)[0]
    pairs = pd.read_parquet(out / "dedup.parquet")
    assert sorted(pairs["kind"]) == ["exact", "semantic"]
    assert pairs.loc[pairs["kind"] == "semantic", ["key", "kept_key"]].values.tolist() == [[b, a]]

    files = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    assert dedup_main([str(out), "--semantic", "--eps", str(eps)]) == 0  # run again: same rows in, same groups out
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name != "manifest.json"} == files
