"""Ray's processes seen from outside Ray: the peak resident memory (VmHWM) of every busy
worker, polled from the driver (the memory benches' probe: bench/worker_memory.py,
bench/soak.py), and the clean-up after a build killed with SIGKILL (bench/soak.py, the
resume tests)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil


class PeakWatcher:
    """Polls every Ray worker process (title `ray::...`, not idle) for its VmHWM."""

    def __init__(self):
        self.peak: dict[int, int] = {}
        self.title: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for p in psutil.process_iter(["pid", "cmdline"]):
                title = " ".join(p.info["cmdline"] or [])
                if not title.startswith("ray::") or title.startswith("ray::IDLE"):
                    continue
                try:
                    status = Path(f"/proc/{p.pid}/status").read_text()
                except OSError:
                    continue
                hwm = next((int(ln.split()[1]) * 1024 for ln in status.splitlines() if ln.startswith("VmHWM:")), 0)
                self.peak[p.pid] = max(self.peak.get(p.pid, 0), hwm)
                self.title.setdefault(p.pid, title.split()[0])
            time.sleep(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def kill_ray_leftovers(ray_tmp: str) -> None:
    """SIGKILL the processes of a killed build's Ray that outlived its process group: only
    those whose command line names its own temp dir `ray_tmp`, never another Ray's."""
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(ray_tmp in part for part in (p.info["cmdline"] or [])):
                p.kill()
        except psutil.Error:
            pass
