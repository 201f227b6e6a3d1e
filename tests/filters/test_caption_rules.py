"""Caption rules: word counts, banned words and the language of real sentences (py3langid's
bundled model), then the batcher's last check: a sample whose fused caption is empty is
rejected as `caption_rules` instead of shipped with an empty txt, and filter-report's what-if
counts it as rejected by the caption rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from annotate.fuse import CaptionFuser
from filter_dev.hostile import photo
from filters.caption_rules import EMPTY_CAPTION, CaptionFilter
from pipeline.decode import prepare_array
from pipeline.ledger import ledger_rows
from pipeline.report.rules import FilterRule
from pipeline.report.whatif import what_if
from pipeline.sample import Sample
from pipeline.step_chain import StepChain
from tests.chain_run import run_chain

ALT = [
    "A tabby cat sleeping on a red sofa in the afternoon sun",  # English: kept
    "Eine getigerte Katze schläft am Nachmittag auf einem roten Sofa",  # German
    "Un chat tigré dort sur un canapé rouge dans le soleil",  # French
    "Buy cheap VIAGRA pills online from our trusted pharmacy today",  # banned word, any case
    "sunset",  # too short for the rules below
    "",  # no alt text
]


def _meta(texts):
    return [{"caption": t} for t in texts]


def test_words_banned_and_language_of_real_sentences(tmp_path):
    banned = tmp_path / "banned.txt"
    banned.write_text("viagra\nonline casino\n")
    f = CaptionFilter.ready(min_words=2, max_words=12, banned_words_file=str(banned), languages=["en"])
    s = f.score([None] * len(ALT), _meta(ALT))
    assert s["words"].tolist() == [12, 10, 11, 10, 1, 0]
    assert s["banned"].tolist() == [0, 0, 0, 1, 0, 0]
    assert s["lang_prob"][0] > 0.9 and s["lang_prob"][1] < 0.1 and s["lang_prob"][2] < 0.1, s["lang_prob"]
    assert s["lang_prob"][4] == 1.0 and s["lang_prob"][5] == 1.0  # fewer than lang_min_words: not judged
    keep = f.keep(s)
    assert keep.tolist() == [True, False, False, False, False, False]
    assert f.details(s, keep) == ["", "language", "language", "banned_words", "min_words", "min_words"]
    # whole words only, phrases too
    more = f.score([None] * 3, _meta(["viagras and casinos", "an Online  Casino night", "online casino"]))
    assert more["banned"].tolist() == [0, 0, 1]  # "Online  Casino" has two spaces: a different phrase
    too_long = f.score([None], _meta([ALT[0] + " on a warm day"]))
    assert f.details(too_long, f.keep(too_long)) == ["max_words"]


def test_defaults_accept_any_language_and_an_unknown_language_fails_at_setup():
    f = CaptionFilter.ready()
    s = f.score([None] * len(ALT), _meta(ALT))
    assert f.keep(s).tolist() == [True] * 5 + [False]  # min_words 1: only the missing alt text fails
    with pytest.raises(ValueError, match="filters.caption_rules.languages"):
        CaptionFilter.ready(languages=["english"])


def _batch(alts, caption_filter):
    rgb = photo("chelsea.png")
    samples = [Sample(f"k{i}", i, {"kind": "file", "caption": a}, image=prepare_array(rgb, 128, 90)) for i, a in enumerate(alts)]
    chain = StepChain([caption_filter], None, [CaptionFuser.ready(parts=["alt"])], [], False, 64)
    return run_chain(chain, samples)


def test_an_empty_fused_caption_is_rejected_not_shipped_and_what_if_counts_it():
    alts = ["A cat on a sofa", "", "   ", "Another cat photo"]
    f = CaptionFilter.ready(min_words=0)  # the alt-text rules let every sample through
    samples = _batch(alts, f)
    assert [s.status for s in samples] == ["kept", "rejected", "rejected", "kept"]
    assert [(s.reason, s.detail) for s in samples[1:3]] == [("caption_rules", EMPTY_CAPTION)] * 2
    assert samples[0].training_caption == "A cat on a sofa"
    # the option off: the empty caption ships (the old behaviour)
    off = _batch(alts, CaptionFilter.ready(min_words=0, reject_empty_caption=False))
    assert [s.status for s in off] == ["kept"] * 4

    ledger = pd.DataFrame(ledger_rows(samples, "shards/00000.tar", f.score_columns))
    assert ledger["caption_rules_words"].tolist() == [5, 0, 0, 3]
    rule = FilterRule(CaptionFilter(f.cfg))
    rows = {(r["status"], r["reason"]): (r["low"], r["high"]) for r in what_if(ledger, [rule])["rows"]}
    assert rows[("rejected", "caption_rules")] == (2, 2) and rows[("kept", "")] == (2, 2)
    stricter = FilterRule(CaptionFilter(f.cfg.model_copy(update={"min_words": 4})))
    rows = {(r["status"], r["reason"]): (r["low"], r["high"]) for r in what_if(ledger, [stricter])["rows"]}
    assert rows[("rejected", "caption_rules")] == (3, 3) and rows[("kept", "")] == (1, 1)
    assert np.isfinite(ledger["caption_rules_lang_prob"]).all()
