"""The synthetic data the watermark model trains on: every layout draws a visible mark
from its own style pool, and scene-text signs are small, opaque and reproducible."""

import numpy as np
import pytest

from filter_dev.photos import load_photo
from filter_dev.synth.backgrounds import add_coat_patch
from filter_dev.synth.fonts import FONTS
from filter_dev.synth.text import add_scene_text
from filter_dev.synth.watermarks import LAYOUTS, MISS_LAYOUTS, add_watermark


@pytest.fixture(scope="module")
def photo():
    return load_photo("chelsea", 512)


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_every_layout_draws_a_visible_mark(photo, split):
    for layout in list(LAYOUTS[split]) + (list(MISS_LAYOUTS) if split == "train" else []):
        marked = add_watermark(photo, np.random.default_rng(0), split, layout)
        changed = np.abs(marked.astype(int) - photo.astype(int)).max(2) > 12
        assert marked.shape == photo.shape and marked.dtype == np.uint8
        low = 0.0003 if layout == "small_corner" else 0.001  # a credit a few px high: tiny by design
        assert low < changed.mean() < 0.6, (layout, changed.mean())


def test_style_pools_are_disjoint():
    assert not set(FONTS["train"]) & set(FONTS["heldout"])
    assert not (set(LAYOUTS["train"]) | set(MISS_LAYOUTS)) & set(LAYOUTS["heldout"])
    with pytest.raises(ValueError, match="training split only"):
        add_watermark(np.zeros((64, 64, 3), np.uint8), np.random.default_rng(0), "heldout", miss_layouts=True)


def test_scene_text_is_small_and_reproducible(photo):
    areas = []
    for i in range(12):
        a = add_scene_text(photo, np.random.default_rng(i))
        b = add_scene_text(photo, np.random.default_rng(i))
        assert (a == b).all()
        areas.append((np.abs(a.astype(int) - photo.astype(int)).max(2) > 12).mean())
    # signs and labels, not posters: most cover a few percent of the image at most
    assert np.median(areas) < 0.05 and min(areas) > 0.0005, np.round(areas, 3)


def test_coat_patches_are_reproducible_bold_patterns(photo):
    """The animal-coat hard negative: a stripes/spots patch over part of the view, the
    same for the same seed, different for another."""
    covered = []
    for i in range(6):
        a = add_coat_patch(photo, np.random.default_rng(i))
        assert a.shape == photo.shape and a.dtype == np.uint8
        assert (a == add_coat_patch(photo, np.random.default_rng(i))).all()
        changed = np.abs(a.astype(int) - photo.astype(int)).max(2) > 12
        covered.append(changed.mean())
        # bold: inside the patch the pattern spans a wide range of brightness
        lum = a.mean(2)[changed]
        assert np.percentile(lum, 90) - np.percentile(lum, 10) > 40, i
    assert 0.02 < np.median(covered) < 0.6, np.round(covered, 3)
    assert not (add_coat_patch(photo, np.random.default_rng(0)) == add_coat_patch(photo, np.random.default_rng(1))).all()


def test_default_training_data_unchanged_by_the_opt_in_extras():
    """Pairs are a function of (spec, i), and the opt-ins (MISS_LAYOUTS, coat patches)
    change them. (Off, they draw nothing from the rng: the first 40 default pairs at 320 px
    were checked once to hash the same as with the code the shipped weights trained on.)"""
    from filter_dev.photos import BUNDLED_TRAIN_PHOTOS
    from filter_dev.watermark_data import PairSpec, make_pair

    base = PairSpec(0, BUNDLED_TRAIN_PHOTOS, "train", "train", 64, 32)
    on = PairSpec(0, BUNDLED_TRAIN_PHOTOS, "train", "train", 64, 32, miss_layouts=True, coat_fraction=0.5)
    same = [all((a == b).all() for a, b in zip(make_pair((base, i)), make_pair((base, i)))) for i in range(6)]
    differ = [any((a != b).any() for a, b in zip(make_pair((base, i)), make_pair((on, i)))) for i in range(6)]
    assert all(same) and any(differ)
