"""``rql-train`` end to end on real components: Hydra composition, training, TensorBoard, checkpoints,
resume, multirun, and one-line errors. The command line runs in this process (``rql_train_here``) where it is
under test, and ``train(compose_config(...))`` where it is not; the console script's own exit codes are
tests/cli/test_exit_codes.py's."""

from __future__ import annotations

import contextlib
import re
import subprocess

import pytest
import torch
from omegaconf import OmegaConf

from rql_lightning import checks, training
from rql_lightning.cli import train as cli_train
from rql_lightning.config import compose_config
from rql_lightning.training import train
from tests.runs import TINY, TINY_NO_EVAL, TRACEBACK, explain, rql_train_here, scalars


@contextlib.contextmanager
def machine_checks():
    """The seed of each config rql-train hands to :func:`~rql_lightning.checks.check_machine`, in call order."""
    seeds, real = [], checks.check_machine

    def counted(cfg):
        seeds.append(cfg.seed)
        return real(cfg)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli_train, "check_machine", counted)
        patch.setattr(training, "check_machine", counted)
        yield seeds


@pytest.fixture(scope="module")
def train_run(cube_single_dataset, tmp_path_factory):
    """One 20-step ``rql-train`` run through Hydra; returns (run dir, finished process)."""
    root = tmp_path_factory.mktemp("train")
    run_dir = root / "run"
    args = ["trainer.max_steps=20", f"data.dataset_path={cube_single_dataset}", *TINY, f"hydra.run.dir={run_dir}"]
    with machine_checks() as seeds:
        proc = rql_train_here(args, cwd=root)
    assert seeds == [0], "a single run checks its machine once, before Hydra starts"
    return run_dir, proc


@pytest.mark.slow
def test_rql_train_runs_through_hydra(train_run):
    run_dir, proc = train_run
    assert proc.returncode == 0, explain(proc)
    assert TRACEBACK not in proc.stderr
    assert (run_dir / ".hydra" / "config.yaml").is_file()

    events = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert events, f"no TensorBoard event file under {run_dir}"
    series = scalars(run_dir / "tensorboard")
    assert series.get("train/critic_loss"), sorted(series)
    assert all(torch.isfinite(torch.tensor(v)) for _, v in series["train/critic_loss"])
    assert [step for step, _ in series["eval/success_rate"]] == [20]

    ckpt_dir = run_dir / "checkpoints"
    # Lightning resumes with torch.load(weights_only=True): the checkpoint must hold only plain types.
    last = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 20
    assert {p.name for p in ckpt_dir.glob("step*.ckpt")} == {"step0000010.ckpt", "step0000020.ckpt"}

    assert "at step 20" in proc.stdout
    match = re.search(r"success rate: ([0-9.]+)", proc.stdout)
    assert match, explain(proc)
    assert 0.0 <= float(match.group(1)) <= 1.0


@pytest.mark.slow
def test_resume_continues_from_checkpoint(train_run, cube_single_dataset, tmp_path):
    run_dir, proc = train_run
    assert proc.returncode == 0, explain(proc)
    cfg = compose_config(
        [
            f"data.dataset_path={cube_single_dataset}",
            *TINY,
            "trainer.max_steps=30",
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
            f"paths.output_dir={tmp_path}",
        ]
    )
    summary = train(cfg)
    assert summary["step"] == 30
    assert 0.0 <= summary["success_rate"] <= 1.0

    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 30
    logged = [step for step, _ in scalars(tmp_path / "tensorboard")["train/critic_loss"]]
    assert logged and min(logged) > 20, f"resumed run logged steps {logged}: it restarted instead of resuming"


