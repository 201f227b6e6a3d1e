"""What it takes to make and measure the filters, never imported by a build: the watermark
model's trainer and its training data, synthetic watermarks and text, the real photos
bundled in installed packages, blur degradations, held-out photo labels and quality
metrics (used by the trainer, the quality benches and the tests)."""
