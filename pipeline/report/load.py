"""Read a build output folder: ledger, manifest, state; finished, running or killed.

A unit is done exactly when its `ledger/NNNNN.parquet` exists (the writer renames it
last), so a folder is readable at any moment of a build. `manifest.json` is written
when a run ends; without it the build is still running or was killed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from pipeline.ledger import read_ledger_file
from pipeline.output_layout import (
    LEDGER_DIR,
    MANIFEST_FILE,
    SHARD_DIR,
    STATE_FILE,
    TMP_SUFFIX,
)


class NotABuildError(ValueError):
    """The folder is not a build_dataset output; the message says what is missing."""


@dataclass
class BuildOutput:
    path: Path
    ledger: pd.DataFrame  # one row per input item of every finished unit
    config: dict  # the workflow as the build ran it (manifest, else _state.json)
    manifest: dict | None  # None while running, or after a kill
    units_done: list[str]
    units_planned: int | None  # None when the inputs cannot be re-planned here
    units_in_progress: list[str] = field(default_factory=list)  # units with partial (.tmp) files
    plan_note: str = ""

    @property
    def finished(self) -> bool:
        return self.manifest is not None and (self.units_planned is None or len(self.units_done) >= self.units_planned)

    @property
    def state_line(self) -> str:
        planned = "?" if self.units_planned is None else str(self.units_planned)
        done = f"{len(self.units_done)} of {planned} units done"
        if self.finished:
            return f"finished ({done})"
        busy = f"; in progress: {', '.join(self.units_in_progress)}" if self.units_in_progress else ""
        return f"NOT finished: still running or killed (no manifest.json yet; {done}{busy}){self.plan_note}"


def _planned_units(config: dict) -> tuple[int | None, str]:
    """Re-plan the build's inputs from its config to count its units (cheap: no download)."""
    from pipeline.config import parse_workflow
    from pipeline.sources import plan_units

    try:
        return len(plan_units(parse_workflow(config))), ""
    except Exception as err:  # noqa: BLE001 - the inputs may have moved; the report still works
        return None, f"; units planned unknown: {str(err).splitlines()[0]}"


def load_build(out_dir: str | Path) -> BuildOutput:
    out = Path(out_dir)
    if not out.is_dir():
        raise NotABuildError(f"{out} does not exist or is not a folder; pass the --output folder of a build_dataset run")
    manifest_path, state_path, ledger_dir = out / MANIFEST_FILE, out / STATE_FILE, out / LEDGER_DIR
    if not ledger_dir.is_dir() and not state_path.is_file():
        raise NotABuildError(
            f"{out} is not a build_dataset output folder: it has no ledger/ (one parquet per finished unit) "
            f"and no {STATE_FILE}; pass the folder given to build_dataset.py as --output (it holds ledger/, shards/, manifest.json)"
        )
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    state = json.loads(state_path.read_text()) if state_path.is_file() else None
    config = (manifest or {}).get("config") or (state or {}).get("config")
    if config is None:
        raise NotABuildError(f"{out} has neither {MANIFEST_FILE} nor {STATE_FILE}, so its workflow config is unknown; "
                             "it is not (the start of) a build_dataset output folder")
    done = sorted(p.stem for p in ledger_dir.glob("*.parquet")) if ledger_dir.is_dir() else []
    if done:
        tables = [read_ledger_file(ledger_dir / f"{u}.parquet") for u in done]
        ledger = pa.concat_tables(tables, promote_options="default").to_pandas()
    else:
        ledger = pd.DataFrame({c: pd.Series(dtype=object) for c in ("key", "source", "kind", "status", "reason", "detail", "shard")})
    in_progress = sorted({p.name.split(".")[0] for d in (SHARD_DIR, LEDGER_DIR) for p in (out / d).glob(f"*{TMP_SUFFIX}")} - set(done))
    if manifest is not None and "units" in manifest:
        planned, note = manifest["units"]["total"], ""
    else:
        planned, note = _planned_units(config)
    return BuildOutput(out, ledger, config, manifest, done, planned, in_progress, note)
