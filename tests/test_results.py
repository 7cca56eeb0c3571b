"""Readable results: every run leaves a ``summary.json``; ``rql-results`` and ``notebooks/results.ipynb`` turn a
directory of them into the paper's tables (mean ± standard error over seeds) and learning curves."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf

from rql_lightning.results import aggregate, load_runs, main

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------- summary.json of a run


@pytest.mark.slow
def test_training_run_writes_summary_json(cube_single_dataset, tmp_path):
    from rql_lightning.config import compose_config
    from rql_lightning.training import train

    out = tmp_path / "run"
    cfg = compose_config(
        [
            f"data.dataset_path={cube_single_dataset}",
            f"paths.output_dir={out}",
            "model.num_critics=2",
            "model.actor_hidden_dims=[32,32]",
            "model.critic_hidden_dims=[32,32]",
            "data.batch_size=32",
            "trainer.max_steps=4",
            "callbacks.evaluation.num_episodes=1",
            "callbacks.evaluation.num_envs=1",
            "callbacks.evaluation.every_n_steps=2",
            "+callbacks.evaluation.env_kwargs={max_episode_steps:20}",
            "trainer.enable_progress_bar=false",
            "seed=3",
        ]
    )
    # What Hydra leaves in a real run directory; the callback stores it, resolved.
    (out / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, out / ".hydra" / "config.yaml")
    result = train(cfg)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "cube-single" and summary["task_id"] == 1 and summary["seed"] == 3
    assert summary["model"] == "RQLModule" and summary["model_class"] == "rql_lightning.modules.rql.RQLModule"
    assert summary["status"] == "finished" and summary["step"] == 4 == result["step"]
    assert [p["step"] for p in summary["curve"]] == [2, 4]
    assert all(p["episodes"] == 1 and 0.0 <= p["success_rate"] <= 1.0 for p in summary["curve"])
    assert summary["success_rate"] == summary["curve"][-1]["success_rate"] == result["success_rate"]
    assert summary["return"] == summary["curve"][-1]["return"] == pytest.approx(result["return"])
    assert summary["eval_env"] == "cube-single-singletask-task1-v0"
    assert summary["wall_time_s"] > 0
    assert summary["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", summary["git_commit"])
    assert summary["config"]["model"]["alpha"] == 3.0  # resolved from ${task.alpha}
    assert summary["config"]["paths"]["output_dir"] == str(out)
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []  # atomic writes leave no temp file

    runs, notes = load_runs(tmp_path)
    assert len(runs) == 1 and not notes and runs[0].curve[-1] == (4, summary["success_rate"])


def test_summary_keeps_partial_curve_when_training_fails(tmp_path):
    """Rewritten after each evaluation, so a crash leaves the curve so far (with status ``failed``)."""
    from rql_lightning.callbacks.evaluation import EvaluationCallback
    from rql_lightning.callbacks.summary import RunSummaryCallback
    from rql_lightning.envs import EvalResult

    evaluation = EvaluationCallback("cube-single-singletask-task2-v0")
    summary = RunSummaryCallback(tmp_path, task="cube-single", task_id=2, seed=1)
    trainer = SimpleNamespace(callbacks=[evaluation, summary], is_global_zero=True, global_step=0)
    module = SimpleNamespace()
    path = tmp_path / "summary.json"

    summary.on_fit_start(trainer, module)
    assert json.loads(path.read_text())["status"] == "running" and json.loads(path.read_text())["curve"] == []
    empty = np.zeros(0)
    evaluation.history.append((10, EvalResult(0.5, -3.0, 2, empty, empty, empty)))
    trainer.global_step = 10
    summary.on_train_batch_end(trainer, module, None, None, 9)
    first = json.loads(path.read_text())
    assert first["curve"] == [{"step": 10, "success_rate": 0.5, "return": -3.0, "episodes": 2}]
    assert first["success_rate"] == 0.5 and first["step"] == 10

    trainer.global_step = 13
    summary.on_exception(trainer, module, RuntimeError("boom"))
    failed = json.loads(path.read_text())
    assert failed["status"] == "failed" and failed["step"] == 13 and failed["curve"] == first["curve"]
    assert failed["config"] is None  # no .hydra/config.yaml in this directory

    runs, notes = load_runs(tmp_path)
    assert runs == [] and "failed" in notes[0]
    assert len(load_runs(tmp_path, include_unfinished=True)[0]) == 1


# ------------------------------------------------------------------------------------- aggregation

# success[env][task] = values for seeds 0, 1, 2
RQL = {
    "cube-double": {1: [0.2, 0.4, 0.6], 2: [0.4, 0.6, 0.8]},  # per-seed task means 0.3, 0.5, 0.7
    "scene": {1: [1.0, 1.0, 1.0], 2: [0.0, 0.5, 1.0]},  # 0.5, 0.75, 1.0
}
FQL = {"cube-double": {1: [0.0, 0.1, 0.2], 2: [0.0, 0.1, 0.2]}}  # 0.0, 0.1, 0.2


def write_summary(root: Path, model: str, env: str, task_id: int, seed: int, success: float, **extra) -> Path:
    run = root / model / env / f"task{task_id}" / f"seed{seed}"
    run.mkdir(parents=True)
    curve = [{"step": s, "success_rate": success * s / 200, "return": 0.0, "episodes": 5} for s in (100, 200)]
    summary = {
        "task": env,
        "task_id": task_id,
        "seed": seed,
        "model": model,
        "status": "finished",
        "step": 200,
        "eval_step": 200,
        "success_rate": success,
        "return": -10.0,
        "curve": curve,
        "updated_at": "2026-01-01T00:00:00+00:00",
        "config": {"model": {"alpha": 3.0}},
        **extra,
    }
    (run / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    root = tmp_path / "runs"
    for model, table in (("RQLModule", RQL), ("FQLModule", FQL)):
        for env, tasks in table.items():
            for task_id, values in tasks.items():
                for seed, success in enumerate(values):
                    write_summary(root, model, env, task_id, seed, success)
    # left out: a crashed run, one that never evaluated, and an older duplicate of a counted run
    write_summary(root / "crashed", "RQLModule", "scene", 3, 0, 0.9, status="failed")
    write_summary(root / "early", "RQLModule", "scene", 4, 0, 0.9, status="running", success_rate=None, curve=[])
    write_summary(root / "old", "RQLModule", "scene", 1, 0, 0.0, updated_at="2025-01-01T00:00:00+00:00")
    return root


def se(values) -> float:
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


def test_aggregation_pools_tasks_per_seed_then_seeds(runs_dir):
    runs, notes = load_runs(runs_dir)
    assert len(runs) == 12 + 6 and len(notes) == 3
    assert any("failed" in n for n in notes) and any("no evaluation" in n for n in notes)
    assert any("duplicate" in n and "/old/" in n for n in notes)
    res = aggregate(runs)
    assert res.methods == ["FQLModule", "RQLModule"] and res.envs == ["cube-double", "scene"]

    task = res.task[("RQLModule", "scene", 2)]
    assert task.mean == pytest.approx(0.5) and task.se == pytest.approx(se([0.0, 0.5, 1.0])) and task.n_seeds == 3

    cube = res.env[("RQLModule", "cube-double")]
    assert cube.mean == pytest.approx(0.5) and cube.se == pytest.approx(se([0.3, 0.5, 0.7]))
    assert (cube.n_tasks, cube.n_seeds, cube.n_runs) == (2, 3, 6)
    scene = res.env[("RQLModule", "scene")]
    assert scene.mean == pytest.approx(0.75) and scene.se == pytest.approx(se([0.5, 0.75, 1.0]), abs=1e-6)

    # average over environments: per seed (0.4, 0.625, 0.85), mean 0.625
    average = res.average["RQLModule"]
    assert average.mean == pytest.approx(0.625) and average.se == pytest.approx(se([0.4, 0.625, 0.85]))
    assert (average.n_envs, average.n_tasks, average.n_runs) == (2, 4, 12)
    fql = res.average["FQLModule"]
    assert fql.mean == pytest.approx(0.1) and fql.n_envs == 1 and ("FQLModule", "scene") not in res.env

    table = res.env_markdown()
    assert "| environment | FQLModule | RQLModule |" in table
    assert f"| cube-double | 10.0 ± {100 * se([0, 0.1, 0.2]):.1f} | 50.0 ± {100 * se([0.3, 0.5, 0.7]):.1f} |" in table
    assert "| scene |  | 75.0 ± 14.4 |" in table
    assert "| **average (2 envs)** | 10.0 ± 5.8 (1 of 2) | 62.5 ± 13.0 |" in table


def test_by_config_key_splits_methods(runs_dir):
    runs, _ = load_runs(runs_dir, by=["model.alpha"])
    assert {r.method for r in runs} == {"RQLModule alpha=3.0", "FQLModule alpha=3.0"}


def test_rql_results_writes_tables_and_curves(runs_dir, tmp_path, capsys):
    out = tmp_path / "results"
    assert main([str(runs_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| cube-double |" in printed and "| scene | 2 |" in printed

    with (out / "results_env.csv").open() as f:
        rows = {(r["method"], r["env"]): r for r in csv.DictReader(f)}
    assert float(rows[("RQLModule", "average")]["success_mean"]) == pytest.approx(0.625, abs=1e-6)
    assert float(rows[("RQLModule", "scene")]["success_se"]) == pytest.approx(se([0.5, 0.75, 1.0]), abs=1e-6)
    assert rows[("RQLModule", "cube-double")]["n_runs"] == "6"
    with (out / "results_task.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 6
    with (out / "runs.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 18
    assert "## Success rate by task" in (out / "results.md").read_text()
    for env in ("cube-double", "scene"):
        png = out / "curves" / f"{env}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main([str(runs_dir), "--out", str(out), "--format", "csv", "--no-plots"]) == 0
    assert capsys.readouterr().out.startswith("method,env,success_mean,success_se,n_envs,n_tasks,n_seeds,n_runs\n")


def test_rql_results_without_runs_is_an_error(tmp_path, capsys):
    assert main([str(tmp_path), "--out", str(tmp_path / "results")]) == 2
    assert "no finished run" in capsys.readouterr().err
    assert main([str(tmp_path / "missing")]) == 2


# ---------------------------------------------------------------------------------------- notebook


@pytest.mark.slow
def test_results_notebook_runs(runs_dir, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.skip("no 'python3' Jupyter kernel: pip install ipykernel (the dev extra) into this environment")
    monkeypatch.setenv("RQL_RUNS_DIR", str(runs_dir))
    nb = nbformat.read(REPO / "notebooks" / "results.ipynb", as_version=4)
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = json.dumps([o.get("data", {}).get("text/markdown", "") for o in outputs])
    assert "cube-double" in text and "62.5" in text  # the environment table
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the learning curves