def test_compose_config_interpolates_task_settings():
    cfg = compose_config(["task=cube-single", "task.id=2", "paths.output_dir=/tmp/x"])
    assert cfg.task.singletask_name == "cube-single-play-singletask-task2-v0"
    assert cfg.data.singletask_name == "cube-single-play-singletask-task2-v0"
    assert cfg.callbacks.evaluation.env_name is None  # the datamodule names it: cube-single-singletask-task2-v0
    keys = ["alpha", "expectile", "rho", "discount", "chunk_size"]
    for key in keys:
        assert OmegaConf.is_interpolation(cfg.model, key), key
        assert cfg.model[key] == cfg.task[key], key
    assert cfg.data.chunk_size == cfg.task.chunk_size

    # Changing the task's numbers moves the model's with them...
    moved = compose_config(
        ["task.alpha=7", "task.expectile=0.8", "task.rho=0.25", "task.discount=0.995", "task.chunk_size=3"]
        + ["paths.output_dir=/tmp/x"]
    )
    assert [moved.model[k] for k in keys] == [7, 0.8, 0.25, 0.995, 3]
    assert moved.data.chunk_size == 3


# ----------------------------------------------------------------------------------------- errors

ERROR_CASES = {
    "unknown_task": ["task=no-such-task"],
    "missing_dataset": ["data.dataset_path=/nonexistent.npz"],
    "missing_checkpoint": ["ckpt_path=/nonexistent.ckpt"],
    "unknown_key": ["model.not_a_key=1"],
}


@pytest.fixture(scope="module")
def error_runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Each bad command line, run in this process."""
    root = tmp_path_factory.mktemp("errors")
    return {
        name: rql_train_here([*args, f"hydra.run.dir={root / name}"], cwd=root) for name, args in ERROR_CASES.items()
    }


def _assert_usage_error(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 2, explain(proc)
    assert TRACEBACK not in proc.stderr and TRACEBACK not in proc.stdout, explain(proc)


def test_unknown_task_names_the_options(error_runs):
    # docs/errors.md row 57
    proc = error_runs["unknown_task"]
    _assert_usage_error(proc)
    assert "Could not find 'task/" in proc.stderr and "'task/no-such-task'" in proc.stderr
    assert "Available options in 'task'" in proc.stderr and "cube-single" in proc.stderr


def test_missing_dataset_is_one_line(error_runs):
    proc = error_runs["missing_dataset"]
    _assert_usage_error(proc)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, explain(proc)
    assert "/nonexistent.npz" in errors[0] and "rql-data generate cube-single-play-v0" in errors[0]


def test_missing_checkpoint_is_one_line(error_runs):
    # docs/errors.md row 34
    proc = error_runs["missing_checkpoint"]
    _assert_usage_error(proc)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, explain(proc)
    assert "ckpt_path=/nonexistent.ckpt does not exist; point it at a .ckpt (e.g. " in errors[0]


def test_unknown_key_is_reported(error_runs):
    # docs/errors.md row 58
    proc = error_runs["unknown_key"]
    _assert_usage_error(proc)
    assert "Could not override 'model.not_a_key'" in proc.stderr
    assert "Key 'not_a_key' is not in struct" in proc.stderr


# --------------------------------------------------------------------------------------- multirun


@pytest.mark.slow
def test_multirun_sweep(cube_single_dataset, tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = [
        "-m",
        "task.alpha=0.3,1",
        "trainer.max_steps=3",
        f"data.dataset_path={cube_single_dataset}",
        *TINY_NO_EVAL,
        "~callbacks.evaluation",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    with machine_checks() as seeds:
        proc = rql_train_here(args, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert seeds == [0, 0]  # each job checks the machine it runs on, once
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    for job, alpha in zip(jobs, (0.3, 1.0), strict=True):
        ckpt = torch.load(job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        assert ckpt["global_step"] == 3
        assert ckpt["hyper_parameters"]["alpha"] == alpha
        assert OmegaConf.load(job / ".hydra" / "config.yaml").task.alpha == alpha
        assert f"task.alpha={alpha:g}" in OmegaConf.load(job / ".hydra" / "overrides.yaml")
