"""Train one stage of the staged recipe.

    python train/stage.py --stage N [--config workflows/train.yaml] [--resume] [--max-steps K] [--out DIR]
    accelerate launch [--num_processes P ...] train/stage.py --stage N ...     # multi-GPU / multi-node

Stage 1 trains the AsCAN classifier (ImageNet folder or `jpg`+`cls` shards); stages 2-4
train the text-to-image UNet on the pipeline's shards, stage 2 warm-started from stage 1,
each later stage from the one before. `--max-steps K` stops at global step K, so
`--resume --max-steps K` continues a run up to step K.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import torch

from train import checkpoint as ckpt_io
from train.buckets import assign_bucket, bucket_table
from train.config import ConfigError, load_config, stage_config
from train.cuda_check import GPUUnusable, train_on_cpu
from train.data import DataError, make_loader, pixels_on, resolve_source, survey_upscale
from train.diffusion import ema_decay_at, update_ema
from train.encoders import ModelLoadError, vae_factor
from train.monitor import Monitor, log, setup_logging, trackers
from train.sharding import (
    clip_grad_norm,
    fsdp_plugin,
    full_model_state,
    full_optimizer_state,
    load_full_model_state,
    load_full_optimizer_state,
    shard,
)
from train.shared_memory import loader_bytes, processes_on_this_machine, shm_problem
from train.tasks import make_task

# Batches in a row with no decodable sample before a rank gives up (else it would read forever).
EMPTY_BATCH_LIMIT = 100


class StartError(ValueError):
    """The stage cannot start as configured (e.g. the previous stage has no checkpoint)."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", type=int, required=True, help="which stage of the config's stage table")
    p.add_argument("--config", default="workflows/train.yaml", help="training workflow YAML")
    p.add_argument("--resume", action="store_true", help="continue from this stage's latest complete checkpoint")
    p.add_argument("--max-steps", type=int, help="stop at this global step (default: the stage's max_steps)")
    p.add_argument("--out", help="output folder (default: the config's out_dir)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config)
        return train(cfg, args.stage, Path(args.out or cfg.out_dir), args.resume, args.max_steps)
    except (ConfigError, DataError, ModelLoadError, StartError, GPUUnusable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def previous_checkpoint(cfg, stage: int, out: Path, init_from: str) -> Path | None:
    if init_from == "none":
        return None
    if init_from != "previous":
        path = Path(init_from)
        if not (path / "state.json").is_file():
            raise StartError(f"stages.{stage}.init_from: {path} is not a complete checkpoint folder (no state.json)")
        return path
    # A vae stage (stage 0) trains the frozen autoencoder, not a network later stages grow from.
    earlier = [s for s in sorted(cfg.stages) if s < stage and (cfg.stages[s].task == "vae") == (cfg.stages[stage].task == "vae")]
    if not earlier:
        return None
    prev_dir = out / f"stage{earlier[-1]}"
    found = ckpt_io.final_checkpoint(prev_dir)
    if found is None:
        raise StartError(f"stage {stage} starts from stage {earlier[-1]}'s final checkpoint, but {prev_dir}/final.json "
                         f"does not exist: run `python train/stage.py --stage {earlier[-1]}` first, or set "
                         f"stages.{stage}.init_from to 'none' or a checkpoint folder")
    return found


def train(cfg, stage: int, out: Path, resume: bool, max_steps: int | None) -> int:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers.optimization import get_scheduler

    sc = stage_config(cfg, stage)
    stage_dir = out / f"stage{stage}"
    # Data first: a missing or empty shard list fails before any model is built.
    train_src, src_kind, classes = resolve_source(sc.data.train, f"stages.{stage}.data.train")
    val_src, val_kind = None, src_kind
    if sc.data.val_holdout_shards:
        if src_kind != "shards" or sc.data.val_holdout_shards >= len(train_src):
            raise DataError(f"stages.{stage}.data.val_holdout_shards: {sc.data.val_holdout_shards} held out of "
                            f"{len(train_src)} shards leaves none to train on; lower it or set data.val")
        train_src, val_src = train_src[: -sc.data.val_holdout_shards], train_src[-sc.data.val_holdout_shards:]
    elif sc.data.val is not None:
        val_src, val_kind, _ = resolve_source(sc.data.val, f"stages.{stage}.data.val")

    # Then where the weights come from, also before building anything.
    done = ckpt_io.complete_checkpoints(stage_dir) if resume else []
    latest = done[-1] if done else None
    init = previous_checkpoint(cfg, stage, out, sc.init_from) if latest is None else None

    acc = Accelerator(mixed_precision=cfg.accelerate.mixed_precision, log_with=trackers(cfg) or None, project_dir=str(stage_dir),
                      gradient_accumulation_steps=cfg.accelerate.gradient_accumulation_steps,
                      cpu=train_on_cpu(cfg.accelerate.device))  # CPU: torchrun / accelerate launch use gloo
    rank, world = acc.process_index, acc.num_processes
    stage_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(stage_dir, acc.is_main_process)
    if acc.is_main_process:
        (stage_dir / "checkpoints").mkdir(exist_ok=True)
        ckpt_io.remove_partial(stage_dir)  # a run killed mid-save leaves only these
    log.info("stage %d (%s): %d %s %s, %d process(es), %s", stage, sc.task, len(train_src), src_kind,
             "" if classes is None else f"({len(classes)} classes)", world, acc.device)

    # Model, optimizer, schedule: identical initial weights on every rank.
    set_seed(cfg.seed)
    task = make_task(cfg, sc, acc.device)
    task.model.to(acc.device)
    if task.ema is not None:
        task.ema.to(acc.device)
    if cfg.accelerate.grad_checkpointing and hasattr(task.model, "set_grad_checkpointing"):
        task.model.set_grad_checkpointing()
    if cfg.accelerate.channels_last:  # NHWC conv weights (the inputs follow in task.loss)
        for net in (task.model, task.ema):
            if net is not None:
                net.to(memory_format=torch.channels_last)
    if latest is None:  # a fresh stage starts from the previous one (whole weights, before any sharding)
        start_from(acc, stage_dir, task, init, resume, sc)
    sharded = shard_for_fsdp(acc, task, cfg, stage)
    optimizer = torch.optim.AdamW(task.model.parameters(), lr=sc.lr, weight_decay=sc.weight_decay)
    schedule = {"constant": "constant_with_warmup", "cosine": "cosine", "linear": "linear"}[sc.lr_schedule]
    lr_sched = get_scheduler(schedule, optimizer, num_warmup_steps=sc.warmup_steps, num_training_steps=sc.max_steps)
    # noise, timesteps, caption dropout: drawn on the device, saved and restored with checkpoints
    gen = torch.Generator(acc.device).manual_seed(cfg.seed * 1000 + rank)
    set_seed(cfg.seed * 1000 + rank + 1)  # drop-path and anything else on the global RNG

    # With --resume: this stage's own latest checkpoint.
    step, consumed = 0, 0
    if latest is not None:
        step, consumed = resume_from(latest, task, optimizer, lr_sched, gen, rank, world, sc, sharded)
        log.info("resumed from %s: step %d, %d batches consumed on rank %d", latest, step, consumed, rank)

    if sharded:  # already sharded (no DDP wrapper); its precision comes from the FSDP policy
        model, optimizer = task.model, acc.prepare(optimizer)
    else:
        model, optimizer = acc.prepare(task.model, optimizer)
    run_name, wandb = f"{cfg.name}-stage{stage}", cfg.logging.wandb
    acc.init_trackers(wandb.project if wandb else run_name, config={"stage": stage, "task": sc.task, "seed": cfg.seed},
                      init_kwargs={"wandb": {"name": run_name, "entity": wandb.entity}} if wandb else {})
    table = (bucket_table(sc.resolution, task.pixel_multiple) if getattr(sc, "buckets", False)
             else [(sc.resolution, sc.resolution)])
    if len(table) > 1:
        log.info("aspect-ratio buckets (%d): %s", len(table), " ".join(f"{h}x{w}" for h, w in table))
    forward = compiled(model, len(table)) if cfg.accelerate.compile else model  # the training step's network
    max_upscale = getattr(sc, "max_upscale", None)  # image-generating stages never learn enlarged images
    latents_dir = getattr(sc.data, "latents", None)
    if latents_dir is not None:  # precomputed: no VAE or text-encoder forward in the step
        train_src, src_kind = use_latents(cfg, sc, stage, task, table, train_src, src_kind), "latents"
    elif max_upscale is not None:
        check_source_sizes(train_src, src_kind, table, sc, stage)
    check_shared_memory(task, sc, stage, src_kind, table)  # before any loader worker starts
    loader = make_loader(train_src, src_kind, task=sc.task, train=True, batch_size=sc.batch_size, bucket_table=table,
                         seed=cfg.seed, rank=rank, world=world, num_workers=sc.data.num_workers,
                         shuffle_buffer=sc.data.shuffle_buffer, start_batch=consumed,
                         min_crop_scale=getattr(sc, "min_crop_scale", 0.35), max_upscale=max_upscale,
                         prefetch=sc.data.prefetch)

    evaluator = None
    # A sharded EMA samples only with every rank taking part: then every rank samples (rank 0 writes).
    samples_here = acc.is_main_process or sharded
    if cfg.evaluation is not None and sc.task == "t2i" and samples_here:
        from train.evaluation import Evaluator

        evaluator = Evaluator(cfg.evaluation, acc.device)

    def validate():
        if val_src is None:
            return
        # Each rank validates its share; a sharded network's forward is collective, so there every
        # rank runs the same batches (the whole held-out set) and the sums are averaged, not added.
        val_rank, val_world, how = (0, 1, "mean") if sharded else (rank, world, "sum")

        def loader():
            return make_loader(val_src, val_kind, task=sc.task, train=False, batch_size=sc.batch_size,
                               bucket_table=table, seed=cfg.seed, rank=val_rank, world=val_world, num_workers=0,
                               max_upscale=max_upscale)

        model.eval()
        # The raw weights and the EMA (what samples and the next stage use), on the same batches.
        weights = {"": acc.unwrap_model(model)} | ({"_ema": task.ema} if task.ema is not None else {})
        values = {}
        for suffix, net in weights.items():
            sums = {k: float(acc.reduce(v, how)) for k, v in task.evaluate(net, loader()).items()}
            n = max(sums.pop("count"), 1.0)
            values[f"val/loss{suffix}"] = sums.pop("val_loss_sum") / n
            values |= {f"val/{k.removesuffix('_sum')}{suffix}": v / n for k, v in sums.items()}  # top1, psnr
            values["val/samples"] = n
        if evaluator is not None:  # CLIP score / FID of EMA samples for the held-out prompts
            values |= evaluator.run(task.generate, ((pixels_on(b["pixels"], "cpu") + 1) / 2 for b in loader() if b["size"]))
        model.train()
        monitor.scalars(values, step)

    def save():
        path = save_checkpoint(acc, stage_dir, task, acc.unwrap_model(model), optimizer, lr_sched, gen, step, consumed, sc,
                               sharded)
        log.info("step %d: checkpoint %s", step, path)
        return path

    # The loop: one optimizer step per `gradient_accumulation_steps` batches.
    stop_at = max_steps or sc.max_steps
    monitor = Monitor(acc, stage_dir, step, stop_at, cfg.logging.progress_bar)
    keys_file = open(stage_dir / f"keys_rank{rank}.txt", "a") if sc.data.record_keys else None  # noqa: SIM115
    # The step's loss is summed on the device: no host sync per step (the monitor reads it back at log steps).
    bucket_batches, skipped, loss_sum, micro, images = Counter(), Counter(), torch.zeros((), device=acc.device), 0, 0
    empty_run = 0  # batches in a row with no decodable sample
    batches = iter(loader)
    model.train()
    while step < stop_at:
        batch = next(batches)
        consumed += 1
        skipped.update(unreadable=batch["bad"], too_small=batch.get("too_small", 0))
        if not batch["size"]:  # every sample of this batch failed to decode (counted)
            # Safe with several processes: their collectives pair up by order (each rank's k-th
            # backward with the others' k-th), not by batch, so a rank that skips reads one more
            # batch and the others wait for it. Only a stream that never decodes again would hang
            # them (and a single process): that stops here.
            empty_run += 1
            if empty_run >= EMPTY_BATCH_LIMIT:
                raise DataError(f"rank {rank}: the last {empty_run} batches of stages.{stage}.data.train could not be "
                                f"decoded at all ({describe_skips(skipped)} so far): the shards are corrupt or hold no "
                                "images; check them (e.g. open a few samples with PIL) or point data.train elsewhere")
            continue
        empty_run = 0
        bucket_batches[tuple(batch["bucket"])] += 1
        if keys_file:
            keys_file.write("".join(k + "\n" for k in batch["keys"]))
        with acc.accumulate(model):
            loss = task.loss(forward, batch, gen)
            acc.backward(loss)
            if acc.sync_gradients:  # the norm before clipping, logged (inf: measure without clipping)
                max_norm = cfg.accelerate.max_grad_norm or float("inf")
                grad_norm = (clip_grad_norm(model.parameters(), max_norm) if sharded
                             else acc.clip_grad_norm_(model.parameters(), max_norm))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach().float()
        micro += 1
        images += batch["size"]
        if not acc.sync_gradients:
            continue
        step += 1
        lr_sched.step()
        if task.ema is not None:
            update_ema(task.ema, acc.unwrap_model(model), ema_decay_at(step, cfg.diffusion.ema_decay))
        monitor.step(step, loss_sum / micro, lr_sched.get_last_lr()[0], images,
                     log_now=step % cfg.logging.log_every == 0,
                     extra={"grad_norm": grad_norm, "skipped": sum(skipped.values()),
                            **{f"skipped_{k}": v for k, v in skipped.items()}})
        loss_sum, micro, images = torch.zeros((), device=acc.device), 0, 0
        if step % sc.checkpoint_every == 0:
            monitor.flush()  # every step up to a checkpoint is on disk before it
            save()
            log.info("bucket fill (batches per bucket on rank %d): %s; skipped samples: %s", rank,
                     ", ".join(f"{h}x{w}: {n}" for (h, w), n in sorted(bucket_batches.items())), describe_skips(skipped))
        if sc.val_every and step % sc.val_every == 0:
            validate()
        if cfg.logging.sample_every and step % cfg.logging.sample_every == 0 and sc.task == "t2i" and samples_here:
            monitor.image_grid(task.sample_grid(cfg.logging.sample_prompts, cfg.seed), step, len(cfg.logging.sample_prompts))

    # The end: a final checkpoint the next stage starts from, validation, a sample grid.
    done = ckpt_io.complete_checkpoints(stage_dir)
    last_saved = done[-1] if done and ckpt_io.read_state(done[-1])["step"] == step else save()
    if acc.is_main_process:
        ckpt_io.mark_final(stage_dir, last_saved, step)
    log.info("bucket fill (batches per bucket on rank %d): %s; skipped samples: %s", rank,
             ", ".join(f"{h}x{w}: {n}" for (h, w), n in sorted(bucket_batches.items())) or "-", describe_skips(skipped))
    validate()
    if sc.task == "t2i" and samples_here:
        monitor.image_grid(task.sample_grid(cfg.logging.sample_prompts, cfg.seed), step, len(cfg.logging.sample_prompts))
    if sc.task == "vae" and acc.is_main_process:
        exported = task.export(acc.unwrap_model(model), iter(loader), cfg.vae.path)
        log.info("vae: saved to %s (latent std %.4f -> scaling_factor %.4f)", exported["path"], exported["latent_std"],
                 exported["scaling_factor"])
    log.info("stage %d done at step %d; final checkpoint %s", stage, step, last_saved)
    monitor.close()
    if keys_file:
        keys_file.close()
    acc.end_training()
    return 0


def start_from(acc, stage_dir: Path, task, init: Path | None, resume: bool, sc) -> None:
    """A stage without a checkpoint of its own: the previous stage's weights, or random ones."""
    if resume:
        log.info("--resume: no complete checkpoint in %s yet; starting the stage from the beginning", stage_dir)
    if init is None:
        log.info("init: random weights (%s)", "init_from: none" if sc.init_from == "none" else "first stage")
        return
    message, names = task.init_from(init, ckpt_io.read_state(init)["task"])
    log.info("init: %s", message)
    if acc.is_main_process:
        (stage_dir / "init_report.json").write_text(json.dumps(init_report(init, task.model, names), indent=1))


def shard_for_fsdp(acc, task, cfg, stage: int) -> bool:
    """Shard the trained network and its EMA when accelerate's FSDP config asks (train/sharding.py)."""
    plugin = fsdp_plugin(acc)
    if plugin is None:
        return False
    name = type(task.model).__name__
    try:
        for net in (task.model, task.ema):
            if net is not None:
                shard(net, plugin, cfg.accelerate.mixed_precision)
    except ValueError as err:
        raise StartError(f"stage {stage}: FSDP: {err}") from err
    log.info("FSDP: %s and its EMA sharded over %d processes (units: %s, reshard after forward: %s)",
             name, acc.num_processes, plugin.transformer_cls_names_to_wrap,
             plugin.reshard_after_forward)
    return True


def use_latents(cfg, sc, stage: int, task, table, train_src, src_kind) -> list[str]:
    """The latent shards for the stage's training shards, checked against the stage."""
    from train.latents import identity, latent_shards

    setting = f"stages.{stage}.data.latents"
    if sc.task != "t2i" or src_kind != "shards":
        raise DataError(f"{setting}: precomputed latents are for t2i stages reading shards (stage {stage} is "
                        f"{sc.task} on {src_kind}); remove the setting")
    found = latent_shards(sc.data.latents, train_src, identity(cfg, sc, table), setting)
    task.use_latents(sc.data.latents)
    log.info("training on precomputed latents: %d shards in %s", len(found), sc.data.latents)
    return found


def compiled(model, n_shapes: int):
    """torch.compile of the training network. Each bucket shape may compile once (dynamo's
    automatic dynamic shapes usually fold them into one graph after the second); the
    recompile limit is raised above the bucket count so no shape falls back to eager."""
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, n_shapes + 4)
    log.info("accelerate.compile: torch.compile of %s (%d bucket shape(s))", type(model).__name__, n_shapes)
    return torch.compile(model)


def batch_bytes(task, sc, kind: str, table) -> int:
    """Bytes of the largest training batch the loader sends (what its workers put in shared memory)."""
    h, w = max(table, key=lambda hw: hw[0] * hw[1])
    if kind != "latents":
        return sc.batch_size * 3 * h * w  # uint8 pixels
    f, c = vae_factor(task.vae), task.vae.config.latent_channels
    tokens = task.cfg.text_encoder.max_length * task.text_encoder.dim
    return sc.batch_size * (2 * c * (h // f) * (w // f) * 2 + tokens * 2 + task.cfg.text_encoder.max_length)  # float16, bool


def check_shared_memory(task, sc, stage: int, kind: str, table) -> None:
    per_process = loader_bytes(batch_bytes(task, sc, kind, table), sc.data.num_workers, sc.data.prefetch)
    problem = shm_problem(per_process, processes_on_this_machine(), f"stages.{stage}.data")
    if problem:
        raise StartError(f"stage {stage}: {problem}")
    if per_process:
        log.info("loader shared memory: ~%.0f MB per process", per_process / 2**20)


def describe_skips(skipped: Counter) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(skipped.items()) if n) or "none"


def check_source_sizes(source, kind, table, sc, stage: int) -> None:
    """Fail at start when most of the stage's data is too small for its buckets."""
    seen, small = survey_upscale(source, kind, lambda h, w: assign_bucket(h, w, table), sc.max_upscale)
    if seen and small / seen > sc.max_skip_fraction:
        raise StartError(
            f"stage {stage}: {small} of the first {seen} samples are smaller than their {sc.resolution} px bucket "
            f"(stages.{stage}.max_upscale {sc.max_upscale}) and would be skipped; build shards with a larger "
            f"`images.image_size` (e.g. workflows/build_1024.yaml), or lower stages.{stage}.resolution")
    if small:
        log.info("stage %d: %d of the first %d samples are too small for their bucket and will be skipped", stage,
                 small, seen)


def init_report(source: Path, model, names: list[str]) -> dict:
    """Which tensors a warm start copied, and what share of the model's parameters they are."""
    sd = model.state_dict()
    copied = sum(sd[n].numel() for n in names)
    total = sum(p.numel() for p in model.parameters())
    return {"from": str(source), "tensors": names, "params_copied": copied, "params_total": total,
            "fraction_copied": copied / total}


def save_checkpoint(acc, stage_dir, task, model, optimizer, lr_sched, gen, step, consumed, sc, sharded=False) -> Path:
    """Every rank writes its RNG and data position; the main process the rest, then commits.
    Sharded (FSDP): every rank takes part in gathering the whole weights, EMA and optimizer
    state to rank 0, which writes the same files as an unsharded run."""
    tmp = ckpt_io.tmp_dir_for(stage_dir, step)
    if acc.is_main_process:
        tmp.mkdir(parents=True, exist_ok=True)
    acc.wait_for_everyone()
    tensors, py_np = ckpt_io.rng_state(gen)
    ckpt_io.save_weights({**tensors, "consumed": torch.tensor(consumed)}, tmp / f"rng_rank{acc.process_index}.safetensors")
    (tmp / f"rng_rank{acc.process_index}.json").write_text(json.dumps(py_np))
    opt = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper -> the torch optimizer
    if sharded:
        weights = {"model": full_model_state(model)} | ({"ema": full_model_state(task.ema)} if task.ema is not None else {})
        opt_state = full_optimizer_state(model, opt)
    else:
        weights = {"model": model} | ({"ema": task.ema} if task.ema is not None else {})
        opt_state = opt
    acc.wait_for_everyone()
    final = tmp.with_name(tmp.name.removesuffix(".tmp"))
    if acc.is_main_process:
        for name, sd in weights.items():
            ckpt_io.save_weights(sd, tmp / f"{name}.safetensors")
        ckpt_io.optimizer_to_files(opt_state, tmp)
        state = {"step": step, "task": task.kind, "world_size": acc.num_processes, "num_workers": sc.data.num_workers,
                 "batch_size": sc.batch_size, "lr_scheduler": lr_sched.state_dict(), **task.describe()}
        final = ckpt_io.commit(tmp, state, sc.keep_checkpoints)
    acc.wait_for_everyone()
    return final


def resume_from(path: Path, task, optimizer, lr_sched, gen, rank, world, sc, sharded=False) -> tuple[int, int]:
    state = ckpt_io.read_state(path)
    nets = {"model": task.model} | ({"ema": task.ema} if task.ema is not None else {})
    if sharded:  # rank 0 reads the whole files and scatters them into the shards
        for name, net in nets.items():
            load_full_model_state(net, ckpt_io.load_weights(path / f"{name}.safetensors") if rank == 0 else {})
        load_full_optimizer_state(task.model, optimizer, ckpt_io.read_optimizer_files(path) if rank == 0 else {})
    else:
        for name, net in nets.items():
            net.load_state_dict(ckpt_io.load_weights(path / f"{name}.safetensors"))
        ckpt_io.optimizer_from_files(optimizer, path)
    lr_sched.load_state_dict(state["lr_scheduler"])
    same_layout = (state["world_size"], state["num_workers"], state["batch_size"]) == (world, sc.data.num_workers, sc.batch_size)
    rng_file = path / f"rng_rank{rank}.safetensors"
    if not same_layout or not rng_file.exists():
        log.warning("resume: checkpoint was written with %d process(es), %d loader workers, batch %d; now %d, %d, %d: "
                    "the data stream restarts (not an exact continuation)", state["world_size"], state["num_workers"],
                    state["batch_size"], world, sc.data.num_workers, sc.batch_size)
        return state["step"], 0
    ckpt_io.set_rng_state(path, rank, gen, json.loads((path / f"rng_rank{rank}.json").read_text()))
    return state["step"], int(ckpt_io.load_weights(rng_file)["consumed"])


if __name__ == "__main__":
    sys.exit(main())
