"""The workflow YAML for a dataset build, validated before any work starts.

Every model forbids unknown fields, so a typo like `shard_sise:` fails with the field's
path (e.g. `output.shard_sise: Extra inputs are not permitted`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, model_validator

from pipeline.config_file import ConfigError, read_yaml, validate_mapping  # noqa: F401 - ConfigError re-exported
from steps.registry import section_config


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UrlListSource(_Strict):
    type: Literal["url_list"]
    path: str = Field(description="parquet, csv, tsv or jsonl with a `url` column (and optionally `caption`)")


class FolderSource(_Strict):
    type: Literal["folder"]
    path: str
    recursive: bool = True
    extensions: list[str] = [".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"]


class VideoSource(_Strict):
    type: Literal["video"]
    path: str = Field(description="a local video file or an http(s) URL")
    every_seconds: float | None = Field(2.0, gt=0, description="sample a frame every N seconds (null: off)")
    keyframes: bool = Field(False, description="also sample every keyframe")
    caption: str = ""

    @model_validator(mode="after")
    def _some_sampling(self):
        if self.every_seconds is None and not self.keyframes:
            raise ValueError("set every_seconds, keyframes: true, or both; otherwise no frame is sampled")
        return self


class WebDatasetSource(_Strict):
    type: Literal["webdataset"]
    path: str = Field(description='shard files: a path or a brace pattern, e.g. "data/{00000..00099}.tar"')


Source = Annotated[UrlListSource | FolderSource | VideoSource | WebDatasetSource, Field(discriminator="type")]


class ImagesConfig(_Strict):
    """How every image is decoded and stored, whatever its source (URL, file, video frame, shard)."""

    image_size: int = Field(512, ge=16, description="stored images are resized so the longer side is at most this")
    encode_quality: int = Field(95, ge=1, le=100, description="JPEG quality of the stored image")
    max_image_pixels: int = Field(
        100_000_000, ge=1, description="images whose header declares more pixels fail as too_large, before decoding"
    )
    max_decode_seconds: float = Field(
        30.0, gt=0, description="a decode running longer ends its worker process; the image fails as decode_timeout "
        "and the unit runs again without it (pipeline/decode_deadline.py)"
    )


class DownloadConfig(_Strict):
    """How URLs (images and videos) are fetched."""

    thread_count: int = Field(32, ge=1, description="img2dataset download threads per worker")
    timeout: float = Field(10.0, gt=0, description="seconds a connect or a read may wait for the next bytes")
    retries: int = Field(0, ge=0, description="retries of a failed fetch, inside the same max_seconds")
    max_bytes: int = Field(
        32 * 2**20, ge=1, description="largest image response (or input-shard member) read; bigger ones fail as too_large (memory per thread)"
    )
    max_seconds: float = Field(
        60.0, gt=0, description="total time per image URL (DNS, connect, headers, body, redirects); then timeout"
    )
    max_redirects: int = Field(10, ge=0, description="redirect hops followed; more fail as too_many_redirects")
    max_per_host: int = Field(4, ge=1, description="requests to one host at once, per worker; a 429/503 Retry-After pauses the host")
    video_max_bytes: int = Field(2**30, ge=1, description="largest video download (to a temp file); then too_large")
    video_max_seconds: float = Field(600.0, gt=0, description="total time per video download; then timeout")
    allow_private_networks: bool | list[IPvAnyNetwork] = Field(
        False,
        description="fetch loopback, private and link-local addresses (true, or a list of networks such as "
        "['10.1.0.0/16']); by default they fail as blocked_address",
    )
    user_agent_token: str | None = None


class OutputConfig(_Strict):
    dir: str = "out/dataset"
    shard_size: int = Field(1000, ge=1, description="input items per work unit; each unit writes one shard of its kept samples")


class RayConfig(_Strict):
    num_workers: int | None = Field(None, ge=1, description="CPU worker actors (download, decode, cheap filters); default: the CPUs left after the model pool")
    num_cpus_per_worker: float = Field(1.0, gt=0)
    model_actors: int | None = Field(None, ge=1, description="model pool actors; default: GPUs x model_actors_per_gpu, or CPUs // 4 (at least 1) without GPUs")
    model_actors_per_gpu: int = Field(1, ge=1, description="actors sharing one GPU (each gets 1/N of it)")
    num_cpus_per_model_actor: float = Field(1.0, gt=0)
    allow_cpu_fallback: bool = Field(False, description="a model step asked for a GPU (device: cuda, or auto on an actor Ray gave a GPU) that "
                                     "cannot have one runs on CPU with a warning in the manifest; by default the build stops at start-up, saying why")
    model_pool_start_timeout_s: float = Field(900.0, gt=0, description="longest wait for the model actors to start and load their models; "
                                              "then the build stops, naming the resources the actors wait for")
    model_batch_size: int = Field(64, ge=1, description="samples per batch sent from a CPU worker to the model pool")
    max_failed_batches: int = Field(3, ge=1, description="a step failing every sample of this many batches in a row (a broken model) stops the build")


class DedupConfig(_Strict):
    """The duplicate pass after the units (pipeline/dedup.py)."""

    enabled: bool = Field(True, description="remove copies across the whole build when it ends (exact pixels, and near with `near`)")
    near: bool = Field(True, description="also near copies: perceptual hashes within max_distance bits")
    max_distance: int = Field(8, ge=0, le=32, description="largest Hamming distance between the 64-bit pHashes of near copies")
    semantic: bool = Field(False, description="also semantic duplicates (SemDeDup) from the stored CLIP image embeddings: needs a CLIP step")
    eps: float = Field(0.05, gt=0, lt=1, description="semantic duplicates: cosine similarity above 1 - eps within a k-means cluster")
    clusters: int = Field(0, ge=0, description="k-means clusters for the semantic step; 0 = one per 1000 embeddings")


# One field per registered step (filters/*.py, annotate/*.py register themselves).
FiltersConfig = section_config("filter", "FiltersConfig")
AnnotateConfig = section_config("annotator", "AnnotateConfig")


class WorkflowConfig(_Strict):
    name: str = "dataset"
    sources: list[Source] = Field(min_length=1)
    download: DownloadConfig = DownloadConfig()
    images: ImagesConfig = ImagesConfig()
    output: OutputConfig = OutputConfig()
    filters: FiltersConfig = FiltersConfig()
    annotate: AnnotateConfig = AnnotateConfig()
    score_all: bool = Field(False, description="score every filter on every sample (for threshold tuning)")
    dedup: DedupConfig = DedupConfig()
    ray: RayConfig = RayConfig()


def parse_workflow(data: dict, origin: str = "<dict>") -> WorkflowConfig:
    return validate_mapping(WorkflowConfig, data, "workflow", origin)


def load_workflow(path: str | Path) -> WorkflowConfig:
    return parse_workflow(read_yaml(path, "workflow file", "workflows/NAME.yaml"), str(path))
