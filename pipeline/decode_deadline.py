"""A hard time limit per image decode (`images.max_decode_seconds`), for the CPU workers.

A decoder stuck inside libjpeg, libpng or PIL cannot be interrupted from Python, so the
limit is enforced the only way that always works: a watchdog thread in the worker
process notes which image overran (a digest of its bytes, in a small file in the output
folder, which every worker can reach) and ends the process. The scheduler
(pipeline/unit_scheduler.py) reads the note when it sees the death, and runs the unit
again on the restarted worker with that digest marked: the image then fails at once as
`failed: decode_timeout`, every other item ends as it would have. An image is known by
its bytes, not its position, so the same mechanism serves URL lists, folders and the
members of an input shard; identical copies would overrun too and fail the same way.

The watchdog can run while the decode runs because OpenCV's and PIL's decoders release
the GIL. Armed only in the Ray workers (`arm`): a test or tool that calls the loaders in
its own process is never ended by it. The header's limits (`too_large`, `too_complex`,
pipeline/image_header.py) stop the known expensive images first; this is the backstop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.image_header import DecodeError

NOTE_DIR = "_decode_timeouts"  # in the output folder: <unit>.jsonl, one line per image that overran
EXIT_CODE = 75  # what the worker process exits with when a decode overran


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def timeout_message(seconds: float) -> str:
    return (f"decoding this image took more than images.max_decode_seconds = {seconds:g} s "
            "(the worker was restarted without it; raise the setting to keep such images)")


class _Watchdog:
    def __init__(self, limit_s: float, note_dir: Path):
        self.limit_s, self.note_dir = limit_s, note_dir
        self.unit = "unknown"
        self.known: dict[str, str] = {}  # digest -> message: images that overran before, failed at once
        self.active: dict[int, tuple[float, str]] = {}  # thread id -> (deadline, digest)
        self.lock = threading.Lock()
        threading.Thread(target=self._watch, name="decode-deadline", daemon=True).start()

    def _watch(self) -> None:
        tick = min(0.25, self.limit_s / 4)
        while True:
            time.sleep(tick)
            now = time.monotonic()
            with self.lock:
                late = [d for deadline, d in self.active.values() if now > deadline]
            if late:
                self._note_and_exit(late)

    def _note_and_exit(self, digests: list[str]) -> None:
        self.note_dir.mkdir(parents=True, exist_ok=True)
        with open(self.note_dir / f"{self.unit}.jsonl", "a") as fh:
            for d in digests:
                fh.write(json.dumps({"digest": d, "seconds": self.limit_s}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os._exit(EXIT_CODE)  # the only way out of a decoder that holds no Python frame


_dog: _Watchdog | None = None


def arm(limit_s: float, out_dir: str | Path) -> None:
    """Enforce the limit in this process from now on (a Ray worker's constructor calls it)."""
    global _dog
    if _dog is None:
        _dog = _Watchdog(limit_s, Path(out_dir) / NOTE_DIR)


def start_unit(name: str, known: dict[str, str]) -> None:
    """The unit this process works on now, and the images that overran in it before."""
    if _dog is not None:
        _dog.unit, _dog.known = name, dict(known)


@contextmanager
def watched(data: bytes) -> Iterator[None]:
    """Around the decode of `data`: a DecodeError at once for an image that overran
    before; the process ended if this one overruns."""
    if _dog is None:
        yield
        return
    d = digest(data)
    if d in _dog.known:
        raise DecodeError("decode_timeout", _dog.known[d])
    me = threading.get_ident()
    with _dog.lock:
        _dog.active[me] = (time.monotonic() + _dog.limit_s, d)
    try:
        yield
    finally:
        with _dog.lock:
            _dog.active.pop(me, None)


def take_notes(out_dir: str | Path, unit: str) -> dict[str, str]:
    """The images a worker noted as overrunning in `unit` (digest -> message), and
    the note removed: the scheduler keeps them with the unit's job from then on."""
    path = Path(out_dir) / NOTE_DIR / f"{unit}.jsonl"
    if not path.exists():
        return {}
    found = {}
    for line in path.read_text().splitlines():
        try:
            note = json.loads(line)
            found[note["digest"]] = timeout_message(float(note["seconds"]))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by the process's end
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # the folder goes when its last note does
        path.parent.rmdir()
    return found
