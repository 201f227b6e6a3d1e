"""Per-sample ledger figures from `json.annotations`: how rich each kept caption is."""

from __future__ import annotations

from annotate.fuse import ocr_words

LEDGER_FIGURES = ("caption_words", "object_count", "ocr_words")


def ledger_figures(annotations: dict | None, alt: str | None = None) -> dict[str, int]:
    """{"caption_words": words of the training caption (`fused.text`; the alt text when
    fusion did not run), "object_count": detected objects, "ocr_words": OCR words at or
    above the OCR's min_confidence (the ones a caption may quote)}."""
    ann = annotations or {}
    fused = ann.get("fused")
    caption = fused.get("text") or "" if fused else alt or ""
    return {
        "caption_words": len(caption.split()),
        "object_count": len((ann.get("objects") or {}).get("items") or []),
        "ocr_words": len(ocr_words(ann.get("ocr"))),
    }
