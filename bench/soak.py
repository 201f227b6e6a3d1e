"""Soak: a URL list on loopback servers with hostile rows of every known kind, the model
filters on, the build killed with kill -9 at random points and resumed, against a clean
run of the same list.

The list: `--n` URLs of real photos (skimage's, stored as 512 px JPEGs), of which
`--hostile` (a fraction) are hostile, split evenly over the known kinds: endless body,
drip feed, silence (accepts, never answers), 1 TB Content-Length, redirect loop, corrupt,
truncated, HTML served as JPEG, decompression bomb; and `--rate-limited` (a fraction) of
the photos come from a second host that answers 429 with Retry-After above 2 requests at
once. Model filters: watermark, nsfw and text (every model filter whose weights ship with
the install; CLIP-based ones need weights this machine lacks), on CPU.

Runs (each `pipeline/build_dataset.py` in its own process and its own Ray, as a user runs it):
a clean run; then a run killed with SIGKILL (its whole process group, Ray included) once
it has written a random number of units and a random fraction of a second more, resumed
and killed again, `--kills` times, then resumed to the end. Checks, printed as a table
(and the script exits 1 when one fails):

- every input has exactly one ledger row; the ledger keys and the kept keys (read back
  from the shards, none twice) equal the clean run's;
- no good photo lost: every photo URL ends kept or rejected (never failed), and every
  one the clean run kept is kept;
- every hostile row failed, with its reason counted per kind;
- the peak RSS (VmHWM) of each CPU worker and model actor process stays under its bound:
  workers as in bench/worker_memory.py (1 GiB base + 2 x threads x max_bytes + one decode
  and resize at max_image_pixels + one filter batch), the model actor at 1.5 x the clean
  run's peak (no growth across kills and resumes).

Linux only (/proc). Starts Ray bound to 127.0.0.1; run inside scripts/netns_run.sh:

    scripts/netns_run.sh .venv/bin/python bench/soak.py --n 1500 [--model-actors 2] [--readme bench/README.md]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import psutil
import webdataset as wds
import yaml
from PIL import Image

from filter_dev import hostile_servers as hs
from filter_dev.hostile import hostile_payloads
from filter_dev.photos import load_rgb, skimage_photos
from pipeline.bench_report import add_readme_option, cpu_model, readme_section
from pipeline.config import ImagesConfig
from pipeline.ledger import read_ledger
from pipeline.ray_memory import PeakWatcher, kill_ray_leftovers

ROOT = Path(__file__).resolve().parents[1]
MB = 2**20
THREADS, MAX_BYTES, MAX_SECONDS, SHARD = 16, 4 * MB, 5.0, 50
HOSTILE_KINDS = ["endless", "drip", "silence", "huge", "loop", "corrupt", "truncated", "html", "bomb"]


def photo_bytes() -> dict[str, bytes]:
    """skimage's colour photos as 512 px JPEGs (name -> bytes)."""
    out = {}
    for p in skimage_photos():
        rgb = load_rgb(p)
        if rgb.ndim != 3 or min(rgb.shape[:2]) < 128:
            continue
        im = Image.fromarray(rgb)
        im.thumbnail((512, 512))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
        out[p.stem] = buf.getvalue()
    return out


class RateLimitedHost(hs.RouteServer):
    """Photos, but above `limit` requests at once a 429 with Retry-After: 1 (a host protecting itself)."""

    def __init__(self, host: str, photos: dict[str, bytes], limit: int = 2):
        self.now, self.limit, self.answered_429 = 0, limit, 0
        self.lock = threading.Lock()
        self.photos = photos
        super().__init__(host, {"/photos/*": self.photo})

    def photo(self, req):
        with self.lock:
            self.now += 1
            over = self.now > self.limit
            self.answered_429 += over
        try:
            time.sleep(0.05)
            if over:
                req.send_response(429)
                req.send_header("Retry-After", "1")
                req.send_header("Content-Length", "0")
                req.end_headers()
            else:
                hs.body(self.photos[req.path.rsplit("/", 1)[-1].split("?")[0]])(req)
        finally:
            with self.lock:
                self.now -= 1


def main_routes(photos: dict[str, bytes]) -> dict:
    payloads = hostile_payloads()

    def photo(req):
        hs.body(photos[req.path.rsplit("/", 1)[-1].split("?")[0]])(req)

    return {
        "/photos/*": photo,
        "/endless.jpg": lambda req: hs.endless(req, seconds=MAX_SECONDS + 5),
        "/huge.jpg": hs.huge_content_length,
        "/drip.jpg": hs.drip(0.5, seconds=MAX_SECONDS + 5),
        "/loop-a": hs.redirect("/loop-b"),
        "/loop-b": hs.redirect("/loop-a"),
        "/corrupt.jpg": hs.body(payloads["corrupt.jpg"][1]),
        "/truncated.png": hs.body(payloads["truncated.png"][1], "image/png"),
        "/html.jpg": hs.body(payloads["page.jpg"][1]),
        "/bomb.png": hs.body(payloads["bomb.png"][1], "image/png"),
    }


