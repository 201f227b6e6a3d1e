"""Annotators: one module per annotator, plus caption fusion (see README, "Captions")."""

# The modules that register annotators: the only ones a build imports (steps/registry.py).
STEP_MODULES = ("detector", "captioner", "ocr", "fuse")
