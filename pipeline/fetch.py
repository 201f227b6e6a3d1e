"""fetch: one capped HTTP(S) GET. Every download the job makes (image and video URLs)
goes through `fetch`; a hostile server costs at most its caps.

- Bytes: a `Content-Length` above the cap fails before the body is read; otherwise the
  body is read in chunks and reading stops one byte past the cap (`too_large`), so
  memory (or the temp file) never holds more than the cap.
- Time: one deadline per item covering DNS, connect, TLS, headers, body, every redirect
  and retry (`timeout`). Each socket operation also waits at most `timeout` seconds for
  data, and a watchdog shuts the socket at the deadline, so a server that drips its
  headers or its TLS handshake cannot stretch it either.
- Addresses: each hop's host is resolved once (answers kept a minute per process:
  pipeline/dns_cache.py), every address it resolves to is checked
  (loopback, private, link-local incl. cloud metadata, multicast, unspecified,
  reserved: `blocked_address`), and the connection is made to the checked address,
  never to a second lookup (no DNS rebinding). Redirects are followed here, hop by hop,
  with a limit (`too_many_redirects`, `redirect_loop`).
- Politeness (pipeline/host_limits.py): at most `max_per_host` fetches of one host's
  URLs at once in this process (a redirect hop is counted against the URL's own host);
  the deadline starts once the fetch has its turn. A 429 (or a 503 with Retry-After)
  pauses that host for every thread until its Retry-After (else 1, 2, 4 ... s) and the
  URL is asked again, within the same deadline; a pause that would pass it fails the URL
  as `rate_limited` at once.

Errors are raised as FetchError, whose str() is 'category: message' (the ledger's
reason and detail).
"""

from __future__ import annotations

import _socket
import heapq
import http.client
import io
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote, urljoin, urlsplit

from pipeline import dns_cache
from pipeline.host_limits import HostGate, host_turn, retry_after_seconds

CHUNK = 64 * 1024
REDIRECTS = (301, 302, 303, 307, 308)
# Failures that a retry cannot fix (the same answer would come back).
PERMANENT = {"too_large", "timeout", "blocked_address", "redirect_loop", "too_many_redirects",
             "unsupported_url_scheme", "robots_disallowed", "dns_error", "rate_limited"}
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SAFE_URL_CHARS = "!#$%&'()*+,/:;=?@[]~"  # kept as is; spaces, controls and non-ASCII are %-escaped


class FetchError(Exception):
    """A fetch that did not produce a body; `reason` is the ledger category."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int
    max_seconds: float
    timeout: float  # longest wait for a connect or for the next bytes
    allow_private_networks: bool | tuple[Network, ...] = False  # True: all; a tuple: only those networks
    max_redirects: int = 10
    max_per_host: int = 4  # requests to one host at once, in this process
    user_agent: str = "Mozilla/5.0"
    bytes_setting: str = "download.max_bytes"  # named in error messages
    seconds_setting: str = "download.max_seconds"


# --- addresses ---------------------------------------------------------------------

def blocked_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why this address must not be fetched by default, or None for a public address."""
    if ip.version == 6:
        inner = ip.ipv4_mapped or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None)
        if inner is not None:
            return blocked_kind(inner)
    if ip in METADATA_ADDRESSES:
        return "link-local, the cloud metadata service"
    for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if ip.is_global else "not publicly routable"


def _check_address(policy: FetchPolicy, url: str, host: str, ip) -> None:
    allow = policy.allow_private_networks
    if allow is True:
        return
    kind = blocked_kind(ip)
    if kind is None or any(ip in net for net in allow or ()):
        return
    named = host if host == str(ip) else f"{host} resolves to {ip}"
    raise FetchError(
        "blocked_address",
        f"{url}: {named}, a {kind} address; private, loopback and link-local addresses are not fetched "
        "(set download.allow_private_networks: true, or a list of networks, to allow them)",
    )


