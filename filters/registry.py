"""Build the enabled filters from a FiltersConfig, in cost order (cheapest first)."""

from __future__ import annotations

from filters.base import Filter
from filters.config import FiltersConfig


def _resolution(cfg):
    from filters.resolution import ResolutionFilter

    return ResolutionFilter(cfg.min_side, cfg.min_pixels, cfg.max_aspect_ratio)


def _blur(cfg):
    from filters.blur import BlurFilter

    return BlurFilter(cfg.threshold, cfg.analysis_side)


def _watermark(cfg):
    from filters.watermark import WatermarkFilter

    return WatermarkFilter(cfg.threshold, cfg.arch, cfg.model_path, cfg.device, cfg.batch_size)


def _nsfw(cfg):
    from filters.nsfw import NsfwFilter

    return NsfwFilter(cfg.threshold, cfg.backend, cfg.model_path, cfg.clip_model, cfg.clip_weights,
                      cfg.head_path, cfg.device, cfg.batch_size)


def _text(cfg):
    from filters.text import TextFilter

    return TextFilter(cfg.threshold, cfg.max_boxes, cfg.canvas_size, cfg.min_box_size, cfg.text_threshold,
                      cfg.link_threshold, cfg.low_text, cfg.recognize, cfg.model_dir, cfg.device, cfg.batch_size)


# name -> builder, in the order the pipeline runs them: metadata-only first, then cheap
# pixel filters, then model filters by CPU cost per image (bench/README.md, "filters"):
# watermark (small CNN) < nsfw (ResNet-50 at 224) < text (CRAFT/VGG-16 at 512).
# A sample leaves at the first filter that rejects it.
ORDER = {
    "resolution": _resolution,
    "blur": _blur,
    "watermark": _watermark,
    "nsfw": _nsfw,
    "text": _text,
}


def build_filters(cfg: FiltersConfig) -> list[Filter]:
    """Instantiate the enabled filters (models load here, once per worker)."""
    out = []
    for name, build in ORDER.items():
        sub = getattr(cfg, name)
        if sub.enabled:
            out.append(build(sub))
    return out
