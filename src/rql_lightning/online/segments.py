"""Online transitions on disk, beside the checkpoints: immutable segment files, written atomically.

Online rows only grow, so a checkpoint saves just the rows added since the previous one, as one
``.npz`` segment named by its row range and a digest of its content (two runs that share a range but
not its rows, e.g. after resuming from an older checkpoint, never overwrite each other). The
checkpoint lists its segments; the weights file holds no transitions. Each segment is written to a
temporary file in the same directory, fsynced, then renamed: a reader never sees half a segment, and
a checkpoint is written only after every segment it lists is on disk. A write the machine refuses stops the
run as one line naming the segment, the OS error and the last good checkpoint (:mod:`rql_lightning.file_writes`).
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

    def last_good() -> str:  # the checkpoint that lists this segment is written after it, beside its directory
        return last_good_line(directory.parent)

    write_atomically(path, lambda f: f.write(raw), what="the online transitions", state=last_good)
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
