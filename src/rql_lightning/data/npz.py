"""What an ``.npz`` holds (keys, shapes, dtypes) read from its array headers, without loading an array.

Cheap even for GB files: each member's header is the first bytes of its (possibly compressed) stream.
It lets a datamodule know its dims before loading, and rejects pickled (object) arrays before numpy
is asked to unpickle them.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

ArrayHeader = tuple[tuple[int, ...], np.dtype]


def npz_headers(path: str | Path) -> dict[str, ArrayHeader]:
    """``{key: (shape, dtype)}`` of every array in ``path``; raises what ``zipfile``/numpy raise on a bad file."""
    headers = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                continue
            with archive.open(member) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            headers[member[: -len(".npy")]] = (tuple(shape), np.dtype(dtype))
    return headers


def row_dim(header: ArrayHeader) -> int:
    """Features per row of a ``(rows, ...)`` array."""
    return int(np.prod(header[0][1:], dtype=np.int64))
