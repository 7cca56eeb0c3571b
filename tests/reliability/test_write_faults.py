"""Faults of the machine while writing are one line and lose nothing (issue 25): the path, the OS error and the
last good checkpoint; exit code 2; the previous file intact, no partial file left. Every writer (checkpoints,
summary.json, TensorBoard event files, online transitions, generated data) goes through file_writes.py.

A file size limit (``RLIMIT_FSIZE``; Python ignores SIGXFSZ, so a write past it fails with EFBIG) is set in this
process around the command or the write under test, and lifted after; a directory removed mid-run is removed by a
callback of the run, in this process too; a directory made read-only is a real ``rql-train`` process.

docs/errors.md rows 68 and 75-78.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch

from rql_lightning.checkpointing import AtomicCheckpointIO
from rql_lightning.cli.common import user_errors_as_one_line
from rql_lightning.file_writes import WriteRefusedError
from tests.reliability.test_run_lock import lock_overrides
from tests.runs import RQL_TRAIN, TRACEBACK, explain, quiet_env, rql_train_here


def _chmod_bites() -> bool:
    """Whether a directory without write permission refuses this user (root with CAP_DAC_OVERRIDE writes anyway)."""
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o500)
        try:
            Path(d, "probe").touch()
        except PermissionError:
            return True
        finally:
            os.chmod(d, 0o700)
    return False


CHMOD_BITES = _chmod_bites()


@contextlib.contextmanager
def file_size_limit(size: int):
    """No file this process writes may grow past ``size`` bytes meanwhile; lifted again after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def refused_here(limit: int, write, capfd) -> subprocess.CompletedProcess:
    """``write()`` run in this process as a command runs it (a user error: one line, exit code 2) under a file
    size limit: its exit code and output, as a process's."""
    capfd.readouterr()  # the capture file starts empty, far below the limit
    with file_size_limit(limit), pytest.raises(SystemExit) as exit_:
        user_errors_as_one_line(write)
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(["in-process"], exit_.value.code, out, err)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The command's only ``error:`` line, after checking exit code 2 and no traceback."""
    assert done.returncode == 2, explain(done)
    assert TRACEBACK not in done.stdout + done.stderr, explain(done)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, explain(done)
    return errors[0].removeprefix("error: ")


def a_checkpoint(path: Path, step: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": step}, path)
    return path


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
    first = rql_train_here(lock_overrides(cube_single_dataset, run_dir, 10), tmp_path)
    assert first.returncode == 0, explain(first)
    last = run_dir / "checkpoints" / "last.ckpt"
    size, before = last.stat().st_size, last.read_bytes()
    limit = size // 2  # above every other file the run writes (config, logs, summary.json, events)

    with file_size_limit(limit):
        second = rql_train_here(lock_overrides(cube_single_dataset, run_dir, 20), tmp_path)
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
    with pytest.raises(WriteRefusedError) as err:
        io.save_checkpoint({"global_step": 10, "tail": Vanish(path.parent)}, path)
    assert str(err.value) == (
        f"could not write the checkpoint {path} ([Errno 2] No such file or directory); the last good checkpoint is "
        f"{good} (step 5); restore {path.parent}, which vanished during the write, then resume with resume=auto"
    )
    assert saved_step(good) == 5


@pytest.mark.skipif(not CHMOD_BITES, reason="this user writes through file permissions (root)")
def test_a_directory_made_read_only_is_named_with_the_os_error(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 5}, path)
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(WriteRefusedError, match=r"\[Errno 13\] Permission denied\); the last good checkpoint"):
            io.save_checkpoint({"global_step": 10}, path)
    finally:
        tmp_path.chmod(0o700)
    assert saved_step(path) == 5


