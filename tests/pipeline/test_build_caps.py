"""Real builds (img2dataset downloading through pipeline.fetch, on Ray) over good photos
and hostile servers: each hostile URL costs only itself, within seconds, and private
addresses are refused by default (and on every redirect hop) without being contacted."""

from __future__ import annotations

import shutil
import time

import pytest

from demo.inputs import make_video
from filter_dev import hostile_servers as hs
from filter_dev.photos import skimage_photos
from pipeline.config import DownloadConfig
from pipeline.ledger import read_ledger
from pipeline.runner import run_build
from tests.pipeline.conftest import workflow, write_jsonl

PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]
PUBLIC = "127.0.0.2"  # plays the internet: the only network these builds may fetch from
EXPECTED = {  # url path on PUBLIC -> failure reason
    "endless.jpg": "too_large",
    "huge.jpg": "too_large",
    "drip.jpg": "timeout",
    "chain/0": "too_many_redirects",
    "to-loopback": "blocked_address",
    "to-metadata": "blocked_address",
}


def _photo_bytes() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in skimage_photos() if p.name in PHOTOS}


def _check_accounting(manifest, ledger, n_inputs):
    c = manifest["counts"]
    assert len(ledger) == n_inputs == c["inputs"] and ledger["key"].is_unique
    assert c["status"]["kept"] + c["status"]["rejected"] + c["status"]["failed"] == n_inputs


@pytest.fixture(scope="module")
def private_server():
    """On 127.0.0.1: the address every hostile redirect points at. It must never be asked."""
    with hs.RouteServer("127.0.0.1", {"/secret.jpg": hs.body(_photo_bytes()["chelsea.png"], "image/png")}) as s:
        yield s


