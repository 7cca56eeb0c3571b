"""Evaluation videos for TensorBoard: episodes tiled into one grid, an animated GIF image summary (encoded with
Pillow: ``SummaryWriter.add_video`` silently writes nothing without ``moviepy<2``)."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from lightning.pytorch.utilities import rank_zero_warn

__all__ = ["gif_summary", "log_video", "tile"]


def tile(videos: list[np.ndarray]) -> np.ndarray:
    """Episodes ``(T_i, H, W, 3)`` -> one ``(max T_i, rows * H, cols * W, 3)`` grid (shorter ones held)."""
    t = max(v.shape[0] for v in videos)
    h, w = videos[0].shape[1:3]
    cols = math.ceil(math.sqrt(len(videos)))
    rows = math.ceil(len(videos) / cols)
    grid = np.zeros((t, rows * h, cols * w, 3), dtype=np.uint8)
    for i, v in enumerate(videos):
        r, c = divmod(i, cols)
        padded = np.concatenate([v, np.repeat(v[-1:], t - v.shape[0], axis=0)]) if v.shape[0] < t else v
        grid[:, r * h : (r + 1) * h, c * w : (c + 1) * w] = padded
    return grid


def gif_summary(tag: str, frames: np.ndarray, fps: float, summary_cls: Any = None):
    """A ``Summary`` (``summary_cls``: the writer package's, default tensorboard's) of ``frames (T, H, W, 3)``
    uint8 as an animated GIF image."""
    from PIL import Image

    if summary_cls is None:
        from tensorboard.compat.proto.summary_pb2 import Summary
    else:
        Summary = summary_cls  # noqa: N806

    images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    buf = io.BytesIO()
    duration = max(1, round(1000 / fps))
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    _, h, w, c = frames.shape
    image = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=buf.getvalue())
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def log_video(loggers: Iterable[Any], tag: str, videos: list[np.ndarray], step: int, fps: float) -> None:
    """Episodes side by side as one GIF ``tag`` at ``step`` in every TensorBoard logger; a failure is a warning."""
    from lightning.pytorch.loggers import TensorBoardLogger

    tensorboards = [lg for lg in loggers if isinstance(lg, TensorBoardLogger)]
    if not tensorboards or not videos:
        return
    grid = tile(videos)
    for logger in tensorboards:
        writer = logger.experiment
        try:
            summary_cls = None
            if type(writer).__module__.startswith("tensorboardX"):  # Lightning prefers it when installed
                from tensorboardX.proto.summary_pb2 import Summary as summary_cls
            writer._get_file_writer().add_summary(gif_summary(tag, grid, fps, summary_cls), step)
            writer.flush()
        except Exception as err:  # noqa: BLE001
            rank_zero_warn(f"eval video not logged: {type(err).__name__}: {err}")
