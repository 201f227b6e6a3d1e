"""Model-pool sizing that cannot hang (issue 26, item 3): actors x GPUs per actor never
exceeds the cluster's GPUs, and actors that cannot start stop the build after
ray.model_pool_start_timeout_s, naming what they wait for. The cluster's GPUs are
patched in (ray.cluster_resources); the timeout runs on a real CPU-only Ray."""

from __future__ import annotations

import pytest
import ray
import torch

from pipeline.model_pool import ModelActor, model_actor_options
from pipeline.pool_start import PoolStartError
from pipeline.runner import _start_model_pool
from steps import devices
from tests.pipeline.conftest import workflow

SOURCES = [{"type": "folder", "path": "/nonexistent"}]


@pytest.mark.parametrize("ray_cfg, actors, gpus_each, idle", [
    ({}, 4, 1.0, 0),
    ({"model_actors_per_gpu": 2}, 8, 0.5, 0),
    ({"model_actors": 8}, 8, 0.5, 0),  # was 8 actors asking for a whole GPU each: 4 never start
    ({"model_actors": 6}, 6, 0.5, 1),  # 2 + 2 + 2 on three GPUs
    ({"model_actors": 9}, 9, 1 / 3, 1),
    ({"model_actors": 2}, 2, 1.0, 2),
])
def test_actors_times_gpus_fits_the_cluster(monkeypatch, ray_cfg, actors, gpus_each, idle):
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 64.0, "GPU": 4.0})
    warnings = []
    n, options = model_actor_options(workflow(SOURCES, ray=ray_cfg), warnings)
    assert (n, options["num_gpus"]) == (actors, pytest.approx(gpus_each))
    assert n * options["num_gpus"] <= 4 + 1e-9
    if idle:
        assert len(warnings) == 1 and f"ray.model_actors = {n} leaves {idle} of the cluster's 4 GPUs idle" in warnings[0]
    else:
        assert warnings == []


def test_device_auto_on_an_actor_ray_gave_a_gpu_must_use_it(monkeypatch):
    # the actor's own code, run in this process: Ray gave it GPU 0, but torch cannot use it (a driver too old)
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [0])
    monkeypatch.setattr(devices, "_cpu_fallback", False)  # restored after: the actor sets it for its process
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    actor = ModelActor.__ray_actor_class__
    filters = {"blur": {"enabled": False}, "watermark": {"enabled": True, "defer_text_area": None}}  # device: auto
    with pytest.raises(RuntimeError, match=r"filters.watermark: device: auto on a model actor Ray gave 1 GPU\(s\), but it runs on CPU"):
        actor(workflow(SOURCES, filters=filters).model_dump_json())
    described = actor(workflow(SOURCES, filters=filters, ray={"allow_cpu_fallback": True}).model_dump_json()).describe()
    assert described["devices"]["watermark"][0]["device"] == "cpu" and "is_available() is False" in described["warnings"][0]
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [])  # a CPU actor: auto on CPU is what was asked
    assert actor(workflow(SOURCES, filters=filters).model_dump_json()).describe()["warnings"] == []


@pytest.mark.timeout(120)
def test_actors_that_cannot_start_stop_the_build_naming_what_is_missing(ray_session, monkeypatch):
    # the driver is told of a GPU the CPU-only cluster does not have: the actor waits for it forever
    real = ray.cluster_resources
    monkeypatch.setattr(ray, "cluster_resources", lambda: {**real(), "GPU": 1.0})
    cfg = workflow(SOURCES, annotate={"probe": {"enabled": True}}, ray={"model_pool_start_timeout_s": 2})
    with pytest.raises(PoolStartError, match=r"1 of 1 model actors did not start within ray.model_pool_start_timeout_s = 2 s; "
                                             r"each asks for 1 CPU and 1 GPU, .*: missing 1 GPU\. Lower ray.model_actors"):
        _start_model_pool(cfg)

