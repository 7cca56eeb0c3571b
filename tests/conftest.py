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


@pytest.fixture(autouse=True)
def _signal_handlers_restored():
    """Each test starts with the handlers the one before found. Lightning sets SIGINT to SIG_IGN when a fit in this
    process ends in KeyboardInterrupt (and SIG_DFL after a DDP teardown), which would leak into later tests and into
    the processes they start (an ignored signal is inherited)."""
    import signal

    names = [signal.SIGINT, signal.SIGTERM, signal.SIGUSR1]
    saved = {s: signal.getsignal(s) for s in names}
    yield
    for s, handler in saved.items():
        if handler is not None and signal.getsignal(s) is not handler:
            signal.signal(s, handler)