def _resolve(host: str, port: int, deadline: float) -> list[tuple]:
    """getaddrinfo within the deadline, from this process's short cache (pipeline/dns_cache.py)."""
    try:
        ip = ipaddress.ip_address(host)
        return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, (host, port))]
    except ValueError:
        pass
    try:
        answer = dns_cache.lookup(host, port, deadline)
    except Exception as err:  # noqa: BLE001 - reported as the URL's failure
        raise FetchError("dns_error", f"cannot resolve {host}: {err}") from None
    if answer is None:
        raise _Expired(f"DNS lookup of {host}")
    return [(family, sockaddr[:2]) for family, _, _, _, sockaddr in answer]


# --- deadline ----------------------------------------------------------------------

class _Expired(Exception):
    """The item's deadline passed during `what`."""


class _Guard:
    """The socket a watchdog shuts when its deadline passes."""

    def __init__(self, deadline: float):
        self.deadline, self.sock, self.fired = deadline, None, False
        self.lock = threading.Lock()

    def release(self) -> None:
        with self.lock:
            self.sock = None


class _Watchdog:
    """One thread per process: shuts each guarded socket at its deadline, which wakes
    any read or TLS handshake blocked on it (per-read timeouts alone let a server that
    sends one byte at a time hold a download forever)."""

    def __init__(self):
        self._heap: list = []
        self._cv = threading.Condition()
        self._seq = 0
        threading.Thread(target=self._run, daemon=True, name="fetch-watchdog").start()

    def guard(self, deadline: float) -> _Guard:
        g = _Guard(deadline)
        with self._cv:
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, g))
            self._cv.notify()
        return g

    def _run(self):
        while True:
            with self._cv:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._cv.wait(None if not self._heap else self._heap[0][0] - time.monotonic())
                _, _, g = heapq.heappop(self._heap)
            with g.lock:
                if g.sock is not None:
                    g.fired = True
                    try:  # the C-level shutdown: also for an SSLSocket, without touching its TLS state
                        _socket.socket.shutdown(g.sock, socket.SHUT_RDWR)
                    except OSError:
                        pass


_watchdog: _Watchdog | None = None
_watchdog_lock = threading.Lock()


def _get_watchdog() -> _Watchdog:
    global _watchdog
    with _watchdog_lock:
        if _watchdog is None:
            _watchdog = _Watchdog()
        return _watchdog


# --- one request -------------------------------------------------------------------

class _PinnedConnection(http.client.HTTPConnection):
    """Connects to the addresses checked for this hop (never a second DNS lookup)
    and puts the socket under the item's watchdog guard."""

    def __init__(self, host, port, addrs, tls, policy, guard):
        super().__init__(host, port, timeout=policy.timeout)
        self._addrs, self._tls, self._policy, self._guard = addrs, tls, policy, guard
        self._sock = None

    def _op_timeout(self, what: str) -> float:
        left = self._guard.deadline - time.monotonic()
        if left <= 0 or self._guard.fired:
            raise _Expired(what)
        return min(self._policy.timeout, left)

    def connect(self):
        err: OSError | None = None
        for family, sockaddr in self._addrs:
            wait = self._op_timeout("connect")
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(wait)
                sock.connect(sockaddr)
                break
            except OSError as e:
                sock.close()
                err = e
        else:
            raise err or OSError(f"no address to connect to for {self.host}")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls:
            sock = _tls_context().wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
        with self._guard.lock:
            self._guard.sock = sock
        self.sock = self._sock = sock  # http.client drops .sock once the response owns the connection
        if self._tls:
            sock.settimeout(self._op_timeout("TLS handshake"))
            sock.do_handshake()

    def wait_next(self, what: str) -> None:
        """Before each blocking read: wait at most `timeout`, and never past the deadline."""
        self._sock.settimeout(self._op_timeout(what))

    def cut_by_watchdog(self) -> bool:
        return self._guard.fired


_tls_ctx: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    """The system's trusted CAs (SSL_CERT_FILE is honoured), hostnames checked; one per process."""
    global _tls_ctx
    with _watchdog_lock:
        if _tls_ctx is None:
            _tls_ctx = ssl.create_default_context()
        return _tls_ctx


def _request_target(parts) -> str:
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return quote(target, safe=_SAFE_URL_CHARS)


