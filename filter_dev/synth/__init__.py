"""Synthetic image edits for training and measuring the filters (never used in a build):

- fonts.py: the font pools (train / held-out split by file) and the texts drawn on images;
- watermarks.py: visible watermarks in train and held-out styles (watermark positives);
- text.py: prominent rendered text (text-filter positives) and ordinary scene text, signs
  and labels in the scene (watermark hard negatives);
- backgrounds.py: clean backgrounds made from no photo (dead leaves, textures).
"""
