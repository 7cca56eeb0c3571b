"""Faults of the machine during a checkpoint write are one line and lose nothing (issue 25): the path, the OS
error and the last good checkpoint; exit code 2; the previous checkpoint intact, no partial file left.

docs/errors.md row 68.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from rql_lightning.checkpointing import AtomicCheckpointIO, CheckpointWriteError
from tests.reliability.test_run_lock import lock_overrides
from tests.runs import RQL_TRAIN, TRACEBACK, explain, quiet_env


def saved_step(path: Path) -> int:
    return torch.load(path, weights_only=True)["global_step"]


@pytest.mark.slow
def test_a_file_size_limit_during_a_checkpoint_write_is_one_line_and_keeps_the_last_good_one(
    cube_single_dataset, tmp_path
):
    # docs/errors.md row 68
    """Row 68: the resumed run's first checkpoint exceeds the file size limit (RLIMIT_FSIZE; Python ignores
    SIGXFSZ, so the write fails with EFBIG) and torch's serializer reports only 'unexpected pos'."""
    run_dir = tmp_path / "run"
    first = subprocess.run(
        [RQL_TRAIN, *lock_overrides(cube_single_dataset, run_dir, 10)],
        cwd=tmp_path,
        env=quiet_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert first.returncode == 0, explain(first)
    last = run_dir / "checkpoints" / "last.ckpt"
    size, before = last.stat().st_size, last.read_bytes()
    limit = size // 2  # above every other file the run writes (config, logs, summary.json, events)

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    second = subprocess.run(
        [RQL_TRAIN, *lock_overrides(cube_single_dataset, run_dir, 20)],
        cwd=tmp_path,
        env=quiet_env(),
        capture_output=True,
        text=True,
        timeout=240,
        preexec_fn=limit_file_size,
    )
    assert second.returncode == 2, explain(second)
    assert TRACEBACK not in second.stdout + second.stderr, explain(second)
    errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: could not write the checkpoint {run_dir / 'checkpoints' / 'step0000015.ckpt'} ([Errno 27] File too "
        f"large); the last good checkpoint is {last} (step 10); raise the file size limit (ulimit -f), then resume "
        "with resume=auto"
    ], explain(second)
    assert last.read_bytes() == before and saved_step(last) == 10
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt", "step0000005.ckpt", "step0000010.ckpt"]


class Vanish:
    """Pickled midway through a checkpoint: removes the directory being written to."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __reduce__(self):
        shutil.rmtree(self.directory)
        return (int, (0,))


def test_a_directory_that_vanishes_mid_write_is_named_with_the_os_error(tmp_path):
    # docs/errors.md row 68
    io = AtomicCheckpointIO()
    good, path = tmp_path / "keep" / "last.ckpt", tmp_path / "gone" / "step0000010.ckpt"
    io.save_checkpoint({"global_step": 5}, good)
    with pytest.raises(CheckpointWriteError) as err:
        io.save_checkpoint({"global_step": 10, "tail": Vanish(path.parent)}, path)
    assert str(err.value) == (
        f"could not write the checkpoint {path} ([Errno 2] No such file or directory); the last good checkpoint is "
        f"{good} (step 5); restore {path.parent}, which vanished during the write, then resume with resume=auto"
    )
    assert saved_step(good) == 5


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_a_directory_made_read_only_is_named_with_the_os_error(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 5}, path)
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(CheckpointWriteError, match=r"\[Errno 13\] Permission denied\); the last good checkpoint"):
            io.save_checkpoint({"global_step": 10}, path)
    finally:
        tmp_path.chmod(0o700)
    assert saved_step(path) == 5
