"""One writer per run directory (issue 23): a live holder refuses a second writer, a dead one's lock is taken over.

docs/errors.md rows 66 (a second writer refused) and 67 (a stale lock taken over, a warning).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rql_lightning.run_lock import LOCK_NAME, RunDirBusy, RunLock, hold_run_dir
from tests.runs import RQL_TRAIN, TINY, TINY_NO_EVAL, TRACEBACK, explain, quiet_env


def wait_for(condition, proc: subprocess.Popen | None = None, timeout: float = 240) -> None:
    """Poll ``condition`` (never a fixed sleep); a process that ends first fails the test with its output."""
    deadline = time.time() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(explain(subprocess.CompletedProcess(proc.args, proc.returncode, *proc.communicate())))
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


def write_lock(run_dir: Path, **fields) -> None:
    now = time.time()
    record = {"pid": 1, "host": socket.gethostname(), "started": now, "heartbeat": now, "token": "theirs"}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / LOCK_NAME).write_text(json.dumps({**record, **fields}))


def a_dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def lock_overrides(dataset: Path, run_dir: Path, steps: int) -> list[str]:
    return [
        f"data.dataset_path={dataset}",
        f"hydra.run.dir={run_dir}",
        *TINY_NO_EVAL,
        "~callbacks.evaluation",
        f"trainer.max_steps={steps}",
        "callbacks.checkpoint.every_n_train_steps=5",
        "resume=auto",
    ]


def start_training(dataset: Path, run_dir: Path, cwd: Path, **popen: object) -> subprocess.Popen:
    """A real rql-train that trains until stopped (checkpoints every 5 steps), its output piped."""
    return subprocess.Popen(
        [RQL_TRAIN, *lock_overrides(dataset, run_dir, 1_000_000)],
        cwd=cwd,
        env=quiet_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


@pytest.mark.slow
def test_second_writer_is_refused_and_a_killed_holders_lock_is_taken_over(cube_single_dataset, tmp_path, caplog):
    # docs/errors.md rows 66 and 67
    """Row 66 with real rql-train processes; then the holder is SIGKILLed and its lock taken over (row 67)."""
    run_dir = tmp_path / "run"
    first = start_training(cube_single_dataset, run_dir, tmp_path)
    try:
        wait_for(lambda: (run_dir / "checkpoints" / "last.ckpt").exists(), first)
        second = subprocess.run(
            [RQL_TRAIN, *lock_overrides(cube_single_dataset, run_dir, 10)],
            cwd=tmp_path,
            env=quiet_env(),
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert second.returncode == 2, explain(second)
        assert TRACEBACK not in second.stderr
        error = [line for line in second.stderr.splitlines() if line.startswith("error:")]
        assert len(error) == 1, explain(second)
        assert f"the run directory {run_dir} is in use by pid {first.pid} on host {socket.gethostname()}" in error[0]
        assert "hydra.run.dir=" in error[0]
        assert first.poll() is None  # the holder trains on
    finally:
        first.kill()  # SIGKILL: no chance to remove its lock
        first.communicate()
    holder = json.loads((run_dir / LOCK_NAME).read_text())
    assert holder["pid"] == first.pid
    with caplog.at_level(logging.WARNING, logger="rql_lightning"), hold_run_dir(run_dir):
        assert json.loads((run_dir / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"names pid {first.pid} on this host, which is no longer running" in caplog.text
    assert not (run_dir / LOCK_NAME).exists()  # released at the end of the block


def test_a_lock_naming_a_dead_pid_is_taken_over_with_one_warning(tmp_path, caplog):
    # docs/errors.md row 67
    pid = a_dead_pid()
    write_lock(tmp_path, pid=pid)
    with caplog.at_level(logging.WARNING, logger="rql_lightning"):
        lock = RunLock(tmp_path)
        lock.acquire()
    lock.release()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"taking over the run directory {tmp_path}: its lock names pid {pid} on this host, which is no longer running"
    ]


def test_a_reused_pid_does_not_keep_a_lock(tmp_path):
    """The pid runs, but it is another process than the one that took the lock (its start time differs)."""
    write_lock(tmp_path, pid=os.getpid(), pid_start="1")
    lock = RunLock(tmp_path)
    lock.acquire()
    lock.release()


@pytest.mark.slow
def test_a_live_holder_on_this_host_refuses_and_nothing_is_written(cube_single_dataset, tmp_path):
    # docs/errors.md row 66
    """Row 66: train() stops before any file of the run (checkpoints, summary.json, logs) exists."""
    from rql_lightning.config import compose_config
    from rql_lightning.training import train

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        write_lock(tmp_path, pid=holder.pid)
        cfg = compose_config([f"data.dataset_path={cube_single_dataset}", f"paths.output_dir={tmp_path}", *TINY])
        with pytest.raises(RunDirBusy, match=rf"is in use by pid {holder.pid} on host .*\(heartbeat \d+ s ago\)"):
            train(cfg)
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]


def test_another_hosts_lock_holds_until_its_heartbeat_is_older_than_the_set_age(tmp_path, caplog):
    write_lock(tmp_path, host="node-elsewhere", pid=4242, heartbeat=time.time() - 100)
    with pytest.raises(RunDirBusy, match=r"pid 4242 on host node-elsewhere .*heartbeat 100 s ago.*stale_after_s=300"):
        RunLock(tmp_path, stale_after_s=300).acquire()
    with caplog.at_level(logging.WARNING, logger="rql_lightning"):
        lock = RunLock(tmp_path, stale_after_s=60)
        lock.acquire()
    assert "heartbeat is 100 s old (> run_lock.stale_after_s=60)" in caplog.text
    lock.release()


def test_the_holder_refreshes_its_heartbeat_and_removes_its_lock(tmp_path):
    lock = RunLock(tmp_path, heartbeat_s=0.05)
    lock.acquire()
    first = json.loads((tmp_path / LOCK_NAME).read_text())
    assert (first["pid"], first["host"]) == (os.getpid(), socket.gethostname())
    wait_for(lambda: json.loads((tmp_path / LOCK_NAME).read_text())["heartbeat"] > first["heartbeat"], timeout=10)
    lock.release()
    assert list(tmp_path.iterdir()) == []


def test_other_ranks_of_a_ddp_run_take_no_lock(tmp_path, monkeypatch):
    write_lock(tmp_path, pid=os.getpid(), pid_start=None)  # rank 0 (this process) holds it
    monkeypatch.setenv("LOCAL_RANK", "1")
    with hold_run_dir(tmp_path) as lock:
        assert lock is None
    assert json.loads((tmp_path / LOCK_NAME).read_text())["token"] == "theirs"


def test_a_lock_released_on_an_exception(tmp_path):
    with pytest.raises(ZeroDivisionError), hold_run_dir(tmp_path):
        assert (tmp_path / LOCK_NAME).exists()
        1 / 0  # noqa: B018
    assert not (tmp_path / LOCK_NAME).exists()


def test_sigterm_of_the_holder_releases_its_lock(tmp_path):
    """A holder stopped by SIGTERM (Lightning turns it into an exception; here Python's default raises one)."""
    code = (
        "import signal, sys, time\n"
        "from rql_lightning.run_lock import hold_run_dir\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        f"with hold_run_dir({str(tmp_path)!r}):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=quiet_env())
    assert proc.stdout.readline() == "held\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert not (tmp_path / LOCK_NAME).exists()
