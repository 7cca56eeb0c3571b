"""The generated-data cache: a file is generated once, then trusted by name."""

from __future__ import annotations

import warnings
from pathlib import Path

from rql_lightning.data.dataset_checks import npz_headers
from rql_lightning.data.generate.files import generate_play_dataset
from rql_lightning.naming import dataset_file, val_path_of


def ensure_play_dataset(
    dataset_name: str,
    data_dir: str | Path,
    num_transitions: int,
    seed: int = 0,
    num_workers: int = 1,
) -> Path:
    """Return ``<data_dir>/<dataset_name>.npz``, generating it and its ``-val.npz`` only if either is missing.

    The cache is keyed by file name only: an existing file is trusted (it may be OGBench's own download),
    with a warning if it holds fewer transitions than requested. Delete it to regenerate.
    """
    path = dataset_file(data_dir, dataset_name)
    if path.exists() and val_path_of(path).exists():
        available = npz_headers(path)["terminals"][0][0]
        if available < num_transitions:
            warnings.warn(
                f"{path} holds {available} transitions, fewer than the {num_transitions} requested; "
                "delete it to regenerate",
                stacklevel=2,
            )
        return path
    return generate_play_dataset(dataset_name, path, num_transitions, seed=seed, num_workers=num_workers)
