"""clip_score on the final (fused) caption, through the real chain (build_chain: the CPU
worker's batcher, caption fusion, the in-process model pool) with a tiny CLIP loaded by
path: after fusion the kept samples go back to the pool, whose `clip_score_caption` is
the cosine of the stored image embedding with the fused caption's text embedding, and
`threshold_caption` rejects below it with reason clip_score, detail caption. The Ray
pool's side of the same trip is in test_clip_steps_in_build.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from filter_dev.photos import load_photo
from filters.clip_score import ClipScoreFilter
from filters.tiny_open_clip import save_tiny_open_clip
from pipeline.decode import prepare_array
from pipeline.report.rules import FilterRule
from pipeline.sample import Sample
from pipeline.step_chain import build_chain
from tests.chain_run import run_chain
from tests.pipeline.conftest import workflow

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
TEMPLATE = "{alt}, a photograph taken outdoors"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_open_clip(tmp_path_factory.mktemp("caption_score"), "tiny-caption-clip", seed=7)


def _run(tiny, tmp_path, threshold_caption: float) -> list[Sample]:
    settings = {"enabled": True, "device": "cpu", "threshold_caption": threshold_caption,
                **{k: tiny[k] for k in ("clip_model", "clip_config", "clip_weights")}}
    cfg = workflow([{"type": "folder", "path": str(tmp_path)}], filters={"blur": {"enabled": False}, "clip_score": settings},
                   annotate={"fused": {"enabled": True, "template": TEMPLATE}})
    chain = build_chain(cfg)
    assert chain.final_caption_scores and "clip_score_caption" in chain.score_columns
    samples = [Sample(f"k{i}", i, {"kind": "file", "caption": f"a photo of {n}" if i else ""},
                      image=prepare_array(load_photo(n, 256), 256, 90)) for i, n in enumerate(PHOTOS)]
    return run_chain(chain, samples)


def test_fused_caption_scored_after_fusion_and_thresholded(tiny, tmp_path):
    samples = _run(tiny, tmp_path, -1.0)
    assert [s.status for s in samples] == ["kept"] * 4
    assert samples[0].training_caption == "" and np.isnan(samples[0].scores["clip_score_caption"])  # no caption: no score
    label = next(iter(samples[1].embeddings))
    img = torch.nn.functional.normalize(torch.as_tensor(np.stack([s.embeddings[label] for s in samples[1:]]).astype(np.float32)), dim=-1)
    enc = ClipScoreFilter.ready(**{k: tiny[k] for k in ("clip_model", "clip_config", "clip_weights")}, device="cpu").encoder
    txt = enc.embed_texts([s.training_caption for s in samples[1:]])
    assert all(s.training_caption.endswith("a photograph taken outdoors") for s in samples[1:])
    got = np.array([s.scores["clip_score_caption"] for s in samples[1:]])
    np.testing.assert_allclose(got, (img * txt).sum(-1).numpy(), atol=1e-5)
    assert not np.allclose(got, [s.scores["clip_score_alt"] for s in samples[1:]], atol=1e-3)  # the fused caption, not the alt text

    cut = float(np.median(got))
    strict = _run(tiny, tmp_path, cut)
    low = [s.key for s in samples[1:] if s.scores["clip_score_caption"] < cut]
    assert low and [s.key for s in strict if s.status == "rejected"] == low
    assert all((s.reason, s.detail) == ("clip_score", "caption") for s in strict if s.status == "rejected")
    assert sum(s.status in ("kept", "rejected", "failed") for s in strict) == len(PHOTOS)

    # filter-report replays the same decision from the stored scores (what-if changes threshold_caption)
    import pandas as pd

    ledger = pd.DataFrame([{"clip_score_alt": s.scores["clip_score_alt"], "clip_score_caption": s.scores["clip_score_caption"]}
                           for s in samples])
    rule = FilterRule(ClipScoreFilter(ClipScoreFilter.Config(enabled=True, threshold_caption=cut)))
    scored, keep = rule.keep_rows(ledger)
    assert scored.tolist() == [False, True, True, True]  # no alt text: unscored, as before
    assert [samples[i].key for i in np.flatnonzero(~keep)] == low
