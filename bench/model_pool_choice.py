"""Model pool: plain Ray actors (what the pipeline uses) vs Ray Data `map_batches` with
an actor pool, on the same work: batches of decoded 512x384 RGB images sent to one
model actor that runs a real filter step (the watermark CNN, CPU).

    python bench/model_pool_choice.py [--images 256] [--batch 64]

Prints a markdown table: images/s end to end, and the overhead per batch of each way
of getting pixels to the model actor (time not spent in the step itself).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import ray

from pipeline.bench_report import add_readme_option, readme_section
from pipeline.verdict import Verdict


def _images(n: int) -> list[np.ndarray]:
    import cv2

    from filter_dev.photos import load_rgb, skimage_photos

    photos = [cv2.resize(load_rgb(p), (512, 384)) for p in skimage_photos()[:8]]
    return [photos[i % len(photos)] for i in range(n)]


def _step():
    from filters.watermark import WatermarkConfig, WatermarkFilter

    return WatermarkFilter.ready(WatermarkConfig(enabled=True, device="cpu"))


@ray.remote(num_cpus=1)
class StageActor:
    def __init__(self):
        self.step, self.busy = _step(), 0.0

    def run(self, images, meta, verdicts):
        t0 = time.perf_counter()
        out = self.step.process(images, meta)
        self.busy += time.perf_counter() - t0
        return out

    def busy_s(self):
        return self.busy


class StageMapper:  # Ray Data callable class: one instance per pool actor
    def __init__(self):
        self.step = _step()

    def __call__(self, batch):
        images = list(batch["image"])
        meta = [{"key": str(k)} for k in batch["key"]]
        res = self.step.process(images, meta)
        return {"key": batch["key"], "prob": np.array([r["scores"]["prob"] for r in res])}


def with_actors(images, batch: int) -> tuple[float, float]:
    actor = StageActor.remote()
    ray.get(actor.busy_s.remote())  # model loaded
    t0 = time.perf_counter()
    refs = []
    for i in range(0, len(images), batch):
        chunk = images[i:i + batch]
        refs.append(actor.run.remote(chunk, [{"key": str(j)} for j in range(len(chunk))], [Verdict() for _ in chunk]))
    ray.get(refs)
    wall = time.perf_counter() - t0
    busy = ray.get(actor.busy_s.remote())
    ray.kill(actor)
    return wall, busy


def with_ray_data(images, batch: int) -> tuple[float, float]:
    import ray.data

    ds = ray.data.from_items([{"key": i, "image": im} for i, im in enumerate(images)])
    t0 = time.perf_counter()
    out = ds.map_batches(StageMapper, batch_size=batch, compute=ray.data.ActorPoolStrategy(size=1), num_cpus=1).take_all()
    wall = time.perf_counter() - t0
    assert len(out) == len(images)
    return wall, float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--batch", type=int, default=64)
    add_readme_option(p, __file__)
    args = p.parse_args()
    with readme_section(args.readme, __file__):
        run(args)


def run(args) -> None:
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    images = _images(args.images)
    rows = []
    for name, fn in (("Ray actors (pipeline)", with_actors), ("Ray Data map_batches + ActorPoolStrategy", with_ray_data)):
        wall, busy = fn(images, args.batch)
        n_batches = -(-len(images) // args.batch)
        over = f"{(wall - busy) / n_batches * 1000:.0f}" if busy == busy else "n/a (includes pool start-up)"
        rows.append(f"| {name} | {len(images)} | {args.batch} | {wall:.2f} | {len(images) / wall:.1f} | {over} |")
    ray.shutdown()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; 1 model actor, 1 CPU, watermark CNN on CPU\n")
    print("| model pool | images | batch | wall s | images/s | overhead ms/batch |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
