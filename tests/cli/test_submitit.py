"""The cluster workflow on Hydra's real submitit launcher: each job a fixed run directory (a fixed
``hydra.sweep.dir``, the job number as subdir) and ``resume=auto``, so a signalled job saves and the same
command, run again, continues it. Run with submitit's local executor (real submitit jobs, real processes)."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from rql_lightning.config import CONF_DIR
from tests.runs import RQL_TRAIN, TINY, explain, quiet_env, scalars

pytestmark = pytest.mark.slow
STEPS = 300


def wait_for(predicate, what: str, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def controller_pid(sweep: Path, job_num: int) -> int:
    """The submitit job id (the local controller's pid, which forwards SIGTERM to its task) of job ``job_num``,
    from the submission pickles submitit keeps in ``<sweep>/.submitit/<job id>/``."""
    for pkl in (sweep / ".submitit").glob("*/*_submitted.pkl"):
        with pkl.open("rb") as f:
            if pickle.load(f).args[2] == job_num:  # the launcher's (overrides, dir key, job num, ...)
                return int(pkl.parent.name)
    raise AssertionError(f"no submission of job {job_num} under {sweep}/.submitit")


def exited(pid: int) -> bool:
    """Whether process ``pid`` (not ours to reap) has ended: gone, or a zombie (Linux ``/proc``)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_signalled_job_saves_and_the_same_multirun_continues_it(cube_single_dataset, tmp_path):
    sweep = tmp_path / "sweep"
    command = [
        RQL_TRAIN,
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=20",
        f"hydra.sweep.dir={sweep}",
        "seed=0,1",
        f"data.dataset_path={cube_single_dataset}",
        *TINY,
        "eval.episodes=1",
        f"trainer.max_steps={STEPS}",
        "callbacks.checkpoint.every_n_train_steps=20",
        "resume=auto",
    ]
    first = subprocess.Popen(command, cwd=tmp_path, env=quiet_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    job0 = sweep / "0"
    wait_for(lambda: list((job0 / "checkpoints").glob("step*.ckpt")), "job 0's first checkpoint")
    controller = controller_pid(sweep, 0)
    os.kill(controller, signal.SIGTERM)  # submitit's local controller forwards it to the job
    # Both jobs are over once job 0's controller has exited (after its job) and job 1 has left its result. The
    # launcher then waits 15 s (submitit's results timeout) for a result job 0, stopped by a signal, never writes:
    # nothing here is about that wait, so the test ends the launcher instead of sitting it out.
    job1 = controller_pid(sweep, 1)
    result1 = sweep / ".submitit" / str(job1) / f"{job1}_0_result.pkl"
    wait_for(lambda: exited(controller) and result1.is_file(), "both jobs' ends")
    first.terminate()
    out, _ = first.communicate(timeout=300)
    saved = torch.load(job0 / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    assert 0 < saved < STEPS, out.decode()[-3000:]
    assert "preempted at step" in "".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_log.*"))
    done = torch.load(sweep / "1" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert done["global_step"] == STEPS  # the other job ran to its end

    again = subprocess.run(command, cwd=tmp_path, env=quiet_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, explain(again)
    for job in ("0", "1"):
        ckpt = torch.load(sweep / job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        assert ckpt["global_step"] == STEPS
    # job 0 continued from its saved step: its second event file starts there (within two log intervals), not at 0
    newest = max((job0 / "tensorboard").rglob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    steps = sorted({s for tag, series in scalars(newest).items() if tag.startswith("train/") for s, _ in series})
    assert saved <= steps[0] <= saved + 10 and steps[-1] == STEPS - 1, (saved, steps)
    logs = "".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_log.*"))
    assert logs.count("Restoring states from the checkpoint path at") >= 2, logs[-3000:]


def test_the_slurm_launcher_composes():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.max_num_timeout > 0 and launcher.gpus_per_node == 1
