"""Peak resident memory (VmHWM) of every busy Ray worker process, polled from the driver:
the memory benches' probe (bench/worker_memory.py, bench/soak.py)."""

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
