"""Video units: sample frames with PyAV every N seconds and/or at keyframes.

Each sampled frame becomes a sample keyed by (video, time). A video that cannot be
opened is one failed row; a video that breaks part-way keeps the frames read so far
and adds one failed row (key `<video key>_error`) saying where it broke.

A video URL is downloaded first, through the same capped fetch as images
(pipeline/fetch.py: address checks on every hop, `download.video_max_bytes`,
`download.video_max_seconds`), into a temp file that is decoded and deleted. FFmpeg's
own HTTP client is never used: it has no total deadline and no address checks.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable

import av

from pipeline.config import DownloadConfig
from pipeline.decode import ImageDecoder
from pipeline.fetch import FetchError, fetch, policy_for
from pipeline.keys import frame_key
from pipeline.sample import Sample
from pipeline.sources import InputItem


class _Sampler:
    """Picks frames to keep from a decoded stream; remembers the last time seen."""

    def __init__(self, every_seconds: float | None, keyframes: bool):
        self.every_seconds, self.keyframes = every_seconds, keyframes
        self.next_t = 0.0
        self.last_seen: float | None = None

    def __call__(self, frames):
        for frame in frames:
            t = float(frame.time) if frame.time is not None else 0.0
            self.last_seen = t
            take = self.keyframes and frame.key_frame
            if self.every_seconds is not None and t + 1e-6 >= self.next_t:
                take = True
                while self.next_t <= t + 1e-6:
                    self.next_t += self.every_seconds
            if take:
                yield t, frame


def _declared_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def load_video_unit(items: list[InputItem], cfg: DownloadConfig, decoder: ImageDecoder, on_sample: Callable[[Sample], None]) -> list[Sample]:
    (it,) = items
    video = it.location
    base = it.source_fields("video_frame")
    samples: list[Sample] = []

    def failure(error: str) -> Sample:
        s = Sample(f"{it.key}_error", len(samples), {**base, "kind": "video"})
        s.fail(error)
        return s

    if it.error:
        return [failure(it.error)]
    if "://" not in video:
        return _decode_video(video, video, it, decoder, on_sample, samples, failure, base)
    with tempfile.NamedTemporaryFile(prefix="video-dl-", suffix=".bin") as tmp:
        try:
            fetch(video, policy_for(cfg, video=True), tmp, retries=cfg.retries)
            tmp.flush()
        except FetchError as err:
            return [failure(str(err))]
        return _decode_video(tmp.name, video, it, decoder, on_sample, samples, failure, base)


def _decode_video(local: str, video: str, it: InputItem, decoder: ImageDecoder, on_sample, samples: list, failure, base):
    """Sample frames of the file at `local`; keys and messages name `video` (the source)."""
    try:
        container = av.open(local)
    except Exception as err:  # noqa: BLE001 - PyAV raises many kinds for unreadable input
        return [failure(f"video_open_error: cannot open {video}: {err}")]
    last_t = None
    sampler = _Sampler(it.video.every_seconds, it.video.keyframes)
    try:
        with container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if it.video.keyframes and it.video.every_seconds is None:
                stream.codec_context.skip_frame = "NONKEY"  # decode keyframes only: much faster
            declared = _declared_duration(container, stream)
            frame_s = 1.0 / float(stream.average_rate) if stream.average_rate else 0.1
            for t, frame in sampler(container.decode(stream)):
                stored = decoder.from_frame(frame.width, frame.height, lambda f=frame: f.to_ndarray(format="rgb24"))
                s = Sample(frame_key(video, t), len(samples), {**base, "video_time": round(t, 3)}, image=stored)
                samples.append(s)
                on_sample(s)
                last_t = t
        # A cut file often just ends early, without a decoder error: compare with the
        # duration its header declares (keyframe-only decoding may stop a GOP short).
        slack = 2 * frame_s if stream.codec_context.skip_frame != "NONKEY" else 10.0  # GOPs can be long
        if declared is not None and sampler.last_seen is not None and sampler.last_seen < declared - frame_s - slack:
            samples.append(failure(
                f"video_truncated: {video} ends at t={sampler.last_seen:.3f}s but declares {declared:.3f}s"))
    except IndexError:
        return [failure(f"video_open_error: {video} has no video stream")]
    except Exception as err:  # noqa: BLE001 - truncated/corrupt stream: keep what was read
        where = f"after t={last_t:.3f}s" if last_t is not None else "before the first sampled frame"
        samples.append(failure(f"video_truncated: decoding {video} failed {where}: {err}"))
    if not samples:
        samples.append(failure(f"video_empty: {video} yielded no frames"))
    return samples
