"""What a run reports: a progress bar (loss, steps/s, images/s, lr), TensorBoard (and
wandb when configured) through accelerate's trackers, `metrics.jsonl` (one line per
logged step, every rank's own loss: the resume test compares these), a log file, and
sample grids as PNGs.

Losses and gradient norms stay on the device between log steps (reading one is a host
sync that stalls a GPU's queue): rows are buffered and written, all values read back in
one transfer, at each log step, before each checkpoint and at the end."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

log = logging.getLogger("train")


def setup_logging(stage_dir: Path, is_main: bool) -> None:
    log.setLevel(logging.INFO)
    log.handlers.clear()
    log.propagate = False
    if is_main:
        fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
        for h in (logging.StreamHandler(sys.stderr), logging.FileHandler(stage_dir / "train.log")):
            h.setFormatter(fmt)
            log.addHandler(h)


def trackers(cfg) -> list[str]:
    out = []
    if cfg.logging.tensorboard:
        out.append("tensorboard")
    if cfg.logging.wandb is not None:
        out.append("wandb")
    return out


class Monitor:
    def __init__(self, accelerator, stage_dir: Path, start_step: int, max_steps: int, show_bar: bool):
        self.acc, self.dir = accelerator, stage_dir
        self.metrics = open(stage_dir / f"metrics_rank{accelerator.process_index}.jsonl", "a")  # noqa: SIM115 - open for the run
        self.bar = tqdm(total=max_steps, initial=start_step, desc=stage_dir.name, unit="step",
                        disable=not (show_bar and accelerator.is_main_process), dynamic_ncols=True)
        self.t0, self.steps, self.images = time.time(), 0, 0
        self.pending: list[dict] = []  # rows whose tensors are not read back yet

    def step(self, step: int, loss, lr: float, images: int, log_now: bool, extra: dict | None = None) -> None:
        """Called once per optimizer step with this rank's loss (a device tensor or a number)."""
        self.steps += 1
        self.images += images
        self.pending.append({"step": step, "loss": loss, "lr": lr, **(extra or {})})
        self.bar.update(1)
        if log_now:
            loss = self.write_pending()[-1]["loss"]
            dt = max(time.time() - self.t0, 1e-9)
            rates = {"steps_per_s": self.steps / dt, "images_per_s": self.images * self.acc.num_processes / dt}
            self.bar.set_postfix(loss=f"{loss:.4f}", **{k: f"{v:.2f}" for k, v in rates.items()}, lr=f"{lr:.2e}")
            self.acc.log({"train/loss": loss, "train/lr": lr, **{f"train/{k}": v for k, v in rates.items()}}, step=step)
            self.t0, self.steps, self.images = time.time(), 0, 0

    def scalars(self, values: dict, step: int) -> None:
        """Validation results: trackers, the log, and val.jsonl (main process)."""
        self.acc.log(values, step=step)
        if self.acc.is_main_process:
            with open(self.dir / "val.jsonl", "a") as fh:
                fh.write(json.dumps({"step": step, **values}) + "\n")
        log.info("step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in values.items()))

    def image_grid(self, images: torch.Tensor, step: int, nrow: int, tag: str = "samples") -> Path:
        from torchvision.utils import make_grid, save_image

        folder = self.dir / "samples"
        folder.mkdir(exist_ok=True)
        path = folder / f"step_{step:08d}.png"
        save_image(images, path, nrow=nrow)
        if self.acc.is_main_process:
            for t in self.acc.trackers:
                if t.name == "tensorboard":
                    t.writer.add_image(tag, make_grid(images, nrow=nrow), step)
        log.info("step %d: sample grid %s", step, path)
        return path

    def write_pending(self) -> list[dict]:
        """Reads the buffered rows' tensors back in one transfer and appends the rows to
        metrics_rankR.jsonl (flushed: a killed run keeps every row up to its last checkpoint)."""
        rows, self.pending = self.pending, []
        slots = [(r, k) for r in rows for k, v in r.items() if torch.is_tensor(v)]
        if slots:
            values = torch.stack([rows_v.detach().float().reshape(()) for rows_v in (r[k] for r, k in slots)]).tolist()
            for (r, k), v in zip(slots, values):
                r[k] = v
        for r in rows:
            self.metrics.write(json.dumps(r) + "\n")
        self.metrics.flush()
        return rows

    def flush(self) -> None:
        self.write_pending()

    def close(self) -> None:
        self.write_pending()
        self.bar.close()
        self.metrics.close()