def url_list(n: int, hostile: float, rate_limited: float, main, limited, silent, names: list[str], seed: int):
    """[(url, kind)]: kind 'photo', 'photo-429' or a hostile kind; shuffled, every URL distinct."""
    rng = random.Random(seed)
    per_kind = max(1, round(n * hostile / len(HOSTILE_KINDS)))
    n_limited = round(n * rate_limited)
    path = {"endless": "endless.jpg", "drip": "drip.jpg", "huge": "huge.jpg", "loop": "loop-a",
            "corrupt": "corrupt.jpg", "truncated": "truncated.png", "html": "html.jpg", "bomb": "bomb.png"}
    rows = []
    for kind in HOSTILE_KINDS:
        for i in range(per_kind):
            srv = silent if kind == "silence" else main
            rows.append((srv.url(f"{path.get(kind, 'x.jpg')}?i={i}"), kind))
    for i in range(n - len(rows)):
        srv, kind = (limited, "photo-429") if i < n_limited else (main, "photo")
        rows.append((srv.url(f"photos/{names[i % len(names)]}?i={i}"), kind))
    rng.shuffle(rows)
    return rows


def workflow(tmp: Path, urls: Path, model_actors: int) -> Path:
    wf = {
        "name": "soak",
        "sources": [{"type": "url_list", "path": str(urls)}],
        "download": {"thread_count": THREADS, "max_bytes": MAX_BYTES, "max_seconds": MAX_SECONDS, "timeout": 2,
                     "allow_private_networks": True},  # the servers are on loopback, which a build refuses by default
        "output": {"shard_size": SHARD},
        "filters": {"watermark": {"enabled": True, "device": "cpu"}, "nsfw": {"enabled": True, "device": "cpu"},
                    "text": {"enabled": True, "device": "cpu"}},
        # actors share the CPUs the workers leave: on 2 cores, one worker and two half-CPU actors
        "ray": {"model_actors": model_actors, "num_cpus_per_model_actor": 1 / model_actors, "model_batch_size": 16},
        "dedup": {"enabled": False},  # the same photos behind many URLs: dedup would keep one of each
    }
    path = tmp / "soak.yaml"
    path.write_text(yaml.safe_dump(wf))
    return path


def run(wf: Path, out: Path, resume: bool, kill_after_units: int | None, rng: random.Random) -> tuple[float, int]:
    """One build process; killed with SIGKILL once `kill_after_units` ledgers exist (None: to the end).
    Returns (seconds, units done when it ended)."""
    ray_tmp = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "disabled"}  # as the tests: no token file to lose
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, str(ROOT / "pipeline" / "build_dataset.py"), "--config", str(wf), "--output", str(out),
           "--no-progress"] + (["--resume"] if resume else [])
    t0 = time.monotonic()
    log = out.parent / f"{out.name}-{time.time():.0f}.log"  # kept when a run fails
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        if kill_after_units is None:
            if proc.wait() != 0:
                raise RuntimeError(f"build failed ({proc.returncode}), its log: {log}")
        else:
            while len(list((out / "ledger").glob("*.parquet"))) < kill_after_units:
                if proc.poll() is not None:
                    raise RuntimeError(f"the run ended ({proc.returncode}) before its kill, its log: {log}")
                time.sleep(0.05)
            time.sleep(rng.uniform(0, 1.5))  # land anywhere in the next unit, mid-write included
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    finally:
        kill_ray_leftovers(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    return time.monotonic() - t0, len(list((out / "ledger").glob("*.parquet")))


def kept_keys(out: Path) -> list[str]:
    keys = []
    for tar in sorted((out / "shards").glob("*.tar")):
        keys += [s["__key__"] for s in wds.WebDataset(str(tar), shardshuffle=False)]
    return keys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1500, help="URLs in the list (the issue asks 20000)")
    p.add_argument("--hostile", type=float, default=0.05, help="fraction of hostile URLs, split over the kinds")
    p.add_argument("--rate-limited", type=float, default=0.05, help="fraction of photos from the host that answers 429")
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--model-actors", type=int, default=1, help="model pool actors (they share one CPU's worth of Ray's CPUs)")
    p.add_argument("--seed", type=int, default=0)
    add_readme_option(p, __file__)
    args = p.parse_args(argv)
    with readme_section(args.readme, __file__):
        return soak(args)


