"""Politeness per host, for every fetch of this process (one CPU worker): at most
`download.max_per_host` requests to one host at once, and a host that answered 429 (or
503 with Retry-After) is not asked again, by any thread, before the time it gave.

Without this a URL list with many images from one site opens `thread_count`
connections per worker to it at once, the pattern that gets crawlers banned.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime


class HostGate:
    """One host's share of this process's fetches."""

    def __init__(self, limit: int):
        self.slots = threading.BoundedSemaphore(limit)  # one per request in progress
        self.not_before = 0.0  # time.monotonic() before which nobody asks this host again

    def wait_pause(self, deadline: float) -> bool:
        """Sleep out the host's pause; False (at once) when it ends past `deadline`."""
        pause = self.not_before - time.monotonic()
        if pause > 0 and time.monotonic() + pause > deadline:
            return False
        time.sleep(max(0.0, pause))
        return True

    def pause(self, seconds: float) -> None:
        self.not_before = max(self.not_before, time.monotonic() + seconds)


_gates: dict[tuple[str, int], HostGate] = {}
_gates_lock = threading.Lock()


def gate_for(host: str, limit: int) -> HostGate:
    """The process's gate for `host` (by name, whatever the port)."""
    with _gates_lock:
        return _gates.setdefault((host.lower(), limit), HostGate(limit))


@contextmanager
def host_turn(host: str, limit: int) -> Iterator[HostGate]:
    """Hold one of `host`'s slots for one fetch. The wait is not bounded: the holders
    are, each by its own deadline, and waiting for a turn is no fault of the URL."""
    gate = gate_for(host, limit)
    with gate.slots:
        yield gate


def retry_after_seconds(value: str | None, default: float) -> float:
    """Retry-After as seconds from now: a number of seconds or an HTTP date; `default` when absent or unreadable."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return default
