"""ConceptFilter (zero-shot CLIP concepts: violence, gore, weapons) with a tiny open_clip
model built from a config, saved, and loaded back through the user's settings
(clip_model + clip_config + clip_weights); the CLIP embedding shared with the NSFW CLIP
head; errors naming the setting.

The tiny model has random weights, so these tests check the mechanics (the score is the
formula in filters/concepts.py, thresholds, sharing, errors), not that real violence is
caught: no CLIP weights are available offline (README, "Filters")."""

import numpy as np
import pytest
import torch

from filter_dev.photos import load_photo
from filters.clip_encoder import get_clip_encoder
from filters.concepts import DEFAULT_PROMPTS, ConceptFilter
from filters.nsfw import NsfwFilter, save_clip_head
from filters.tiny_open_clip import save_tiny_open_clip
from pipeline.config import FiltersConfig
from steps.registry import build_steps
from tests.tolerance import assert_scores_close


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("concepts")
    return {**save_tiny_open_clip(d, "tiny-concepts-clip", seed=1), "dir": d}


@pytest.fixture(scope="module")
def photos():
    return [load_photo(n, 512) for n in ("astronaut", "chelsea", "coffee", "china")]


def _settings(tiny, **kw):
    return {"enabled": True, "clip_model": tiny["clip_model"], "clip_config": tiny["clip_config"],
            "clip_weights": tiny["clip_weights"], "device": "cpu", **kw}


def test_scores_follow_the_formula(tiny, photos):
    cfg = FiltersConfig.model_validate({"resolution": {"enabled": False}, "blur": {"enabled": False}, "concepts": _settings(tiny)})
    (f,) = build_steps(cfg, "filter")
    assert isinstance(f, ConceptFilter) and f.pool == "model"
    assert f.score_columns == ["concepts_violence", "concepts_gore", "concepts_weapons", "concepts_max"]
    s = f.score(photos, [{} for _ in photos])
    # by hand, from the saved model
    import open_clip

    model, tok = tiny["model"], open_clip.get_tokenizer(tiny["clip_model"])
    x = torch.stack([f.encoder.preprocess(__import__("PIL.Image", fromlist=["Image"]).fromarray(im)) for im in photos])
    with torch.no_grad():
        e = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
        def sim(texts):
            t = torch.nn.functional.normalize(model.encode_text(tok(texts)), dim=-1)
            return (e @ t.T).max(1).values
        neutral = sim(f.cfg.neutral_prompts)
        scale = model.logit_scale.exp()
        for c in DEFAULT_PROMPTS:
            expected = torch.softmax(scale * torch.stack([sim(DEFAULT_PROMPTS[c]), neutral], 1), 1)[:, 0].numpy()
            assert_scores_close(s[c], expected, f.encoder, float32=1e-4)
    assert np.allclose(s["max"], np.max([s[c] for c in DEFAULT_PROMPTS], 0))
    single = np.array([f.score([im], [{}])["gore"][0] for im in photos])
    assert_scores_close(s["gore"], single, f.encoder)


def test_thresholds_and_details(tiny, photos):
    f = ConceptFilter.ready(clip_model=tiny["clip_model"], clip_config=tiny["clip_config"], clip_weights=tiny["clip_weights"],
                            device="cpu", threshold=1.0, thresholds={"weapons": 0.0})
    s = f.score(photos, [{} for _ in photos])
    keep = f.keep(s)
    assert not keep.any() and f.details(s, keep) == ["weapons"] * len(photos)
    looser = ConceptFilter(f.cfg.model_copy(update={"thresholds": {c: 1.0 for c in f.concepts}}))  # deciding needs no model
    assert looser.keep(s).all()


def test_embedding_shared_with_nsfw_clip_head(tiny, photos):
    head = tiny["dir"] / "head.safetensors"
    rng = np.random.default_rng(0)
    save_clip_head(str(head), [(rng.normal(0, 0.5, (1, 32)), np.zeros(1))])
    nsfw = NsfwFilter.ready(backend="clip", clip_model=tiny["clip_model"], clip_weights=tiny["clip_weights"], head_path=str(head), device="cpu")
    concepts = ConceptFilter.ready(clip_model=tiny["clip_model"], clip_config=tiny["clip_config"],
                             clip_weights=tiny["clip_weights"], device="cpu")
    enc = concepts.encoder
    assert nsfw.model.encoder is enc  # one CLIP model object in the process
    ims = [im.copy() for im in photos]  # fresh arrays: not in the cache yet
    before = enc.images_encoded
    nsfw.score(ims, [{} for _ in ims])
    concepts.score(ims, [{} for _ in ims])
    assert enc.images_encoded - before == len(ims)  # each image through the tower once


def test_missing_model_names_setting(tiny, tmp_path):
    with pytest.raises(ValueError, match=r"filters\.concepts\.clip_weights: required .*no CLIP weights ship"):
        ConceptFilter.ready(clip_model="ViT-B-32", device="cpu")
    with pytest.raises(FileNotFoundError, match=r"filters\.concepts\.clip_weights: .*gone\.pt does not exist"):
        ConceptFilter.ready(clip_model="ViT-B-32", clip_weights=str(tmp_path / "gone.pt"), device="cpu")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=r"filters\.concepts\.clip_weights: could not load"):
        get_clip_encoder(tiny["clip_model"], str(tmp_path / "bad.pt"), "cpu", tiny["clip_config"])


def test_optional_filter_skipped_with_warning():
    cfg = FiltersConfig.model_validate({"concepts": {"enabled": True, "required": False}})
    warnings = []
    names = [f.name for f in build_steps(cfg, "filter", warnings)]
    assert "concepts" not in names and "filters.concepts.clip_weights" in warnings[0]


@pytest.mark.parametrize("bad, field", [
    ({"concepts": {"thresholds": {"nudity": 0.5}}}, "thresholds"),
    ({"concepts": {"prompts": {}}}, "prompts"),
    ({"concepts": {"treshold": 0.5}}, "treshold"),
])
def test_bad_config_names_field(bad, field):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=field):
        FiltersConfig.model_validate(bad)
