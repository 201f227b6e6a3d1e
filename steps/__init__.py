"""Steps: the one interface shared by filters and annotators (see README, "Steps")."""

from steps.base import Step, StepConfig
from steps.registry import build_steps, get_step, list_steps, register_step

__all__ = ["Step", "StepConfig", "build_steps", "get_step", "list_steps", "register_step"]
