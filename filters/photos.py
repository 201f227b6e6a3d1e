"""Moved to filter_dev/photos.py (photo lists are not runtime code). This alias stays only
until tests/train/shards.py (owned by the training branch) imports filter_dev.photos."""

from filter_dev.photos import load_rgb, skimage_photos  # noqa: F401
