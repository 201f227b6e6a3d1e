"""Polite downloading, through the real download path (img2dataset's thread pool over
pipeline/fetch.py) against loopback servers that count the requests they serve at once:
at most `download.max_per_host` per host, a 429's Retry-After is waited out (by every
thread asking that host), and a pause past `max_seconds` fails the URL as `rate_limited`."""

from __future__ import annotations

import io
import threading
import time
from collections import defaultdict

from PIL import Image

from filter_dev import hostile_servers as hs
from filter_dev.hostile import photo
from pipeline.config import DownloadConfig, ImagesConfig
from pipeline.decode import ImageDecoder
from pipeline.download import download_unit
from pipeline.sources import InputItem
from pipeline.verdict import Status


class CountingServer(hs.RouteServer):
    """Serves a JPEG after `delay` s, counting requests in progress; above `limit` at
    once it answers 429 (as a server protecting itself would); `busy_first` paths answer
    429 with Retry-After once, then the image."""

    def __init__(self, host: str, delay: float = 0.15, limit: int = 2, retry_after: str = "1"):
        self.now = self.most = 0
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.delay, self.limit, self.retry_after = delay, limit, retry_after
        buf = io.BytesIO()
        Image.fromarray(photo("chelsea.png")).save(buf, "JPEG")
        self.jpeg = buf.getvalue()
        super().__init__(host, {"/img/*": self.image, "/busy/*": self.busy, "/closed/*": self.closed})

    def image(self, req):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            over = self.now > self.limit
        try:
            time.sleep(self.delay)
            self._answer(req, 429) if over else hs.body(self.jpeg)(req)
        finally:
            with self.lock:
                self.now -= 1

    def busy(self, req):
        seen = self.times[req.path]
        seen.append(time.monotonic())
        self._answer(req, 429) if len(seen) == 1 else hs.body(self.jpeg)(req)

    def closed(self, req):
        self._answer(req, 429)

    def _answer(self, req, status):
        req.send_response(status)
        req.send_header("Retry-After", self.retry_after)
        req.send_header("Content-Length", "0")
        req.end_headers()


def _download(urls, **download):
    cfg = DownloadConfig(allow_private_networks=True, thread_count=16, timeout=5, **download)
    items = [InputItem(f"k{i}", u) for i, u in enumerate(urls)]
    return download_unit(items, cfg, ImageDecoder.for_images(ImagesConfig()), lambda s: None)


def test_at_most_max_per_host_requests_at_once_per_host():
    with CountingServer("127.0.0.1") as a, CountingServer("127.0.0.2") as b:
        urls = [s.url(f"img/{i}.jpg") for i in range(12) for s in (a, b)]
        samples = _download(urls, max_per_host=2)
    assert [s.status for s in samples] == [Status.PENDING] * len(urls)  # every image in: no 429 was needed
    assert (a.most, b.most) == (2, 2)  # 16 threads, 2 at a time on each host


def test_retry_after_is_waited_out_then_the_image_is_fetched():
    with CountingServer("127.0.0.4", retry_after="1") as s:
        samples = _download([s.url(f"busy/{i}.jpg") for i in range(3)], max_per_host=4)
    assert [x.status for x in samples] == [Status.PENDING] * 3
    first_429 = min(t[0] for t in s.times.values())
    assert all(len(t) == 2 and t[1] - first_429 >= 0.95 for t in s.times.values())  # the host's pause, for all


def test_a_pause_past_max_seconds_fails_as_rate_limited():
    with CountingServer("127.0.0.5", retry_after="3600") as s:
        t0 = time.monotonic()
        samples = _download([s.url(f"closed/{i}.jpg") for i in range(3)], max_seconds=5)
    assert time.monotonic() - t0 < 4  # no waiting for a pause that cannot end in time
    assert {(x.status, x.verdict.reason) for x in samples} == {(Status.FAILED, "rate_limited")}
    assert all("download.max_seconds = 5 s" in x.verdict.detail for x in samples)
    assert any("asked to wait 3600 s" in x.verdict.detail for x in samples)
