"""Experiments the benches and tests run end to end through the documented commands (not used by a build or a training run)."""
