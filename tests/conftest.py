"""Shared test setup: tiny networks run fastest on one intra-op thread (and CI has 2 cores)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cube_single_dataset(tmp_path_factory) -> Path:
    """A small real cube-single play dataset (3 train + 1 val oracle episodes), generated once per session.

    Returns the train ``.npz``; its ``-val.npz`` lies beside it.
    """
    from rql_lightning.data.generate import ensure_play_dataset

    data_dir = tmp_path_factory.mktemp("ogbench-data")
    return ensure_play_dataset("cube-single-play-v0", data_dir, 3000, num_workers=1)
