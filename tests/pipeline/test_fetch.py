"""pipeline.fetch against real hostile servers on loopback: byte caps, one deadline per
item, redirects followed hop by hop, private addresses refused after DNS and on every hop."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from filter_dev import hostile_servers as hs
from pipeline import dns_cache
from pipeline.config import DownloadConfig
from pipeline.fetch import FetchError, FetchPolicy, blocked_kind, fetch_bytes, policy_for

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK_2 = "127.0.0.2"  # a second loopback address: "the internet" for the redirect tests
ONLY_LOOPBACK_2 = (ipaddress.ip_network(f"{LOOPBACK_2}/32"),)


def policy(**kw) -> FetchPolicy:
    base = dict(max_bytes=200_000, max_seconds=2.0, timeout=1.5, allow_private_networks=True, max_redirects=5)
    return FetchPolicy(**{**base, **kw})


def failure(url: str, pol: FetchPolicy) -> tuple[FetchError, float]:
    t0 = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetch_bytes(url, pol)
    return info.value, time.monotonic() - t0


@pytest.fixture(scope="module")
def server():
    routes = {
        "/ok.jpg": hs.body(b"\xff\xd8" + b"x" * 150_000),
        "/endless.jpg": hs.endless,
        "/huge.jpg": hs.huge_content_length,
        "/drip.jpg": hs.drip(0.3),
        "/drip-no-length.jpg": hs.drip(0.3, length=None),
        "/drip-headers.jpg": hs.drip_headers(0.3),
        "/chain/*": hs.chain,
        "/loop-a": hs.redirect("/loop-b"),
        "/loop-b": hs.redirect("/loop-a"),
        "/to-metadata": hs.redirect("http://169.254.169.254/latest/meta-data/"),
        "/to-ftp": hs.redirect("ftp://example.com/x.jpg"),
        "/cut-chunked.jpg": hs.cut_chunked,
        "/cut.jpg": hs.cut_body,
        "/gone.jpg": hs.status(410),
    }
    with hs.RouteServer("127.0.0.1", routes) as s:
        yield s


@pytest.fixture(scope="module")
def second(server):
    """A server on 127.0.0.2 whose redirects point at the first server (127.0.0.1)."""
    routes = {
        "/photo.jpg": hs.body(b"\xff\xd8" + b"y" * 1000),
        "/to-loopback": hs.redirect(server.url("ok.jpg")),
        "/to-localhost": hs.redirect(f"http://localhost:{server.port}/ok.jpg"),
        "/to-metadata": hs.redirect("http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
        "/to-self": hs.redirect("/photo.jpg"),
    }
    with hs.RouteServer(LOOPBACK_2, routes) as s:
        yield s


def test_a_body_under_the_cap_is_returned(server):
    assert len(fetch_bytes(server.url("ok.jpg"), policy()).getvalue()) == 150_002


def test_endless_body_stops_at_the_cap_and_memory_stays_under_it(server):
    tracemalloc.start()
    err, took = failure(server.url("endless.jpg"), policy(max_bytes=3_000_000, max_seconds=20))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert err.reason == "too_large" and "download.max_bytes = 3000000" in str(err)
    assert took < 5
    assert peak < 3_000_000 * 1.5 + 2 * 65536, peak  # BytesIO growth slack; unbounded before
    _wait_for(lambda: "/endless.jpg" in server.served)  # the connection is closed at once, not at GC
    assert server.served["/endless.jpg"] < 3


def _wait_for(condition, seconds: float = 2.0) -> None:
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        time.sleep(0.05)


def test_huge_content_length_fails_before_the_body(server):
    err, took = failure(server.url("huge.jpg"), policy())
    assert err.reason == "too_large" and "Content-Length 1000000000000" in str(err) and "body not read" in str(err)
    assert took < 1


def test_failures_say_what_happened_once(server):
    """A cut chunked body has no announced length to be short of; an HTTP status is named
    once (the reason category), not repeated in the detail."""
    err, _ = failure(server.url("/cut-chunked.jpg"), policy())
    assert err.reason == "incomplete_body" and "chunked" in str(err) and "None" not in str(err), err
    err, _ = failure(server.url("/cut.jpg"), policy())
    assert err.reason == "incomplete_body" and "990 bytes short" in str(err), err
    err, _ = failure(server.url("/gone.jpg"), policy())
    assert str(err) == f"http_410: {server.url('/gone.jpg')}: the server answered 410 Gone", err


def test_drip_feed_ends_at_the_total_deadline(server):
    # each byte comes well inside the 1.5 s read timeout: only the total deadline can stop it
    for path in ("drip.jpg", "drip-no-length.jpg"):  # without a length, a cut body must not pass as whole
        err, took = failure(server.url(path), policy(max_seconds=1.5, timeout=1.0))
        assert err.reason == "timeout" and "download.max_seconds = 1.5 s" in str(err)
        assert 1.4 < took < 3
        _wait_for(lambda path=path: "/" + path in server.served)  # the drip server sees the hang-up
        assert server.served["/" + path] < 3.5


def test_drip_fed_headers_end_at_the_total_deadline(server):
    err, took = failure(server.url("drip-headers.jpg"), policy(max_seconds=1.5, timeout=1.0))
    assert err.reason == "timeout"
    assert 1.4 < took < 3


def test_server_that_accepts_and_never_answers():
    with hs.SilentServer() as silent:
        err, took = failure(silent.url("x.jpg"), policy(max_seconds=1.0, timeout=5))
        assert err.reason == "timeout" and "download.max_seconds = 1 s" in str(err) and took < 2.5
        err, took = failure(silent.url("x.jpg"), policy(max_seconds=10, timeout=0.5))
        assert err.reason == "timeout" and "download.timeout" in str(err) and took < 2


def test_redirect_chain_past_the_limit_and_loops(server):
    err, _ = failure(server.url("chain/0"), policy(max_redirects=5))
    assert err.reason == "too_many_redirects" and "max_redirects = 5" in str(err)
    assert server.hits.count("/chain/5") == 1 and "/chain/6" not in server.hits  # 5 hops followed, not 6
    err, _ = failure(server.url("loop-a"), policy())
    assert err.reason == "redirect_loop"
    err, _ = failure(server.url("to-ftp"), policy())
    assert err.reason == "unsupported_url_scheme"


def test_private_addresses_are_refused_by_default_and_never_contacted(server):
    default = policy_for(DownloadConfig())
    assert default.allow_private_networks is False
    before = len(server.hits)
    for url, named in [
        (server.url("ok.jpg"), "127.0.0.1, a loopback address"),
        (f"http://localhost:{server.port}/ok.jpg", "localhost resolves to"),  # checked after DNS
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://10.1.2.3/x.jpg", "private"),
        ("http://[::1]:80/x.jpg", "loopback"),
        ("http://[fe80::1]/x.jpg", "link-local"),
        ("http://0.0.0.0/x.jpg", "unspecified"),
        ("http://224.0.0.1/x.jpg", "multicast"),
        ("http://[::ffff:192.168.0.1]/x.jpg", "private"),
    ]:
        err, took = failure(url, default)
        assert err.reason == "blocked_address" and named in str(err), str(err)
        assert "allow_private_networks" in str(err) and took < 0.5
    assert len(server.hits) == before  # nothing reached the server


def test_every_redirect_hop_is_checked(server, second):
    only_2 = policy(allow_private_networks=ONLY_LOOPBACK_2)
    assert fetch_bytes(second.url("to-self"), only_2).getvalue().startswith(b"\xff\xd8y")
    before = len(server.hits)
    for path, named in [("to-loopback", "127.0.0.1"), ("to-localhost", "localhost resolves to"),
                        ("to-metadata", "169.254.169.254")]:
        err, _ = failure(second.url(path), only_2)
        assert err.reason == "blocked_address" and named in str(err), str(err)
    assert len(server.hits) == before  # the first hop was fetched, the private second hop never
    # true allows every private network (the tests' and the demo's loopback servers)
    assert fetch_bytes(second.url("to-loopback"), policy()).getvalue().startswith(b"\xff\xd8x")


def test_connects_to_the_address_it_checked(second, monkeypatch):
    """DNS rebinding: a name that answers an allowed address, then a blocked one. The
    fetch resolves once per hop and connects to what it checked. (The resolver is
    replaced: no DNS server runs offline; the HTTP server is real.)"""
    real, calls = socket.getaddrinfo, []

    def rebinding(host, port, *a, **kw):
        if host != "rebind.test":
            return real(host, port, *a, **kw)
        calls.append(host)
        ip = LOOPBACK_2 if len(calls) == 1 else "127.0.0.1"
        return real(ip, port, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    data = fetch_bytes(f"http://rebind.test:{second.port}/photo.jpg", policy(allow_private_networks=ONLY_LOOPBACK_2))
    assert data.getvalue().startswith(b"\xff\xd8y") and calls == ["rebind.test"]


def test_dns_answers_are_cached_and_still_checked(second, monkeypatch):
    """Two fetches of one host resolve it once; the cached answer is checked like a fresh
    one (a policy that blocks its address still refuses it, without contacting it)."""
    real, calls = socket.getaddrinfo, []

    def counting(host, port, *a, **kw):
        if host != "cached.test":
            return real(host, port, *a, **kw)
        calls.append(host)
        return real(LOOPBACK_2, port, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    dns_cache.clear()
    for _ in range(2):
        assert fetch_bytes(f"http://cached.test:{second.port}/photo.jpg", policy()).getvalue().startswith(b"\xff\xd8y")
    assert calls == ["cached.test"]
    before = len(second.hits)
    err, _ = failure(f"http://CACHED.test:{second.port}/photo.jpg", policy_for(DownloadConfig()))
    assert err.reason == "blocked_address" and f"cached.test resolves to {LOOPBACK_2}" in str(err)
    assert calls == ["cached.test"] and len(second.hits) == before


def test_blocked_kinds():
    assert blocked_kind(ipaddress.ip_address("8.8.8.8")) is None
    assert blocked_kind(ipaddress.ip_address("2606:4700::1111")) is None
    assert blocked_kind(ipaddress.ip_address("172.20.0.1")) == "private"
    assert blocked_kind(ipaddress.ip_address("64:ff9b::7f00:1")) == "loopback"  # NAT64 of 127.0.0.1
    assert blocked_kind(ipaddress.ip_address("fd00::1")) == "private"
    assert blocked_kind(ipaddress.ip_address("100.64.0.1")) == "not publicly routable"


def test_https_verifies_certificates_and_caps_the_handshake(tmp_path):
    cert, key = hs.self_signed_cert(tmp_path, LOOPBACK_2)
    with hs.TlsServer(LOOPBACK_2, {"/photo.jpg": hs.body(b"\xff\xd8" + b"z" * 5000)}, cert, key) as tls:
        err, _ = failure(tls.url("photo.jpg"), policy())
        assert err.reason == "tls_error" and "CERTIFICATE_VERIFY_FAILED" in str(err)  # not trusted: refused
        # trusted (SSL_CERT_FILE, read when the process makes its TLS context): fetched
        code = ("from pipeline.fetch import FetchPolicy, fetch_bytes; "
                "print(len(fetch_bytes({!r}, FetchPolicy(max_bytes=10**6, max_seconds=5, timeout=5, "
                "allow_private_networks=True)).getvalue()))".format(tls.url("photo.jpg")))
        env = {**os.environ, "SSL_CERT_FILE": cert, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stdout.strip() == "5002", proc.stderr
    with hs.DripTlsServer(LOOPBACK_2, 0.2) as drip:
        err, took = failure(drip.url("x.jpg"), policy(max_seconds=1.5, timeout=5))
        assert err.reason == "timeout" and "download.max_seconds" in str(err) and took < 3