def test_the_last_good_checkpoint_is_the_newest_that_loads(tmp_path):
    """A truncated file (copied by hand, or left by a tool that does not write atomically) is never named."""
    from rql_lightning.checkpointing import last_good_checkpoint

    for name, step in (("step0000005.ckpt", 5), ("step0000010.ckpt", 10), ("last.ckpt", 10)):
        a_checkpoint(tmp_path / name, step)
    whole = a_checkpoint(tmp_path / "step0000015.ckpt", 15).read_bytes()
    (tmp_path / "step0000015.ckpt").write_bytes(whole[: len(whole) // 2])
    assert last_good_checkpoint(tmp_path) == (tmp_path / "last.ckpt", 10)
    assert last_good_checkpoint(tmp_path / "missing") is None


def test_a_file_size_limit_during_a_summary_write_keeps_the_previous_summary(tmp_path, capfd):
    # docs/errors.md row 75
    """Row 75: summary.json (here padded past the limit by its config) refused."""
    from rql_lightning.callbacks.summary import RunSummaryCallback

    run = tmp_path / "run"
    last = a_checkpoint(run / "checkpoints" / "last.ckpt", 10)
    (run / "summary.json").write_text('{"status": "running"}\n')
    callback = RunSummaryCallback(run, task="cube-single", seed=0, config={"pad": "x" * 8000})
    trainer = SimpleNamespace(
        is_global_zero=True,
        global_step=12,
        callback_metrics={},
        datamodule=None,
        checkpoint_callback=None,
        default_root_dir=str(run),
    )
    line = one_error_line(refused_here(4096, lambda: callback.write(trainer, torch.nn.Linear(1, 1), "running"), capfd))
    assert line == (
        f"could not write the run summary {run / 'summary.json'} ([Errno 27] File too large); the last good "
        f"checkpoint is {last} (step 10); raise the file size limit (ulimit -f), then resume with resume=auto"
    )
    assert (run / "summary.json").read_text() == '{"status": "running"}\n'
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "summary.json"]  # no temporary file left


def test_a_file_size_limit_during_an_event_file_write_is_one_line(tmp_path, capfd):
    # docs/errors.md row 76
    """Row 76: TensorBoard's writer thread fails past the limit; the logger's next call says so, once."""
    from rql_lightning.tensorboard_logger import RunTensorBoardLogger

    run = tmp_path / "run"
    last = a_checkpoint(run / "checkpoints" / "last.ckpt", 10)
    logger = RunTensorBoardLogger(str(run), name="tensorboard", version="", checkpoint_dir=str(last.parent))

    def log() -> None:
        try:
            for step in range(1000):
                logger.log_metrics({"train/critic_loss": 1.0, "train/actor_loss": 2.0}, step)
                logger.save()
        finally:
            logger.finalize("failed")

    done = refused_here(4096, log, capfd)
    (event_file,) = (run / "tensorboard").glob("events.out.tfevents.*")
    assert one_error_line(done) == (
        f"could not write the TensorBoard event file {event_file} ([Errno 27] File too large); the last good "
        f"checkpoint is {last} (step 10); raise the file size limit (ulimit -f), then resume with resume=auto"
    )
    assert done.stderr.count("\n") == 1, explain(done)  # the writer thread's death printed nothing


def test_a_file_size_limit_during_an_online_segment_write_is_one_line(tmp_path, capfd):
    # docs/errors.md row 77
    """Row 77: the segment the next checkpoint would list is refused; nothing of it is left beside the checkpoints."""
    from rql_lightning.online.phase import write_segment

    online = tmp_path / "checkpoints" / "online"
    last = a_checkpoint(tmp_path / "checkpoints" / "last.ckpt", 40)
    rows = {"observations": np.random.default_rng(0).normal(size=(1000, 28)).astype(np.float32)}
    line = one_error_line(refused_here(4096, lambda: write_segment(online, 0, rows), capfd))
    assert re.fullmatch(
        re.escape(f"could not write the online transitions {online}/rows0000000000-0000001000-")
        + r"[0-9a-f]{16}\.npz"
        + re.escape(
            f" ([Errno 27] File too large); the last good checkpoint is {last} (step 40); raise the file size limit "
            "(ulimit -f), then resume with resume=auto"
        ),
        line,
    ), line
    assert list(online.iterdir()) == []


@pytest.mark.slow
def test_a_file_size_limit_during_data_generation_leaves_no_partial_file(tmp_path, capfd):
    # docs/errors.md row 78
    """Row 78: ``rql-data generate`` under a file size limit; the -val file, written first, is refused."""
    from rql_lightning.cli.data import main as rql_data

    args = ["generate", "cube-single-play-v0", "--num-transitions", "10", "--data-dir", str(tmp_path), "--no-progress"]
    done = refused_here(4096, lambda: rql_data(args), capfd)
    val = tmp_path / "cube-single-play-v0-val.npz"
    assert one_error_line(done) == (
        f"could not write the generated data file {val} ([Errno 27] File too large); the files finished before it "
        "are complete (shards are kept by the next run); raise the file size limit (ulimit -f), then run the same "
        "command again"
    )
    assert list(tmp_path.iterdir()) == []  # neither file, nor a temporary one


def test_a_file_size_limit_during_an_export_leaves_no_partial_file(tmp_path, capfd):
    # docs/errors.md row 82
    from rql_lightning.modules import seed_export

    batched = a_checkpoint(tmp_path / "run" / "last.ckpt", 5)
    torch.save(
        {"hyper_parameters": {"seeds": [4, 7]}, "state_dict": {"w": torch.zeros(2, 4096)}, "global_step": 5}, batched
    )
    out = tmp_path / "exported" / "seed7.ckpt"
    capfd.readouterr()
    with file_size_limit(4096), pytest.raises(SystemExit) as exit_:
        seed_export.main([str(batched), "7", str(out)])
    done = subprocess.CompletedProcess(["in-process"], exit_.value.code, *capfd.readouterr())
    assert one_error_line(done) == (
        f"could not write the export {out} ([Errno 27] File too large); {batched} is unchanged; raise the file size "
        "limit (ulimit -f), then run the export again"
    )
    assert list(out.parent.iterdir()) == []  # neither the export, nor a temporary file


@pytest.mark.slow
@pytest.mark.skipif(not CHMOD_BITES, reason="this user writes through file permissions (root)")
def test_a_replica_directory_made_read_only_stops_the_run_in_one_line(cube_single_dataset, tmp_path):
    # docs/errors.md row 75
    """Row 75 in a real rql-train: seed 1's summary.json directory is made read-only between a run and its resume."""
    run_dir = tmp_path / "run"
    overrides = lock_overrides(cube_single_dataset, run_dir, 10)
    first = subprocess.run(
        [RQL_TRAIN, *overrides, "seeds=[0,1]"], cwd=tmp_path, env=quiet_env(), capture_output=True, text=True
    )
    assert first.returncode == 0, explain(first)
    last = run_dir / "checkpoints" / "last.ckpt"
    before = (run_dir / "seed1" / "summary.json").read_text()
    (run_dir / "seed1").chmod(0o500)
    try:
        second = subprocess.run(
            [RQL_TRAIN, *lock_overrides(cube_single_dataset, run_dir, 20), "seeds=[0,1]"],
            cwd=tmp_path,
            env=quiet_env(),
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        (run_dir / "seed1").chmod(0o700)
    assert one_error_line(second) == (
        f"could not write the run summary {run_dir / 'seed1' / 'summary.json'} ([Errno 13] Permission denied); the "
        f"last good checkpoint is {last} (step 10); make {run_dir / 'seed1'} writable again, then resume with "
        "resume=auto"
    )
    assert (run_dir / "seed1" / "summary.json").read_text() == before and saved_step(last) == 10
    assert sorted(p.name for p in (run_dir / "seed1").iterdir()) == ["summary.json"]


class RemoveDirectory(L.Callback):
    """Removes ``directory`` (which must hold something) once, after the update ``at_step``."""

    def __init__(self, directory: str, at_step: int) -> None:
        self.directory, self.at_step = Path(directory), at_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.at_step:
            assert any(self.directory.iterdir())  # what the run wrote there before
            shutil.rmtree(self.directory)


@pytest.mark.slow
def test_an_event_directory_removed_mid_run_stops_the_run_in_one_line(cube_single_dataset, tmp_path):
    # docs/errors.md row 76
    """Row 76: the TensorBoard directory is removed while the run trains (after its step-5 checkpoint)."""
    run_dir = tmp_path / "run"
    events = run_dir / "tensorboard"
    remove = [
        "+callbacks.remove._target_=tests.reliability.test_write_faults.RemoveDirectory",
        f"+callbacks.remove.directory={events}",
        "+callbacks.remove.at_step=6",
    ]
    done = rql_train_here([*lock_overrides(cube_single_dataset, run_dir, 30), *remove], tmp_path)
    line = one_error_line(done)
    found = re.fullmatch(
        re.escape(f"could not write the TensorBoard event file {events}/events.out.tfevents.")
        + r"\S+"
        + re.escape(" ([Errno 2] No such file or directory); the last good checkpoint is ")
        + r"(\S+) \(step (\d+)\)"
        + re.escape(f"; restore {events}, which vanished during the write, then resume with resume=auto"),
        line,
    )
    assert found, line
    good, step = Path(found.group(1)), int(found.group(2))
    assert good.parent == run_dir / "checkpoints" and step >= 5 and saved_step(good) == step


@pytest.mark.slow
def test_online_segments_that_vanish_between_checkpoints_are_written_again(cube_single_dataset, tmp_path):
    """Row 77's note: no checkpoint lists a segment that is gone; the next one holds every online row."""
    from rql_lightning.config import compose_config
    from rql_lightning.training import train
    from tests.online.test_online_run import online_rows

    online = tmp_path / "checkpoints" / "online"
    overrides = [
        *(o for o in lock_overrides(cube_single_dataset, tmp_path, 5) if not o.startswith("hydra.run.dir")),
        f"paths.output_dir={tmp_path}",
        "online.steps=20",
        "+callbacks.vanish._target_=tests.reliability.test_write_faults.RemoveDirectory",
        f"+callbacks.vanish.directory={online}",
        "+callbacks.vanish.at_step=12",  # after the checkpoint at step 10, 5 updates into the online phase
    ]
    assert train(compose_config(overrides))["step"] == 25
    last = tmp_path / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=False)["online"]
    assert all((online / name).is_file() for name in state["segments"])
    assert len(online_rows(last)["observations"]) == state["env_steps"] == 20
