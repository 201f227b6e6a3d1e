"""Stages: the one interface shared by filters and annotators (see README, "Stages")."""

from stages.base import Stage, StageConfig
from stages.registry import build_stages, get_stage, list_stages, register_stage

__all__ = ["Stage", "StageConfig", "build_stages", "get_stage", "list_stages", "register_stage"]