def soak(args) -> int:
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    photos = photo_bytes()
    t_start = time.monotonic()
    load_at_start = os.getloadavg()[0]  # other jobs on the machine slow every figure
    with (hs.RouteServer("127.0.0.1", main_routes(photos)) as main_srv,
          RateLimitedHost("127.0.0.3", photos) as limited, hs.SilentServer("127.0.0.1") as silent):
        rows = url_list(args.n, args.hostile, args.rate_limited, main_srv, limited, silent, sorted(photos), args.seed)
        listing = tmp / "urls.jsonl"
        listing.write_text("".join(json.dumps({"url": u, "caption": f"soak {i}"}) + "\n" for i, (u, _) in enumerate(rows)))
        wf = workflow(tmp, listing, args.model_actors)
        units = -(-len(rows) // SHARD)
        with PeakWatcher() as clean_watch:
            clean_s, _ = run(wf, tmp / "clean", False, None, rng)
        print(f"clean run: {clean_s:.0f} s", file=sys.stderr)
        timeline, done = [], 0
        with PeakWatcher() as watch:
            for i in range(args.kills):  # each kill a random number of units further on
                target = done + rng.randint(1, max(1, (units - done) // (args.kills - i + 1)))
                took, done = run(wf, tmp / "soak", i > 0, target, rng)
                timeline.append(f"killed at {done}/{units} units after {took:.0f} s")
                print(timeline[-1], file=sys.stderr)
            took, done = run(wf, tmp / "soak", True, None, rng)
            timeline.append(f"resumed to the end ({done}/{units}) in {took:.0f} s")
        answered_429 = limited.answered_429

    kind = {u: k for u, k in rows}
    results = {}
    for name in ("clean", "soak"):
        ledger = read_ledger(tmp / name).to_pandas()
        results[name] = (ledger, kept_keys(tmp / name), json.loads((tmp / name / "manifest.json").read_text()))
    (clean, clean_kept, _), (ledger, kept, manifest) = results["clean"], results["soak"]
    ledger["kind"] = ledger["source"].map(kind)
    good = ledger[ledger["kind"].str.startswith("photo")]
    clean_kept_urls = set(clean[clean["status"] == "kept"]["source"])
    hostile_rows = ledger[~ledger["kind"].str.startswith("photo")]
    checks = [
        ("every input has exactly one ledger row", len(ledger) == len(rows) and ledger["key"].is_unique
         and set(ledger["source"]) == set(kind)),
        ("ledger keys equal the clean run's", sorted(ledger["key"]) == sorted(clean["key"])),
        ("kept keys (from the shards, none twice) equal the clean run's",
         len(kept) == len(set(kept)) and sorted(kept) == sorted(clean_kept)),
        ("no good photo lost (none failed; every one the clean run kept is kept)",
         not (good["status"] == "failed").any() and clean_kept_urls <= set(ledger[ledger["status"] == "kept"]["source"])),
        ("every hostile row failed", (hostile_rows["status"] == "failed").all()),
    ]

    images = ImagesConfig()
    worker_bound = (1024 * MB + 2 * THREADS * MAX_BYTES + 2 * 3 * images.max_image_pixels
                    + 64 * 3 * images.image_size**2)
    by_kind = defaultdict(list)
    for w, phase in ((clean_watch, "clean"), (watch, "killed + resumed")):
        for pid, hwm in w.peak.items():
            title = w.title[pid]
            role = "CPU worker" if "UnitWorker" in title else "model actor" if "ModelActor" in title else None
            if role:
                by_kind[(role, phase)].append(hwm)
    # The model actor's memory is mostly its models' (weights, runtimes, arenas), which no
    # formula here predicts: its bound is a growth check against the clean run's own peak,
    # so it is checked on the killed and resumed runs only (on the clean run it cannot fail).
    actor_bound = 1.5 * max(by_kind[("model actor", "clean")], default=0)
    bounds = {"CPU worker": worker_bound, "model actor": actor_bound}
    for (role, phase), peaks in by_kind.items():
        if role == "model actor" and phase == "clean":
            continue
        what = "under its bound" if role == "CPU worker" else "within 1.5x the clean run's peak"
        checks.append((f"{role} peak RSS {what} ({phase})", max(peaks) < bounds[role]))

    reasons = Counter(zip(hostile_rows["kind"], hostile_rows["reason"]))
    print(f"\nMachine: {cpu_model()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM "
          f"(load average {load_at_start:.1f} at the start). {len(rows)} URLs in units of {SHARD} ({units} units): "
          f"{len(hostile_rows)} hostile ({len(hostile_rows) // len(HOSTILE_KINDS)} of each of {len(HOSTILE_KINDS)} kinds), "
          f"{(ledger['kind'] == 'photo-429').sum()} photos from a host that answered 429 {answered_429} times; "
          f"model filters watermark, nsfw, text on CPU, {args.model_actors} model actor(s); {THREADS} threads, max_bytes "
          f"{MAX_BYTES // MB} MiB, max_seconds {MAX_SECONDS:g}. Clean run {clean_s:.0f} s; "
          f"{'; '.join(timeline)}; total {time.monotonic() - t_start:.0f} s.\n")
    print("| check | result |")
    print("|---|---|")
    for what, ok in checks:
        print(f"| {what} | {'yes' if ok else '**NO**'} |")
    status = manifest["counts"]["status"]
    print(f"\nFinal counts: {dict(status)}; model actor restarts {manifest['pool'].get('model_actor_restarts', 0)}.\n")
    print("| process | run | processes | peak RSS (MiB) | bound (MiB) |")
    print("|---|---|---:|---:|---:|")
    for (role, phase), peaks in sorted(by_kind.items()):
        print(f"| {role} | {phase} | {len(peaks)} | {max(peaks) / MB:.0f} | {bounds[role] / MB:.0f} |")
    print("\n| hostile kind | reason | rows |")
    print("|---|---|---:|")
    for (k, reason), n in sorted(reasons.items()):
        print(f"| {k} | {reason} | {n} |")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
