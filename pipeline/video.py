"""Video units: sample frames with PyAV every N seconds and/or at keyframes.

Each sampled frame becomes a sample keyed by (video, time). A video that cannot be
opened is one failed row; a video that breaks part-way keeps the frames read so far
and adds one failed row (key `<video key>_error`) saying where it broke.
"""

from __future__ import annotations

import av

from pipeline.config import DownloadConfig
from pipeline.decode import prepare_array
from pipeline.keys import frame_key
from pipeline.sample import Sample


def _wanted_times(frames, every_seconds: float | None, keyframes: bool):
    """Yield (time, frame) for frames to keep from a decoded frame stream."""
    next_t = 0.0
    for frame in frames:
        t = float(frame.time) if frame.time is not None else 0.0
        take = keyframes and frame.key_frame
        if every_seconds is not None and t + 1e-6 >= next_t:
            take = True
            while next_t <= t + 1e-6:
                next_t += every_seconds
        if take:
            yield t, frame


def load_video_unit(items: list[dict], cfg: DownloadConfig) -> list[Sample]:
    (it,) = items
    video = it["path"]
    base = {"kind": "video_frame", "path": video, "caption": it["caption"], **it["extra"]}
    samples: list[Sample] = []

    def failure(error: str) -> Sample:
        s = Sample(f"{it['key']}_error", len(samples), {**base, "kind": "video"})
        s.fail(error)
        return s

    if it["error"]:
        return [failure(it["error"])]
    try:
        container = av.open(video, timeout=cfg.timeout if "://" in video else None)
    except Exception as err:  # noqa: BLE001 - PyAV raises many kinds for unreadable input
        return [failure(f"video_open_error: cannot open {video}: {err}")]
    last_t = None
    try:
        with container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if it["keyframes"] and it["every_seconds"] is None:
                stream.codec_context.skip_frame = "NONKEY"  # decode keyframes only: much faster
            for t, frame in _wanted_times(container.decode(stream), it["every_seconds"], it["keyframes"]):
                stored = prepare_array(frame.to_ndarray(format="rgb24"), cfg.image_size, cfg.encode_quality)
                s = Sample(frame_key(video, t), len(samples), {**base, "video_time": round(t, 3)}, image=stored)
                samples.append(s)
                last_t = t
    except IndexError:
        return [failure(f"video_open_error: {video} has no video stream")]
    except Exception as err:  # noqa: BLE001 - truncated/corrupt stream: keep what was read
        where = f"after t={last_t:.3f}s" if last_t is not None else "before the first sampled frame"
        samples.append(failure(f"video_truncated: decoding {video} failed {where}: {err}"))
    if not samples:
        samples.append(failure(f"video_empty: {video} yielded no frames"))
    return samples
