"""SIGTERM in the online phase: a checkpoint that holds the online transitions collected so far, a clean exit, and
``resume=auto`` that continues the online phase from them. The run signals this process itself, a few updates into
the online phase (what a real process's exit code and streams are under SIGTERM: tests/callbacks/test_reliability.py).
"""

from __future__ import annotations

import signal

import numpy as np
import pytest
import torch

from tests.callbacks.test_reliability import last_step, preemptible_run
from tests.online.test_online_run import online_rows
from tests.runs import explain, rql_train_here

OFFLINE = 5


@pytest.mark.slow
def test_sigterm_mid_online_keeps_the_transitions_and_resume_auto_continues(cube_single_dataset, tmp_path):
    run_dir = tmp_path / "run"
    common = [*preemptible_run(cube_single_dataset, run_dir), f"trainer.max_steps={OFFLINE}"]
    # Offline is 5 updates; signalled after update 8, the run is inside the online phase.
    sigterm = [
        "+callbacks.sigterm._target_=tests.callbacks.test_reliability.SignalAt",
        f"+callbacks.sigterm.step={OFFLINE + 3}",
        f"+callbacks.sigterm.signum={int(signal.SIGTERM)}",
    ]
    stopped = rql_train_here([*common, "online.steps=1000000", *sigterm], tmp_path)
    log = stopped.stdout + stopped.stderr
    assert stopped.returncode == 0 and "preempted at step" in log, explain(stopped)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=False)["online"]
    collected = state["env_steps"]
    # utd=1: one update per env step; the env process acts a chunk at a time, so it may lead by part of one.
    assert collected > 0 and OFFLINE < last_step(run_dir) <= OFFLINE + collected, log
    kept = online_rows(ckpt)
    assert len(kept["observations"]) == collected

    more = 20
    done = rql_train_here([*common, f"online.steps={collected + more}"], tmp_path)
    assert done.returncode == 0, explain(done)
    assert last_step(run_dir) == OFFLINE + collected + more
    rows = online_rows(ckpt)
    assert len(rows["observations"]) == collected + more
    for name in ("observations", "actions", "rewards", "masks"):
        assert np.array_equal(rows[name][:collected], kept[name]), name
    assert rows["terminals"][collected - 1] == 1  # the episode in progress at the signal ends there
