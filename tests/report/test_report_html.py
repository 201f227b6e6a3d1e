"""The HTML report, checked as a user sees it: rendered by headless Chromium, every
image decoded, every section there, the page not blank; one file, nothing fetched."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from pipeline.report.html import SECTIONS
from tests.report.conftest import annotate_copy, filter_report

# Appended to a COPY of the report (the report itself has no script): after load, it
# writes what the browser decoded into the DOM, which --dump-dom prints.
CHECK = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  const r = {images: imgs.length, broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
             sections: [...document.querySelectorAll('section')].map(s => s.id),
             text: document.body.innerText.length};
  const pre = document.createElement('pre'); pre.id = 'check'; pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});</script>"""


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium; `make test` installs it with apt-get before the tests (they run
    offline in a network namespace). Missing -> a failure saying how to install it, never a skip."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], capture_output=True, timeout=600, check=False)
        exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed: run `make test` (it installs Debian's chromium with apt-get as root), "
                    "or `apt-get install chromium`")
    return exe


def _chromium(exe: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def report_html(report_build, tmp_path_factory):
    """The HTML report of the session build, with annotations added as the annotators will write them."""
    out, _, _ = report_build
    copy = tmp_path_factory.mktemp("html") / "out"
    shutil.copytree(out, copy)
    written = annotate_copy(copy)
    html = copy.parent / "report.html"
    proc = filter_report(copy, "--html", html)
    assert f"html report: {html.resolve()}" in proc.stdout
    return html, written


def test_chromium_renders_every_section_and_image(chromium, report_html, tmp_path):
    html, _ = report_html
    page = html.read_text()
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", CHECK + "</body>"))
    dom = _chromium(chromium, "--virtual-time-budget=10000", "--dump-dom", checked.as_uri())
    found = re.search(r'<pre id="check">(.*?)</pre>', dom.stdout)
    assert found, dom.stderr[-2000:]
    r = json.loads(found.group(1).replace("&quot;", '"'))
    # counts: 5 histograms + near-threshold grids of 3 filters + caption thumbnails
    assert r["images"] >= 5 + 3 + 1, r
    assert r["broken"] == [], f"images that did not decode: {r['broken']}"
    assert r["sections"] == list(SECTIONS)
    assert r["text"] > 2000

    shot = tmp_path / "shot.png"
    _chromium(chromium, f"--screenshot={shot}", "--window-size=1280,2400", html.as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2400, 1280)
    assert pixels.std() > 20 and (pixels < 128).mean() > 0.02, "the page renders blank"


def test_html_is_one_self_contained_file(report_html):
    html, written = report_html
    page = html.read_text()
    assert not re.search(r'(src|href)="(?!data:)', page), "every image and resource must be inline"
    assert "<script" not in page and "http-equiv" not in page
    for title in ("Counts per status and reason", "Filters: scores and thresholds", "Images nearest each threshold",
                  "Captions", "Failures", "Steps"):
        assert title in page
    for filt in ("resolution", "blur", "watermark"):
        assert f"{filt}: {filt}_" in page  # its near-threshold grids
    assert page.count("data:image/png;base64,") >= 5  # a histogram per score (matplotlib)
    assert "rejected nearest the threshold" in page and "kept nearest the threshold" in page
    assert "missing_a.jpg" in page and "http_500" in page  # failures with example URLs
    # caption table with its parts, from the annotations
    some = next(iter(written.values()))
    assert some["caption"]["text"] in page and "SIGN" in page and "alt, caption, objects, ocr" in page
    assert "idle s" in page  # per-step timings from the manifest


def test_html_of_a_build_without_annotations(report_build, tmp_path):
    out, _, _ = report_build
    html = tmp_path / "plain.html"
    filter_report(out, "--html", html)
    page = html.read_text()
    assert all(f'<section id="{s}">' in page for s in SECTIONS)
    assert "no annotations in these samples" in page and "model caption" not in page