@pytest.fixture(scope="module")
def capped_build(ray_session, private_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("caps")
    clip = tmp / "clip.mp4"
    make_video(clip, [p for p in skimage_photos() if p.name in PHOTOS], seconds_per_photo=1.0, fps=10, gop=10)
    routes = {f"/photos/{n}": hs.body(b, "image/png") for n, b in _photo_bytes().items()}
    routes.update({
        "/endless.jpg": hs.endless,
        "/huge.jpg": hs.huge_content_length,
        "/drip.jpg": hs.drip(0.5),
        "/chain/*": hs.chain,
        "/to-loopback": hs.redirect(private_server.url("secret.jpg")),
        "/to-metadata": hs.redirect("http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
        "/clip.mp4": hs.body(clip.read_bytes(), "video/mp4"),
    })
    with hs.RouteServer(PUBLIC, routes) as public, hs.SilentServer(PUBLIC) as silent:
        rows = [{"url": public.url(f"photos/{n}"), "caption": n} for n in PHOTOS]
        rows += [{"url": public.url(p), "caption": p} for p in EXPECTED]
        rows += [{"url": silent.url("never-answers.jpg"), "caption": "silent"},
                 {"url": private_server.url("secret.jpg"), "caption": "direct to a private address"}]
        urls = write_jsonl(tmp / "urls.jsonl", rows)
        cfg = workflow(
            [{"type": "url_list", "path": str(urls)},
             {"type": "video", "path": public.url("clip.mp4"), "every_seconds": 1.0}],
            download={"allow_private_networks": [f"{PUBLIC}/32"], "max_bytes": 2_000_000, "max_seconds": 3,
                      "timeout": 2, "max_redirects": 3, "video_max_bytes": 20_000, "thread_count": 16},
            output={"shard_size": 8},
        )
        manifest = run_build(cfg, tmp / "out", show_progress=False)
        for _ in range(20):  # a server notices a hang-up at its next write
            if {"/drip.jpg", "/endless.jpg", "/huge.jpg"} <= set(public.served):
                break
            time.sleep(0.1)
        hits, served = list(public.hits), dict(public.served)
    return manifest, read_ledger(tmp / "out").to_pandas(), len(rows) + 1, hits, served


def test_capped_build_accounts_for_every_input(capped_build):
    manifest, ledger, n_inputs, _, _ = capped_build
    _check_accounting(manifest, ledger, n_inputs)


def test_good_photos_kept_next_to_hostile_servers(capped_build):
    _, ledger, _, _, _ = capped_build
    photos = ledger[ledger["source"].str.contains("/photos/")]
    assert len(photos) == len(PHOTOS) and (photos["status"] == "kept").all(), photos[["source", "reason", "detail"]]


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_hostile_url_fails_alone_with_its_reason(capped_build, path):
    _, ledger, _, _, _ = capped_build
    row = ledger[ledger["source"].str.endswith("/" + path)].iloc[0]
    assert (row["status"], row["reason"]) == ("failed", EXPECTED[path]), row.to_dict()
    assert row["shard"] is None and row["detail"]


def test_failure_details_name_the_setting(capped_build):
    _, ledger, _, _, _ = capped_build
    detail = ledger.set_index(ledger["source"].str.rsplit("/", n=1).str[-1])["detail"]
    assert "Content-Length 1000000000000" in detail["huge.jpg"] and "download.max_bytes" in detail["huge.jpg"]
    assert "download.max_bytes = 2000000" in detail["endless.jpg"]
    assert "download.max_seconds = 3 s" in detail["drip.jpg"]
    assert "169.254.169.254" in detail["to-metadata"] and "cloud metadata" in detail["to-metadata"]
    assert "127.0.0.1" in detail["to-loopback"] and "allow_private_networks" in detail["to-loopback"]


def test_silent_server_times_out_and_private_address_is_refused(capped_build, private_server):
    _, ledger, _, _, _ = capped_build
    silent = ledger[ledger["source"].str.endswith("/never-answers.jpg")].iloc[0]
    assert (silent["status"], silent["reason"]) == ("failed", "timeout")
    direct = ledger[ledger["source"] == private_server.url("secret.jpg")].iloc[0]
    assert (direct["status"], direct["reason"]) == ("failed", "blocked_address")
    assert private_server.hits == []  # neither the direct URL nor a redirect reached 127.0.0.1


def test_capped_video_url_fails_as_too_large(capped_build):
    _, ledger, _, hits, _ = capped_build
    (row,) = ledger[ledger["kind"] == "video"].to_dict("records")
    assert (row["status"], row["reason"]) == ("failed", "too_large")
    assert "download.video_max_bytes = 20000" in row["detail"]
    assert "/clip.mp4" in hits


def test_hostile_servers_end_in_seconds(capped_build):
    _, _, _, hits, served = capped_build
    # Without the caps, the drip and endless servers would be held for 30 s each (their
    # own safety stop). Timed by the servers: when the client hung up.
    assert 2.5 < served["/drip.jpg"] < 6, served  # cut at max_seconds = 3
    assert served["/endless.jpg"] < 3 and served["/huge.jpg"] < 3, served
    assert hits.count("/chain/3") == 1 and "/chain/4" not in hits


def test_private_addresses_blocked_by_default(ray_session, private_server, tmp_path):
    """Default settings: good local files are kept, every URL to a private address fails as
    blocked_address naming it, and the server behind them is never asked."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in skimage_photos():
        if p.name in PHOTOS:
            shutil.copy(p, folder / p.name)
    rows = [{"url": private_server.url("secret.jpg")},
            {"url": f"http://localhost:{private_server.port}/secret.jpg"},
            {"url": "http://169.254.169.254/latest/meta-data/"},
            {"url": "http://10.0.0.1/x.jpg"},
            {"url": "http://[::1]/x.jpg"}]
    urls = write_jsonl(tmp_path / "urls.jsonl", rows)
    cfg = workflow([{"type": "url_list", "path": str(urls)}, {"type": "folder", "path": str(folder)}],
                   download={"allow_private_networks": False})
    assert cfg.download.allow_private_networks is False
    manifest = run_build(cfg, tmp_path / "out", show_progress=False)
    ledger = read_ledger(tmp_path / "out").to_pandas()
    _check_accounting(manifest, ledger, len(rows) + len(PHOTOS))
    files = ledger[ledger["kind"] == "file"]
    assert len(files) == len(PHOTOS) and (files["status"] == "kept").all()
    urls_rows = ledger[ledger["kind"] == "url"]
    assert (urls_rows["reason"] == "blocked_address").all(), urls_rows[["source", "reason", "detail"]]
    for want in ("127.0.0.1", "localhost resolves to", "169.254.169.254", "10.0.0.1", "::1"):
        assert urls_rows["detail"].str.contains(want, regex=False).any(), want
    assert private_server.hits == []


def test_video_url_has_its_own_deadline():
    """A drip-fed video URL fails as timeout at download.video_max_seconds (one failed row)."""
    from pipeline.config import ImagesConfig
    from pipeline.decode import ImageDecoder
    from pipeline.sources import InputItem, VideoSampling
    from pipeline.video import load_video_unit

    cfg = DownloadConfig(allow_private_networks=[f"{PUBLIC}/32"], video_max_seconds=1.5, timeout=1.0)
    with hs.RouteServer(PUBLIC, {"/slow.mp4": hs.drip(0.2)}) as server:
        item = InputItem("v", server.url("slow.mp4"), video=VideoSampling(every_seconds=1.0, keyframes=False))
        t0 = time.monotonic()
        (row,) = load_video_unit([item], cfg, ImageDecoder.for_images(ImagesConfig()), lambda s: None)
        took = time.monotonic() - t0
    assert (row.status, row.reason, row.key) == ("failed", "timeout", "v_error")
    assert "download.video_max_seconds = 1.5 s" in row.detail and took < 3
