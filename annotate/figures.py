"""Per-sample ledger figures from `json.annotations`: how rich each kept caption is."""

from __future__ import annotations

from annotate.fuse import ocr_words

LEDGER_FIGURES = ("caption_words", "object_count", "ocr_words")


def ledger_figures(annotations: dict | None) -> dict[str, int]:
    """{"caption_words": words of the fused caption (else the model caption, else 0),
    "object_count": detected objects, "ocr_words": OCR words at or above their min_confidence}."""
    ann = annotations or {}
    caption = (ann.get("fused") or {}).get("text") or (ann.get("caption") or {}).get("text") or ""
    return {
        "caption_words": len(caption.split()),
        "object_count": len((ann.get("objects") or {}).get("items") or []),
        "ocr_words": len(ocr_words(ann.get("ocr"))),
    }
