"""The hard decode deadline: an image whose decode overruns images.max_decode_seconds
ends its worker process (a decoder cannot be interrupted), and the unit runs again with
that image marked: it is one `failed: decode_timeout` row and the photos beside it in
the same unit are kept."""

from __future__ import annotations

import shutil

from PIL import Image

from filter_dev import hostile
from filter_dev.photos import skimage_photos
from pipeline.ledger import read_ledger
from pipeline.runner import run_build
from tests.pipeline.conftest import workflow

GOOD = ("astronaut.png", "coffee.png", "rocket.jpg")


def test_a_slow_decode_fails_alone_and_its_unit_survives(ray_session, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for p in skimage_photos():
        if p.name in GOOD:
            shutil.copy(p, folder / p.name)
    # under the header's scan limit (256), so only the deadline can stop it: 0.9 s to decode
    # on this 2-core machine with a test suite running, ~3 s when loaded, against a limit of
    # 0.3 s (a good photo: under 0.05 s)
    big = Image.fromarray(hostile.photo("coffee.png")).resize((1500, 1000))
    (folder / "b_slow.jpg").write_bytes(hostile.scan_flood_jpeg(big, 250))
    cfg = workflow([{"type": "folder", "path": str(folder)}], output={"shard_size": 10},
                   images={"max_decode_seconds": 0.3}, ray={"num_workers": 1})
    manifest = run_build(cfg, tmp_path / "out", show_progress=False)

    ledger = read_ledger(tmp_path / "out").to_pandas()
    rows = {r.source.rsplit("/", 1)[-1]: (r.status, r.reason) for r in ledger.itertuples()}
    assert rows == {**{n: ("kept", "") for n in GOOD}, "b_slow.jpg": ("failed", "decode_timeout")}, rows
    slow = ledger[ledger["reason"] == "decode_timeout"]
    assert "images.max_decode_seconds = 0.3 s" in slow["detail"].iloc[0]
    (death,) = manifest["worker_deaths"]  # one restart, no bisection
    assert "decode_timeout" in death
    assert not (tmp_path / "out" / "_decode_timeouts").exists()  # the note was read and removed
