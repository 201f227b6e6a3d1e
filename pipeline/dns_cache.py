"""DNS answers kept for a short while in this process (one CPU worker), so a URL list
with many images from one site asks the resolver once per host, not once per URL.

The system resolver gives no TTL, so an answer is kept a fixed `DNS_CACHE_SECONDS`.
Lookups of a host already in progress are shared: threads that want the same host at
once wait for the one lookup, each within its own deadline. A failed lookup is not kept.
Only the resolution is cached: pipeline/fetch.py checks every address of the answer
(private, loopback, metadata ...) on every use, so a cached answer is never trusted more
than a fresh one.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import OrderedDict

DNS_CACHE_SECONDS = 60.0
MAX_HOSTS = 4096  # least recently asked hosts are dropped past this


class _Lookup:
    """One getaddrinfo, in its own thread (the system resolver has no deadline of its own)."""

    def __init__(self, host: str, port: int):
        self.result: list | None = None
        self.error: Exception | None = None
        self.done_at: float | None = None
        self.thread = threading.Thread(target=self._run, args=(host, port), daemon=True, name="fetch-dns")
        self.thread.start()

    def _run(self, host: str, port: int) -> None:
        try:
            self.result = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except Exception as err:  # noqa: BLE001 - handed to every waiter
            self.error = err
        self.done_at = time.monotonic()

    def usable(self, now: float) -> bool:
        """In progress, or answered within DNS_CACHE_SECONDS."""
        if self.done_at is None:
            return True
        return self.error is None and now - self.done_at < DNS_CACHE_SECONDS


_lookups: OrderedDict[tuple[str, int], _Lookup] = OrderedDict()
_lock = threading.Lock()


def lookup(host: str, port: int, deadline: float) -> list | None:
    """getaddrinfo's answer for (host, port), cached; None when `deadline` passes first.
    Raises what getaddrinfo raised."""
    key = (host.lower(), port)
    with _lock:
        found = _lookups.get(key)
        if found is None or not found.usable(time.monotonic()):
            found = _lookups[key] = _Lookup(host, port)
        _lookups.move_to_end(key)
        while len(_lookups) > MAX_HOSTS:
            _lookups.popitem(last=False)
    found.thread.join(max(0.0, deadline - time.monotonic()))
    if found.done_at is None:
        return None
    if found.error is not None:
        raise found.error
    return found.result


def clear() -> None:
    with _lock:
        _lookups.clear()
