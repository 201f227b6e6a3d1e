"""Filters: one module per filter (see README, "Filters")."""

# The modules that register filters: the only ones a build imports (stages/registry.py).
STAGE_MODULES = ("resolution", "blur", "watermark", "nsfw", "concepts", "text")
