"""Filters: one module per filter (see README, "Filters")."""

# The modules that register filters: the only ones a build imports (steps/registry.py).
STEP_MODULES = ("resolution", "caption_rules", "blur", "watermark", "nsfw", "concepts", "clip_score", "aesthetic", "text")
