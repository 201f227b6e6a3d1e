"""Fixtures: a loopback HTTP server with real photos and hostile inputs, and one
local Ray for the session (bound to 127.0.0.1; `make test` also runs the suite in a
private network namespace)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from demo.loopback_server import LoopbackServer
from filter_dev import hostile
from pipeline.config import WorkflowConfig, parse_workflow

SLOW_SECONDS = 4.0  # the slow route answers after this; tests use a 1.5 s timeout


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """(server, photo names): real photos under /photos/, hostile inputs at the root."""
    root = tmp_path_factory.mktemp("www")
    (root / "photos").mkdir()
    from filter_dev.photos import skimage_photos

    names = []
    for p in skimage_photos():
        if p.name in hostile.PHOTO_NAMES:
            shutil.copy(p, root / "photos" / p.name)
            names.append(p.name)
    with LoopbackServer(root, hostile.routes(hostile.hostile_payloads(), SLOW_SECONDS, root / "photos")) as server:
        yield server, names


def workflow(sources: list[dict], **overrides) -> WorkflowConfig:
    """A small test workflow: fast timeouts, small shards, low resolution floor."""
    data = {
        "name": "test",
        "sources": sources,
        # allow_private_networks: the test servers listen on 127.0.0.1, which a build refuses by default
        "images": {"image_size": 256},
        # max_per_host = thread_count: one loopback host serves every test URL, and politeness
        # (tested in test_polite_download.py) would only slow these tests down
        "download": {"timeout": 1.5, "thread_count": 8, "allow_private_networks": True, "max_per_host": 8},
        "output": {"shard_size": 5},
        "filters": {"resolution": {"min_side": 64}},
        # the tests reuse a handful of photos as distinct inputs: the duplicate pass (on by
        # default) is turned on where it is the subject (test_dedup.py, the report's build)
        "dedup": {"enabled": False},
    }
    for k, v in overrides.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    return parse_workflow(data)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def photo_folder(folder: Path, names) -> Path:
    """A folder holding the named scikit-image photos (a folder source for a test build)."""
    from filter_dev.photos import skimage_photos

    folder.mkdir(parents=True, exist_ok=True)
    for p in skimage_photos():
        if p.name in names:
            shutil.copy(p, folder / p.name)
    return folder

