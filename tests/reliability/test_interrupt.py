"""Ctrl-C saves like SIGTERM (issue 25): ``last.ckpt`` at the interrupted step, one line saying how to resume,
exit code 130; a second Ctrl-C during the save leaves the previous checkpoint intact.

docs/errors.md rows 69 (Ctrl-C) and 70 (Ctrl-C twice: stopped without saving).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rql_lightning.checkpointing import AtomicCheckpointIO
from tests.reliability.test_run_lock import lock_overrides, start_training, wait_for
from tests.runs import TRACEBACK, explain, quiet_env, rql_train_here


def saved_step(run_dir: Path) -> int:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]


@pytest.mark.slow
def test_ctrl_c_saves_at_the_interrupted_step_exits_130_and_resume_auto_continues(cube_single_dataset, tmp_path):
    # docs/errors.md row 69
    """Row 69. Ctrl-C as a terminal sends it: SIGINT to the command's whole process group."""
    run_dir = tmp_path / "run"
    proc = start_training(cube_single_dataset, run_dir, tmp_path, start_new_session=True)
    wait_for(lambda: (run_dir / "checkpoints" / "last.ckpt").exists(), proc)  # a periodic one, at step 5
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=240)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert proc.returncode == 130, explain(done)
    assert TRACEBACK not in out + err, explain(done)
    lines = [line for line in err.splitlines() if "interrupted at step" in line]
    assert len(lines) == 1, explain(done)
    step = int(re.search(r"interrupted at step (\d+): saved ", lines[0]).group(1))
    assert step >= 5 and saved_step(run_dir) == step
    assert lines[0].endswith(f"hydra.run.dir={run_dir} resume=auto"), lines[0]
    assert f"data.dataset_path={cube_single_dataset}" in lines[0]  # the run's own overrides, to paste back
    assert not list(run_dir.glob(".rql-lock"))  # released
    # The resume runs in this process: the contract under test (Ctrl-C, exit 130) is the first process's.
    resumed = rql_train_here(lock_overrides(cube_single_dataset, run_dir, step + 3), tmp_path)
    assert resumed.returncode == 0, explain(resumed)
    assert saved_step(run_dir) == step + 3


class SecondCtrlC:
    """Pickled midway through a checkpoint: delivers a real SIGINT to this process, as a second Ctrl-C would."""

    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGINT)
        return (int, (0,))


def test_a_second_ctrl_c_during_the_save_leaves_the_previous_checkpoint_intact(tmp_path):
    """Row 70's premise: the save that a second Ctrl-C abandons changes nothing on disk."""
    # Ctrl-C raises KeyboardInterrupt, as in a command started from a shell, whatever an earlier test in this
    # worker left installed (the autouse fixture restores it afterwards).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 5, "w": torch.ones(1000)}, path)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 9, "w": torch.zeros(1000), "tail": SecondCtrlC()}, path)
    assert torch.load(path, weights_only=True)["global_step"] == 5
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_ctrl_c_before_training_is_one_line_and_exit_130(tmp_path):
    # docs/errors.md row 70
    """Row 70: a Ctrl-C outside the save path (here while the command starts) is one line, no traceback."""
    code = (
        "import os, signal\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)  # as a shell starts a command\n"
        "from rql_lightning.cli.common import user_errors_as_one_line\n"
        "user_errors_as_one_line(lambda: os.kill(os.getpid(), signal.SIGINT))\n"
    )
    python = sys.executable
    done = subprocess.run([python, "-c", code], env=quiet_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 130, explain(done)
    assert done.stderr.startswith("interrupted: stopped without saving this step;") and TRACEBACK not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
