"""Per-step time accounting: busy seconds and images per step, and the wall time
of the processes that host them, so the manifest can say which step waits and
which one everyone waits for."""

from __future__ import annotations

from collections import defaultdict


class StepStats:
    def __init__(self):
        self.busy_s: dict[str, float] = defaultdict(float)
        self.images: dict[str, int] = defaultdict(int)
        self.pool: dict[str, str] = {}  # step -> "cpu" | "model"
        self.wall_s: dict[str, float] = defaultdict(float)  # pool -> seconds its hosts ran
        self.waiting_for_models_s = 0.0  # CPU workers' time blocked on the model pool's results
        self.oom_batch_size: dict[str, int] = {}  # step -> batch size that held after running out of memory (smallest seen)

    def add(self, name: str, pool: str, busy_s: float, images: int) -> None:
        self.busy_s[name] += busy_s
        self.images[name] += images
        self.pool[name] = pool

    def note_oom_batch_size(self, name: str, size: int) -> None:
        self.oom_batch_size[name] = min(size, self.oom_batch_size.get(name, size))

    def add_wall(self, pool: str, seconds: float) -> None:
        self.wall_s[pool] += seconds

    def to_dict(self) -> dict:
        return {"busy_s": dict(self.busy_s), "images": dict(self.images), "pool": dict(self.pool),
                "wall_s": dict(self.wall_s), "waiting_for_models_s": self.waiting_for_models_s,
                "oom_batch_size": dict(self.oom_batch_size)}

    def merge(self, d: dict) -> None:
        for name, busy in d["busy_s"].items():
            self.add(name, d["pool"][name], busy, d["images"].get(name, 0))
        for pool, s in d["wall_s"].items():
            self.add_wall(pool, s)
        self.waiting_for_models_s += d.get("waiting_for_models_s", 0.0)
        for name, size in d.get("oom_batch_size", {}).items():
            self.note_oom_batch_size(name, size)

    def summary(self) -> dict:
        """Manifest form: per step busy_s, idle_s (host wall time not spent in this
        step), images, images_per_s (while busy), and oom_batch_size when the step ran
        out of memory (the batch size that then held, smallest over its processes)."""
        out = {}
        for name in self.busy_s:
            busy, n = self.busy_s[name], self.images[name]
            out[name] = {
                "pool": self.pool[name],
                "busy_s": round(busy, 3),
                "idle_s": round(max(0.0, self.wall_s.get(self.pool[name], 0.0) - busy), 3),
                "images": n,
                "images_per_s": round(n / busy, 2) if busy > 0 else None,
            }
            if name in self.oom_batch_size:
                out[name]["oom_batch_size"] = self.oom_batch_size[name]
        return out
