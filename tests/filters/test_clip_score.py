"""ClipScoreFilter with a tiny open_clip model saved and loaded through the user's settings:
the score is the cosine of the image and alt-text embeddings of that model, an empty alt
text has none and passes, the threshold (off by default) rejects below it, keep() replays
without a model, and the encoder is the one the other CLIP steps share."""

import numpy as np
import pytest
import torch
from PIL import Image

from filter_dev.photos import load_photo
from filters.clip_score import ClipScoreFilter
from filters.concepts import ConceptFilter
from filters.tiny_open_clip import save_tiny_open_clip
from pipeline.config import FiltersConfig
from steps.registry import build_steps
from tests.tolerance import assert_scores_close, score_atol


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_open_clip(tmp_path_factory.mktemp("clip_score"), "tiny-score-clip", seed=3)


def _settings(tiny, **kw):
    return {"enabled": True, "device": "cpu", **{k: tiny[k] for k in ("clip_model", "clip_config", "clip_weights")}, **kw}


def test_score_is_the_cosine_of_image_and_alt_text(tiny):
    import open_clip

    cfg = FiltersConfig.model_validate({"resolution": {"enabled": False}, "blur": {"enabled": False}, "clip_score": _settings(tiny)})
    (f,) = build_steps(cfg, "filter")
    assert isinstance(f, ClipScoreFilter) and f.pool == "model" and f.score_columns == ["clip_score_alt", "clip_score_caption"]
    images = [load_photo(n, 256) for n in ("astronaut", "chelsea", "coffee")]
    alts = ["an astronaut in a spacesuit", "", "a cup of coffee on a saucer"]
    scores = f.score(images, [{"caption": a} for a in alts])
    s = scores["alt"]
    assert np.isnan(scores["caption"]).all()  # scored after caption fusion (tests/pipeline/test_caption_clip_score.py)
    model, tok = tiny["model"], open_clip.get_tokenizer(tiny["clip_model"])
    with torch.no_grad():
        x = torch.stack([f.encoder.preprocess(Image.fromarray(images[i])) for i in (0, 2)])
        e = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
        t = torch.nn.functional.normalize(model.encode_text(tok([alts[0], alts[2]])), dim=-1)
    assert_scores_close(s[[0, 2]], (e * t).sum(-1).numpy(), f.encoder, float32=1e-4)
    assert np.isnan(s[1])
    assert f.keep(scores).all()  # off by default (threshold -1)
    cut = float(np.nanmean(s[[0, 2]]))
    strict = ClipScoreFilter(f.cfg.model_copy(update={"threshold": cut}))  # deciding needs no model
    assert strict.keep(scores).tolist() == [s[0] >= cut, True, s[2] >= cut] and not strict.keep(scores).all()
    assert strict.details(scores, strict.keep(scores)).count("alt") == 1


def test_shares_the_encoder_with_concepts(tiny):
    score = ClipScoreFilter.ready(**{k: v for k, v in _settings(tiny).items() if k != "enabled"})
    concepts = ConceptFilter.ready(**{k: v for k, v in _settings(tiny).items() if k != "enabled"})
    assert score.clip_encoder is concepts.clip_encoder


def test_missing_weights_name_the_setting():
    with pytest.raises(ValueError, match=r"filters\.clip_score\.clip_weights: required"):
        ClipScoreFilter.ready(device="cpu")


def test_batch_size_is_honoured(tiny):
    """3 photos at batch_size 2: two passes of the image tower (2, 1), the scores of one pass over all 3."""
    from tests.model_calls import assert_honours_batch_size, counted

    f = ClipScoreFilter.ready(ClipScoreFilter.Config(**_settings(tiny)))
    images = [load_photo(n, 256) for n in ("astronaut", "chelsea", "coffee")]
    meta = [{"caption": a} for a in ("an astronaut", "a cat", "a cup of coffee")]
    with counted(f.encoder.model, "encode_image", lambda x, *a, **kw: len(x)) as calls:
        assert_honours_batch_size(f, images, meta, calls, 2, score_atol(f.encoder))
