"""Inputs made from the bundled real photos (filter_dev/photos.py): a photo with a shop sign
and a short video, for the demo, the benchmarks and the tests."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from filter_dev.photos import load_rgb


def with_shop_sign(rgb: np.ndarray, text: str = "BAKERY OPEN") -> np.ndarray:
    """A real photo with a small shop sign painted near its top-left (about 2 % of a
    600x400 photo: ordinary scene text, not a text-heavy image)."""
    img = rgb.copy()
    cv2.rectangle(img, (30, 24), (210, 64), (250, 250, 245), -1)
    cv2.rectangle(img, (30, 24), (210, 64), (60, 40, 20), 2)
    cv2.putText(img, text, (40, 52), cv2.FONT_HERSHEY_SIMPLEX, 0.75, (20, 20, 20), 2, cv2.LINE_AA)
    return img


def make_video(path: Path, photos: list[Path], seconds_per_photo: float = 1.0, fps: int = 12,
               size: tuple[int, int] = (320, 240), gop: int = 12) -> float:
    """Write an H.264 mp4 showing each photo in turn; returns its duration in seconds."""
    w, h = size
    n = 0
    # faststart: the index (moov) goes first, as web video does, so HTTP readers need no seek to the end
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = gop  # a keyframe every `gop` frames
        for p in photos:
            rgb = cv2.resize(load_rgb(p), (w, h), interpolation=cv2.INTER_AREA)
            for _ in range(round(seconds_per_photo * fps)):
                out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
                n += 1
        out.mux(stream.encode())
    return n / fps
