"""Caption fusion: one training caption from the alt text and the annotations, no model.

Parts (each optional, each rendered from `json.annotations`):
- `alt`: the source's alt text;
- `caption`: the captioner's text (`annotations["caption"]["text"]`);
- `objects`: the detector's objects as counts with rough positions,
  e.g. "two dogs on the left and a car";
- `ocr`: the OCR lines at or above their `min_confidence`, e.g. `with the text "BAKERY OPEN"`.

The caption is a template (`{alt}`, `{caption}`, `{objects}`, `{ocr}` placeholders) whose
empty parts are dropped together with the literal text just before them, so a missing
part never leaves a dangling ", with". Unset, the template is built from `parts` in their
order. Then the caption is capped at `max_words` words and, with a `tokenizer`, at
`max_tokens` text-encoder tokens (whole words dropped from the end).

Deterministic: the same annotations and config give the same caption, so
`python -m annotate.refuse` can rewrite the captions of a finished build.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache
from typing import Literal

from pydantic import Field

from annotate.base import Annotator, AnnotatorConfig
from steps.registry import register_step

PartName = Literal["alt", "caption", "objects", "ocr"]
PARTS: tuple[str, ...] = ("alt", "caption", "objects", "ocr")
# literal text put before a part when the template is built from `parts`
CONNECTORS = {"alt": ". ", "caption": ". ", "objects": ", with ", "ocr": ", "}
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
IRREGULAR_PLURALS = {
    "person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice",
    "knife": "knives", "sheep": "sheep", "skis": "skis", "scissors": "scissors", "fish": "fish",
    "deer": "deer", "leaf": "leaves", "shelf": "shelves", "foot": "feet", "tooth": "teeth",
}


class FusedConfig(AnnotatorConfig):
    parts: list[PartName] = Field(list(PARTS), description="which parts go into the caption; their order when `template` is unset")
    template: str | None = Field(
        None, description='format string with {alt} {caption} {objects} {ocr}, e.g. "{caption}, with {objects}. {alt}"; unset = built from `parts`'
    )
    max_words: int = Field(77, ge=1, description="cap on the caption's length in words (whole words cut from the end)")
    tokenizer: str | None = Field(None, description="text-encoder tokenizer (local path or hub id) for `max_tokens`; unset = word cap only")
    max_tokens: int = Field(77, ge=2, description="cap in `tokenizer` tokens, special tokens included (used only with `tokenizer`)")
    max_object_labels: int = Field(5, ge=0, description="at most this many object kinds are named, most confident first")
    object_positions: bool = Field(True, description="say where objects are (left/center/right, top/bottom)")
    max_ocr_words: int = Field(12, ge=0, description="at most this many OCR words quoted")

    def effective_template(self) -> str:
        if self.template:
            return self.template
        out = ""
        for i, p in enumerate(self.parts):
            out += ("" if i == 0 else CONNECTORS[p]) + "{" + p + "}"
        return out


# -- parts ------------------------------------------------------------------------------
def _trim(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "").strip().rstrip(".,;: ")


def plural(label: str) -> str:
    words = label.split()
    last = words[-1]
    if last in IRREGULAR_PLURALS:
        last = IRREGULAR_PLURALS[last]
    elif re.search(r"(s|x|z|ch|sh)$", last):
        last += "es"
    elif re.search(r"[^aeiou]y$", last):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return " ".join(words[:-1] + [last])


def count_phrase(label: str, n: int) -> str:
    if n == 1:
        return ("an " if label[:1] in "aeiou" else "a ") + label
    return f"{NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else n} {plural(label)}"


def _cell(box) -> tuple[str, str]:
    """(row, column) of a normalised box's centre on a 3x3 grid."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "center"
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    return row, col


def position_phrase(boxes: list) -> str:
    """Where a group of boxes is: one grid cell, one column or one row; else ''."""
    cells = {_cell(b) for b in boxes}
    rows, cols = {r for r, _ in cells}, {c for _, c in cells}
    row = rows.pop() if len(rows) == 1 else None
    col = cols.pop() if len(cols) == 1 else None
    if row in ("top", "bottom"):
        return f"at the {row}" + (f" {col}" if col in ("left", "right") else "")
    if col in ("left", "right"):
        return f"on the {col}"
    if col == "center" and row == "middle":
        return "in the center"
    return ""


def join_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def objects_text(objects: dict | None, cfg: FusedConfig) -> str:
    items = (objects or {}).get("items") or []
    groups: dict[str, list] = {}
    best: dict[str, float] = {}
    for it in items:
        label = _trim(str(it["label"])).lower()
        if not label:
            continue
        groups.setdefault(label, []).append(it["box"])
        best[label] = max(best.get(label, 0.0), float(it.get("confidence", 0.0)))
    order = sorted(groups, key=lambda k: (-len(groups[k]), -best[k], k))[: cfg.max_object_labels]
    phrases = []
    for label in order:
        phrase = count_phrase(label, len(groups[label]))
        where = position_phrase(groups[label]) if cfg.object_positions else ""
        phrases.append(f"{phrase} {where}" if where else phrase)
    return join_list(phrases) if phrases else ""