def _open(url: str, policy: FetchPolicy, guard: _Guard) -> tuple[_PinnedConnection, http.client.HTTPResponse]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError("unsupported_url_scheme", f"{url}: only http and https URLs are fetched")
    try:
        host, port = parts.hostname, parts.port or (443 if scheme == "https" else 80)
    except ValueError as err:
        raise FetchError("bad_url", f"{url}: {err}") from None
    if not host:
        raise FetchError("bad_url", f"{url}: no host")
    addrs = _resolve(host, port, guard.deadline)
    for _, sockaddr in addrs:
        _check_address(policy, url, host, ipaddress.ip_address(sockaddr[0].split("%")[0]))
    conn = _PinnedConnection(host, port, addrs, scheme == "https", policy, guard)
    try:
        conn.request("GET", _request_target(parts), headers={
            "User-Agent": policy.user_agent, "Accept": "*/*", "Accept-Encoding": "identity", "Connection": "close"})
        conn.wait_next("headers")
        return conn, conn.getresponse()
    except BaseException:
        guard.release()
        conn.close()
        raise


def _read_body(conn: _PinnedConnection, resp, url: str, policy: FetchPolicy, sink: BinaryIO) -> int:
    declared = resp.getheader("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > policy.max_bytes:
        raise FetchError("too_large", f"{url}: Content-Length {int(declared)} bytes exceeds "
                                      f"{policy.bytes_setting} = {policy.max_bytes} (body not read)")
    total = 0
    while True:
        conn.wait_next("body")
        chunk = resp.read1(min(CHUNK, policy.max_bytes + 1 - total))
        if not chunk:
            if conn.cut_by_watchdog():  # an end of stream we caused: not the whole body
                raise _Expired("body")
            if resp.length:  # closed before the announced length (read1 does not raise for it)
                raise http.client.IncompleteRead(b"", resp.length)
            return total
        total += len(chunk)
        if total > policy.max_bytes:
            raise FetchError("too_large", f"{url}: body exceeds {policy.bytes_setting} = {policy.max_bytes} bytes "
                                          "(reading stopped at the cap)")
        sink.write(chunk)


class _RateLimited(Exception):
    """The host answered 429 (or 503 with Retry-After) and is paused for `seconds`: ask again then."""

    def __init__(self, status: int, seconds: float):
        super().__init__(f"HTTP {status}")
        self.status, self.seconds = status, seconds


def _fetch_once(url, policy, guard, sink, check_headers, host: HostGate, backoff: float) -> str:
    visited = [url]
    while True:
        nxt = _hop(url, visited, policy, guard, sink, check_headers, host, backoff)
        if nxt is None:
            return url
        url = nxt


def _hop(url, visited, policy, guard, sink, check_headers, host: HostGate, backoff: float) -> str | None:
    """One request: the next URL when redirected, else None once the body is in `sink`."""
    conn, resp = _open(url, policy, guard)
    try:
        if resp.status in REDIRECTS and resp.getheader("Location"):
            nxt = urljoin(url, resp.getheader("Location").strip())
            if nxt in visited:
                raise FetchError("redirect_loop", f"{visited[0]}: redirect loop back to {nxt} after {len(visited) - 1} hops")
            if len(visited) > policy.max_redirects:
                raise FetchError("too_many_redirects", f"{visited[0]}: more than download.max_redirects = "
                                                       f"{policy.max_redirects} redirects (last {nxt})")
            visited.append(nxt)
            return nxt
        retry_after = resp.getheader("Retry-After")
        if resp.status == 429 or (resp.status == 503 and retry_after):
            seconds = retry_after_seconds(retry_after, backoff)
            host.pause(seconds)
            raise _RateLimited(resp.status, seconds)
        if not 200 <= resp.status < 300:
            raise FetchError(f"http_{resp.status}", f"{url}: the server answered {resp.status} {resp.reason}".rstrip())
        if check_headers is not None:
            check_headers(resp.headers)
        _read_body(conn, resp, url, policy, sink)
        return None
    finally:
        guard.release()
        resp.close()  # the response owns the socket (Connection: close): this closes it now,
        conn.close()  # not when garbage collected, so the server sees the hang-up


def _describe(err: BaseException, guard: _Guard, policy: FetchPolicy, url: str) -> FetchError:
    """An exception from the socket or http.client as a ledger category."""
    if isinstance(err, FetchError):
        return err
    if isinstance(err, _Expired) or guard.fired or time.monotonic() >= guard.deadline:
        where = f" (during {err})" if isinstance(err, _Expired) else ""
        return FetchError("timeout", f"{url}: no complete response within {policy.seconds_setting} = "
                                     f"{policy.max_seconds:g} s{where}")
    if isinstance(err, (TimeoutError, socket.timeout)):
        return FetchError("timeout", f"{url}: no data for {policy.timeout:g} s (download.timeout): {err}")
    if isinstance(err, ConnectionRefusedError):
        return FetchError("connection_refused", f"{url}: {err}")
    if isinstance(err, ssl.SSLError):
        return FetchError("tls_error", f"{url}: {err}")
    if isinstance(err, http.client.IncompleteRead) and err.expected is None:  # chunked: no length was announced
        return FetchError("incomplete_body", f"{url}: the connection closed in the middle of a chunked body "
                                             "(before its last, empty chunk)")
    if isinstance(err, http.client.IncompleteRead):
        return FetchError("incomplete_body", f"{url}: the connection closed {err.expected} bytes short of "
                                             "the announced Content-Length")
    if isinstance(err, (OSError, http.client.HTTPException)):
        return FetchError("connection_error", f"{url}: {type(err).__name__}: {err}")
    return FetchError("download_error", f"{url}: {type(err).__name__}: {err}")


def fetch(url: str, policy: FetchPolicy, sink: BinaryIO, retries: int = 0,
          check_headers: Callable | None = None) -> str:
    """GET `url` into `sink` (seekable: emptied before a retry) within the policy's caps.
    `check_headers(headers)` may raise FetchError to refuse a response before its body.
    Returns the final URL after redirects; raises FetchError."""
    with host_turn(urlsplit(url).hostname or "", policy.max_per_host) as host:
        deadline = time.monotonic() + policy.max_seconds
        attempt = limited = 0
        while True:
            if not host.wait_pause(deadline):
                raise FetchError("rate_limited", f"{url}: the host asked for a pause (Retry-After) ending past "
                                                 f"{policy.seconds_setting} = {policy.max_seconds:g} s")
            guard = _get_watchdog().guard(deadline)
            try:
                return _fetch_once(url, policy, guard, sink, check_headers, host, backoff=2.0 ** limited)
            except _RateLimited as rl:  # not a failure yet: the host's pause, then again (not counted in `retries`)
                limited += 1
                if time.monotonic() + rl.seconds > deadline:
                    raise FetchError("rate_limited", f"{url}: {rl}, asked to wait {rl.seconds:g} s, past "
                                                     f"{policy.seconds_setting} = {policy.max_seconds:g} s") from None
            except Exception as raw:  # noqa: BLE001 - every failure becomes a value
                err = _describe(raw, guard, policy, url)
                if attempt == retries or err.reason in PERMANENT or err.reason.startswith("http_4"):
                    raise err from None
                attempt += 1
            sink.seek(0)
            sink.truncate()


def fetch_bytes(url: str, policy: FetchPolicy, retries: int = 0, check_headers: Callable | None = None) -> io.BytesIO:
    """The body in memory (never more than policy.max_bytes), as a stream positioned at 0."""
    buf = io.BytesIO()
    fetch(url, policy, buf, retries, check_headers)
    buf.seek(0)
    return buf


BROWSER_UA = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0"  # img2dataset's


def policy_for(cfg, video: bool = False) -> FetchPolicy:
    """The caps of a workflow's `download` section, for image URLs or for video URLs."""
    allow = cfg.allow_private_networks
    ua = BROWSER_UA
    if cfg.user_agent_token:
        ua += f" (compatible; {cfg.user_agent_token.strip().lower()}; +https://github.com/rom1504/img2dataset)"
    return FetchPolicy(
        max_bytes=cfg.video_max_bytes if video else cfg.max_bytes,
        max_seconds=cfg.video_max_seconds if video else cfg.max_seconds,
        timeout=cfg.timeout,
        allow_private_networks=allow if isinstance(allow, bool) else tuple(allow),
        max_redirects=cfg.max_redirects,
        max_per_host=cfg.max_per_host,
        user_agent=ua,
        bytes_setting="download.video_max_bytes" if video else "download.max_bytes",
        seconds_setting="download.video_max_seconds" if video else "download.max_seconds",
    )
