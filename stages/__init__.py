"""Stages: the one interface shared by filters and annotators (see README, "Stages")."""

from stages.base import Resources, Stage
from stages.registry import StageSpec, build_stages, get_spec, list_stages, register_stage

__all__ = ["Resources", "Stage", "StageSpec", "build_stages", "get_spec", "list_stages", "register_stage"]