def ocr_words(ocr: dict | None) -> list[str]:
    """The words of the OCR lines at or above the OCR's own `min_confidence`."""
    if not ocr:
        return []
    floor = float(ocr.get("min_confidence", 0.0))
    lines = [ln for ln in ocr.get("lines") or [] if float(ln.get("confidence", 0.0)) >= floor]
    return " ".join(str(ln.get("text", "")) for ln in lines).split()


def ocr_text(ocr: dict | None, cfg: FusedConfig) -> str:
    words = ocr_words(ocr)[: cfg.max_ocr_words]
    if not words:
        return ""
    quoted = " ".join(words).replace('"', "'")  # a double quote inside would end the quote
    return f'with the text "{quoted}"'


def render_parts(alt: str | None, annotations: dict, cfg: FusedConfig) -> dict[str, str]:
    """Each part's text ('' when missing or not selected)."""
    text = {
        "alt": _trim(alt),
        "caption": _trim((annotations.get("caption") or {}).get("text")),
        "objects": objects_text(annotations.get("objects"), cfg),
        "ocr": ocr_text(annotations.get("ocr"), cfg),
    }
    return {p: (text[p] if p in cfg.parts else "") for p in PARTS}


# -- template ---------------------------------------------------------------------------
def fill_template(template: str, parts: dict[str, str]) -> str:
    """Format `template`, dropping each empty part together with the literal before it."""
    out, emitted = "", False
    for literal, field, _spec, _conv in string.Formatter().parse(template):
        if field is None:
            out += literal
            continue
        if field not in PARTS:
            raise ValueError(f"annotate.fused.template: unknown placeholder {{{field}}}; use {', '.join('{' + p + '}' for p in PARTS)}")
        value = parts[field]
        if not value:
            continue
        seg = literal + value
        if not out.strip():
            seg = seg.lstrip(" .,;:")  # nothing before it: no leading connector
        elif out.rstrip()[-1] in ".!?":
            seg = " " + seg.lstrip().lstrip(".,;:").lstrip()  # "Wow!" + ". x" -> "Wow! X"
        lead = len(re.match(r"[^\w\"']*", seg).group(0))
        ctx = (out + seg[:lead]).rstrip()
        if not ctx or ctx[-1] in ".!?":  # a new sentence starts with a capital
            seg = seg[:lead] + seg[lead:lead + 1].upper() + seg[lead + 1:]
        out += seg
        emitted = True
    if not emitted:
        return ""
    out = re.sub(r"\s+", " ", out).strip().strip(",;: ")
    return out[:1].upper() + out[1:]


def _close_quote(text: str) -> str:
    return text + '"' if text.count('"') % 2 else text


def cap_words(text: str, max_words: int) -> str:
    words = text.split()
    if len(words) <= max_words:
        return text
    return _close_quote(" ".join(words[:max_words]).rstrip(",;:. "))


@lru_cache(maxsize=4)
def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as exc:
        raise RuntimeError(
            f"annotate.fused.tokenizer: could not load {name!r} ({type(exc).__name__}: {exc}); set it to a local "
            "folder holding a saved tokenizer, run once with network so transformers caches it, or unset it to cap words only"
        ) from exc


def cap_tokens(text: str, tokenizer, max_tokens: int) -> str:
    """Drop whole words from the end until the tokenizer's ids (special tokens included) fit."""
    def fits(t: str) -> bool:
        return len(tokenizer(t, add_special_tokens=True)["input_ids"]) <= max_tokens

    if fits(text):
        return text
    words = text.split()
    lo, hi = 0, len(words)  # words[:lo] fits (or lo == 0), words[:hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(_close_quote(" ".join(words[:mid]))):
            lo = mid
        else:
            hi = mid
    return _close_quote(" ".join(words[:lo]).rstrip(",;:. "))


def fuse(alt: str | None, annotations: dict, cfg: FusedConfig) -> dict:
    """The `fused` annotation: {"template", "parts" (the parts that contributed), "text"}."""
    template = cfg.effective_template()
    parts = render_parts(alt, annotations or {}, cfg)
    text = cap_words(fill_template(template, parts), cfg.max_words)
    if cfg.tokenizer:
        text = cap_tokens(text, load_tokenizer(cfg.tokenizer), cfg.max_tokens)
    return {"template": template, "parts": [p for p in cfg.parts if parts[p]], "text": text}


@register_step("fused", order=90, pool="cpu")
class CaptionFuser(Annotator):
    """Runs in the CPU worker after the model pool: no model, reads earlier annotations."""

    Config = FusedConfig
    needs_pixels = False

    def setup(self):
        fill_template(self.cfg.effective_template(), dict.fromkeys(PARTS, "x"))  # a bad template fails at build
        if self.cfg.tokenizer:
            load_tokenizer(self.cfg.tokenizer)

    def annotate(self, images, meta):
        return [fuse(m.get("caption"), m.get("annotations") or {}, self.cfg) for m in meta]
