"""One way to read a YAML config file into a pydantic model, for the workflow
(pipeline/config.py) and the training config (train/config.py): a missing file, bad YAML,
a non-mapping or an invalid field each end as a ConfigError naming the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file and the field."""


def validate_mapping(model: type[M], data: Any, what: str, origin: str = "<dict>") -> M:
    """`data` as `model`; `what` names the kind of file in messages ("workflow", "training config")."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid {what} {origin}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        lines = [f"invalid {what} {origin}:"]
        lines += [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
        raise ConfigError("\n".join(lines)) from None


def read_yaml(path: str | Path, what: str, example: str) -> Any:
    """The parsed YAML of `path`; `example` is the --config value the message suggests."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist; pass --config {example}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} {path} is not valid YAML: {err}") from None
