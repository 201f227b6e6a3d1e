"""Caption rules on the alt text: word count, banned words, language; and, after
caption fusion, no sample ships with an empty training caption.

Scores (ledger columns `caption_rules_words`, `_banned`, `_lang_prob`):
- `words`: words of the alt text (whitespace-separated);
- `banned`: how many times a banned word or phrase occurs (whole words, any case);
- `lang_prob`: the probability that the alt text is in one of `languages`, from
  py3langid (langid.py's model, shipped inside the pip package: works offline), with
  probabilities normalised over its 97 languages. 1.0 when `languages` is empty (any
  language passes) or the alt text has fewer than `lang_min_words` words: a naive Bayes
  n-gram model guesses on one or two words ("red car" is not reliably English).

`reject_empty_caption`: the final caption (caption fusion's text, or the alt text when
fusion does not run) is known only after the annotators, so the batcher asks this
filter again then (`check_final_caption`); an empty one is rejected with reason
`caption_rules`, detail `empty_caption`, and filter-report counts such rows as rejected by this filter
(`late_details`). Runs in the CPU workers, needs no pixels, before blur: text is cheap.

(Named `caption_rules`: the captioner annotator owns the step name `caption`.)
DataComp's basic filter: more than 2 words (`min_words: 3`) and English (`languages: [en]`).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
from pydantic import Field

from filters.base import Filter, FilterConfig
from steps.registry import register_step

EMPTY_CAPTION = "empty_caption"
_LANGID = None
_LANGID_LOCK = threading.Lock()


def language_identifier():
    """py3langid's identifier with normalised probabilities, loaded once per process."""
    global _LANGID
    with _LANGID_LOCK:
        if _LANGID is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _LANGID = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return _LANGID


class CaptionConfig(FilterConfig):
    enabled: bool = False
    min_words: int = Field(1, ge=0, description="reject if the alt text has fewer words")
    max_words: int | None = Field(None, ge=1, description="reject if the alt text has more words (null: no limit)")
    banned_words: list[str] = Field(default_factory=list, description="words or phrases; any occurrence rejects (whole words, any case)")
    banned_words_file: str | None = Field(None, description="a text file with one more banned word or phrase per line")
    languages: list[str] = Field(default_factory=list, description="ISO 639-1 codes the alt text must be in, e.g. [en]; empty: any")
    min_lang_prob: float = Field(0.5, ge=0, le=1, description="reject if P(alt text in one of `languages`) is lower")
    lang_min_words: int = Field(3, ge=0, description="alt texts with fewer words are not language-checked (too short to tell)")
    reject_empty_caption: bool = Field(True, description="reject a sample whose final (fused) caption is empty instead of shipping an empty txt")


@register_step("caption_rules", order=15, pool="cpu")
class CaptionFilter(Filter):
    Config = CaptionConfig
    needs_pixels = False
    score_names = ("words", "banned", "lang_prob")
    threshold_fields = {"words": "min_words", "lang_prob": "min_lang_prob"}
    late_details = (EMPTY_CAPTION,)

    def setup(self):
        c = self.cfg
        words = [w.strip() for w in c.banned_words]
        if c.banned_words_file:
            path = Path(c.banned_words_file)
            if not path.is_file():
                raise FileNotFoundError(f"filters.caption_rules.banned_words_file: {path} does not exist")
            words += [w.strip() for w in path.read_text(encoding="utf-8").splitlines()]
        words = sorted({w.lower() for w in words if w}, key=len, reverse=True)  # longest first: phrases before their words
        self.banned = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)", re.I) if words else None
        self.langid = language_identifier() if c.languages else None
        if self.langid is not None:
            unknown = set(c.languages) - set(self.langid.nb_classes)
            if unknown:
                raise ValueError(f"filters.caption_rules.languages: {sorted(unknown)} unknown to py3langid; known: {', '.join(sorted(self.langid.nb_classes))}")

    def _lang_prob(self, text: str, words: int) -> float:
        if self.langid is None or words < self.cfg.lang_min_words:
            return 1.0
        return float(sum(p for lang, p in self.langid.rank(text) if lang in self.cfg.languages))

    def score(self, images, meta):
        texts = [m.get("caption") or "" for m in meta]
        words = np.array([len(t.split()) for t in texts], dtype=np.float64)
        banned = np.array([len(self.banned.findall(t)) if self.banned else 0 for t in texts], dtype=np.float64)
        lang = np.array([self._lang_prob(t, int(w)) for t, w in zip(texts, words)], dtype=np.float64)
        return {"words": words, "banned": banned, "lang_prob": lang}

    def _checks(self, s) -> dict[str, np.ndarray]:
        c = self.cfg
        words = np.asarray(s["words"])
        return {
            "min_words": words >= c.min_words,
            "max_words": words <= (c.max_words if c.max_words is not None else np.inf),
            "banned_words": np.asarray(s["banned"]) == 0,
            "language": np.asarray(s["lang_prob"]) >= c.min_lang_prob,
        }

    def keep(self, scores):
        return np.logical_and.reduce(list(self._checks(scores).values()))

    def details(self, scores, keep):
        checks = self._checks(scores)
        return ["" if k else ",".join(n for n, ok in checks.items() if not ok[i]) for i, k in enumerate(keep)]

    def check_final_caption(self, text: str) -> str:
        return EMPTY_CAPTION if self.cfg.reject_empty_caption and not text.strip() else ""
