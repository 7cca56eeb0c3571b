"""Shared test setup: tiny networks run fastest on one intra-op thread (and CI has 2 cores).

Under pytest-xdist each worker is its own process: the session dataset is generated once for all of them (a file
lock in their shared temporary root). ``make test`` runs ``--dist loadfile``: a module's tests go to one worker, so a
module-scoped fixture (a trained run, a built wheel) is built once, not once per worker.
"""

from __future__ import annotations

import json
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


# Module order for ``--dist loadfile --no-loadscope-reorder`` (make test): the modules that took longest in a
# recorded run go to the workers first, so no worker is left alone with a minute-long module at the end (xdist's
# own order, by test count, hands out the long few-test modules last). The seconds are per module, summed over
# its tests; ``pytest --record-module-seconds`` rewrites the file from a whole run.
MODULE_SECONDS = Path(__file__).with_name("module_seconds.json")
_UNRECORDED_SECONDS = 5.0  # a module missing from the file (a new one): about a median module


def pytest_addoption(parser):
    parser.addoption(
        "--record-module-seconds",
        action="store_true",
        help=f"write each module's summed test seconds to {MODULE_SECONDS.name} (for the order make test uses)",
    )


def pytest_collection_modifyitems(config, items):
    seconds = json.loads(MODULE_SECONDS.read_text()) if MODULE_SECONDS.is_file() else {}

    def cost(item) -> float:
        return -seconds.get(item.nodeid.split("::")[0], _UNRECORDED_SECONDS)

    items.sort(key=cost)  # stable: a module's tests keep their order


_recorded: dict[str, float] = {}


def pytest_runtest_logreport(report):
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # the controller (or the one process) sees every report
        module = report.nodeid.split("::")[0]
        _recorded[module] = _recorded.get(module, 0.0) + report.duration


def pytest_sessionfinish(session):
    if session.config.getoption("--record-module-seconds") and not os.environ.get("PYTEST_XDIST_WORKER"):
        ordered = dict(sorted(((k, round(v, 1)) for k, v in _recorded.items()), key=lambda kv: -kv[1]))
        MODULE_SECONDS.write_text(json.dumps(ordered, indent=1) + "\n")
