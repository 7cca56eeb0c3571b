"""Shared test setup: tiny networks run fastest on one intra-op thread (and CI has 2 cores).

Under pytest-xdist each worker is its own process: the session dataset is generated once for all of them (a file
lock in their shared temporary root). ``make test`` runs ``--dist loadfile``: a module's tests go to one worker, so a
module-scoped fixture (a trained run, a built wheel) is built once, not once per worker.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cube_single_dataset(tmp_path_factory) -> Path:
    """A small real cube-single play dataset (3 train + 1 val oracle episodes), generated once per session.

    Returns the train ``.npz``; its ``-val.npz`` lies beside it.
    """
    from filelock import FileLock

    from rql_lightning.data.generate import ensure_play_dataset

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the temporary root all workers of this session share
    with FileLock(root / "ogbench-data.lock"):
        return ensure_play_dataset("cube-single-play-v0", root / "ogbench-data", 3000, num_workers=1)


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
