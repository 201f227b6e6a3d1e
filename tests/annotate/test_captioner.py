"""Captioner: tiny BLIP and Florence-2 built from configs, saved with save_pretrained and
loaded by path through the same builder a hub id or a user's folder goes through."""

import pytest
from skimage import data

from annotate.captioner import Captioner, CaptionerConfig
from tests.annotate.tiny_models import save_tiny_blip, save_tiny_florence2

PHOTOS = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
SAVERS = {"blip": save_tiny_blip, "florence2": save_tiny_florence2}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """kind -> folder, each built once per module."""
    cache = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = str(SAVERS[kind](tmp_path_factory.mktemp(kind)))
        return cache[kind]

    return get


@pytest.mark.parametrize("beams", [1, 2])
@pytest.mark.parametrize("kind", list(SAVERS))
def test_schema_and_batched_equals_one_by_one(saved, kind, beams):
    path = saved(kind)
    cap = Captioner.ready(CaptionerConfig(enabled=True, model=path, max_new_tokens=6, num_beams=beams, device="cpu"))
    assert cap.pool == "model" and cap.batch_size == 16
    assert cap.prompt == {"blip": None, "florence2": "<MORE_DETAILED_CAPTION>"}[kind]
    batched = cap.annotate(PHOTOS, [{} for _ in PHOTOS])
    assert [set(r) for r in batched] == [{"model", "model_version", "text"}] * len(PHOTOS)
    assert all(r["model"] == path and r["model_version"] == kind and isinstance(r["text"], str) for r in batched)
    singles = [cap.annotate([p], [{}])[0] for p in PHOTOS]
    assert singles == batched
    if kind == "blip":  # the random tiny net still depends on its image
        assert len({r["text"] for r in batched}) > 1


def test_blip_text_prompt_is_not_repeated_in_the_caption(saved):
    path = saved("blip")
    cap = Captioner.ready(CaptionerConfig(model=path, prompt="a photo of", max_new_tokens=4, num_beams=1, device="cpu"))
    (r,) = cap.annotate(PHOTOS[:1], [{}])
    assert r["text"] and not r["text"].startswith("a photo of")


def test_missing_model_names_the_setting(tmp_path):
    with pytest.raises(RuntimeError, match=r"(?s)annotate.caption.model: could not load 'Salesforce/blip-image-captioning-base'.*hub cache"):
        Captioner.ready(CaptionerConfig())
    with pytest.raises(RuntimeError, match=r"(?s)annotate.caption.model: could not load .*nothing-here"):
        Captioner.ready(CaptionerConfig(model=str(tmp_path / "nothing-here")))


def test_batch_size_is_honoured(saved):
    """5 photos at batch_size 2: three generate calls (2, 2, 1), the captions of one call over all 5."""
    from tests.model_calls import assert_honours_batch_size, counted

    cap = Captioner.ready(CaptionerConfig(enabled=True, model=saved("blip"), max_new_tokens=4, num_beams=2, device="cpu"))
    photos = PHOTOS + [data.astronaut()[::2, ::2]]
    with counted(cap.model, "generate", lambda **kw: len(kw["pixel_values"])) as calls:
        assert_honours_batch_size(cap, photos, [{} for _ in photos], calls, 2)
