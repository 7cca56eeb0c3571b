"""Online transitions beside the checkpoints: immutable ``.npz`` segments (the rows since the previous save, named
by row range and content digest, so two histories never overwrite each other), written atomically before the
checkpoint that lists them (:mod:`rql_lightning.file_writes`).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from rql_lightning.checkpointing import last_good_line
from rql_lightning.file_writes import write_atomically

SEGMENT_DIR = "online"  # under the checkpoint directory


def write_segment(directory: Path, start: int, arrays: dict[str, np.ndarray]) -> str:
    """Write online rows ``[start, start + n)``; returns the segment's file name."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    raw = buffer.getvalue()
    n = len(next(iter(arrays.values())))
    name = f"rows{start:010d}-{start + n:010d}-{hashlib.blake2b(raw, digest_size=8).hexdigest()}.npz"
    path = directory / name
    if path.exists():  # same range, same content
        return name
    last_good = directory.parent  # the checkpoint that lists this segment is written after it, beside its directory
    write_atomically(
        path, lambda f: f.write(raw), what="the online transitions", state=lambda: last_good_line(last_good)
    )
    return name


def read_segments(directory: Path, names: list[str], rows: int) -> dict[str, np.ndarray]:
    """The first ``rows`` online rows from the listed segments, in order."""
    parts: dict[str, list[np.ndarray]] = {}
    for name in names:
        with np.load(directory / name, allow_pickle=False) as file:
            for key in file.files:
                parts.setdefault(key, []).append(file[key])
    arrays = {key: np.concatenate(values) for key, values in parts.items()}
    found = len(next(iter(arrays.values()))) if arrays else 0
    if found < rows:
        raise FileNotFoundError(f"{directory} holds {found} of the checkpoint's {rows} online transitions")
    return {key: value[:rows] for key, value in arrays.items()}
