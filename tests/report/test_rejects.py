"""The build keeps small thumbnails of rejected samples, capped per filter per unit,
always including the sample at each end of the filter's score range."""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow.parquet as pq

from pipeline import rejects
from pipeline.report.load import load_build


def test_rejects_hold_capped_thumbnails_with_both_score_ends(report_build):
    out, _, _ = report_build
    ledger = load_build(out).ledger
    thumbs = rejects.read_rejects(out)
    assert set(thumbs) <= set(ledger.loc[ledger["status"] == "rejected", "key"])
    # per unit: the ledger file of the same name lists that unit's rows
    for lf in sorted((out / "ledger").glob("*.parquet")):
        rows = pq.read_table(lf).to_pandas()
        rej = rows[rows["status"] == "rejected"]
        tar = out / rejects.REJECTS_DIR / f"{lf.stem}.tar"
        assert tar.exists() == (len(rej) > 0), lf.stem
        for reason, group in rej.groupby("reason"):
            if reason == "duplicate":  # the duplicate pass keeps every copy it removes (the report's pairs)
                assert set(group["key"]) <= set(thumbs), lf.stem
                continue
            col = {"blur": "blur_sharpness", "resolution": "resolution_min_side", "watermark": "watermark_prob"}[reason]
            have = [k for k in group["key"] if k in thumbs]
            assert len(have) == min(len(group), rejects.PER_FILTER)
            ordered = group.sort_values([col, "key"])["key"].tolist()
            assert ordered[0] in have and ordered[-1] in have  # both ends: the one nearest the threshold is there
    for key, (jpg, meta) in thumbs.items():
        img = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and max(img.shape[:2]) <= rejects.THUMB_SIDE
        row = ledger.set_index("key").loc[key]
        assert meta["reason"] == row["reason"] and meta["source"] == row["source"]


def test_choose_caps_and_spreads():
    from pipeline.decode import StoredImage
    from pipeline.sample import Sample

    samples = []
    for i in range(20):
        s = Sample(f"k{i:02d}", i, {"url": f"http://x/{i}"}, image=StoredImage(np.zeros((4, 4, 3), np.uint8), b"jpg", 4, 4))
        s.scores["blur_sharpness"] = float(100 - i)
        s.verdict.reject("blur", "")
        samples.append(s)
    chosen = rejects.choose(samples, per_filter=5)
    scores = sorted(s.scores["blur_sharpness"] for s in chosen)
    assert len(chosen) == 5 and scores[0] == 81 and scores[-1] == 100
