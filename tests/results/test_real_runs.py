"""Real runs aggregated by ``rql-results``: tiny RQL and flow-BC runs on generated cube-single play data, and
one RQL run on a Minari dataset of the same environment and task."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from rql_lightning.cli.results import main
from rql_lightning.results import aggregate, load_runs, plot_curves
from tests.results.test_rql_results import PNG, tick_labels
from tests.runs import train_tiny

pytestmark = pytest.mark.slow
MINARI_ID = "rql/cube-single-play-task1-v0"


def train_run(out: Path, overrides: list[str]) -> dict:
    """One tiny ``rql-train`` run into ``out``; its ``summary.json``."""
    train_tiny(out, overrides)
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory, cube_single_dataset) -> Path:
    """RQL on task 1 (seeds 0, 1; evaluated every 2 steps), RQL on task 2, flow BC on task 1 (one evaluation,
    at the end) and RQL on task 1 from a Minari copy of the same data: five run directories under one root."""
    from rql_lightning.data.minari_export import write_play_dataset_as_minari

    root = tmp_path_factory.mktemp("runs")
    minari_root = tmp_path_factory.mktemp("minari")
    write_play_dataset_as_minari(cube_single_dataset, "cube-single-play-singletask-task1-v0", MINARI_ID, minari_root)
    ogbench = f"data.dataset_path={cube_single_dataset}"
    every_2 = "callbacks.evaluation.every_n_steps=2"
    for name, overrides in {
        "rql-task1-seed0": [ogbench, every_2, "seed=0"],
        "rql-task1-seed1": [ogbench, every_2, "seed=1"],
        "rql-task2-seed0": [ogbench, every_2, "task.id=2", "seed=0"],
        "bc-task1-seed0": [ogbench, "model=bc", "seed=0"],
        "rql-minari-task1-seed0": ["data=minari", f"data.dataset_id={MINARI_ID}", f"data.data_dir={minari_root}"],
    }.items():
        train_run(root / name, [*overrides, "seed=0"] if "seed=" not in " ".join(overrides) else overrides)
    return root


def test_runs_on_different_data_stay_apart_under_short_names(real_runs):
    runs, notes = load_runs(real_runs)
    assert len(runs) == 5 and not notes, notes  # the Minari run is no duplicate of the OGBench run of task 1
    by_dir = {r.path.name: r for r in runs}
    assert {r.model for r in runs} == {"rql", "bc"}
    assert by_dir["rql-minari-task1-seed0"].data.source == "minari"
    assert MINARI_ID in by_dir["rql-minari-task1-seed0"].data.key
    assert {by_dir[d].data.source for d in by_dir if "minari" not in d} == {"ogbench"}

    res = aggregate(runs)
    assert res.methods == ["bc (ogbench)", "rql (minari)", "rql (ogbench)"]  # the table mixes sources: named
    assert res.task[("rql (ogbench)", "cube-single", 1)].n_seeds == 2
    assert res.task[("rql (minari)", "cube-single", 1)].n_seeds == 1
    assert res.env[("rql (ogbench)", "cube-single")].n_tasks == 2
    seeds = [by_dir[f"rql-task1-seed{s}"].success_rate for s in (0, 1)]
    assert res.task[("rql (ogbench)", "cube-single", 1)].mean == pytest.approx(sum(seeds) / 2)

    runs, _ = load_runs(real_runs, by=["data.source"])
    assert {r.method for r in runs} == {"bc source=ogbench", "rql source=ogbench", "rql source=minari"}


def test_rql_results_writes_overview_and_per_environment_figures(real_runs, tmp_path, capsys):
    out = tmp_path / "results"
    assert main([str(real_runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| environment | bc (ogbench) | rql (minari) | rql (ogbench) |" in printed
    assert "Module" not in printed and f"`minari:{MINARI_ID}" in printed
    for png in (out / "overview.png", out / "curves" / "cube-single.png"):
        assert png.read_bytes()[:8] == PNG
    with (out / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["model"] for r in rows} == {"rql", "bc"} and {r["data_source"] for r in rows} == {"ogbench", "minari"}

    runs, _ = load_runs(real_runs)
    fig = plot_curves(runs, "cube-single")
    assert [ax.get_title() for ax in fig.axes] == [f"cube-single: {m}" for m in aggregate(runs).methods]
    panels = tick_labels(fig)
    assert panels[0] == ["0", "1", "2", "3", "4"]  # bc: one evaluation at step 4, on an axis from 0
    assert all(labels == panels[0] for labels in panels)


def test_each_run_leaves_a_summary_that_the_loader_reads(real_runs):
    out = real_runs / "rql-task1-seed0"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "cube-single" and summary["task_id"] == 1 and summary["seed"] == 0
    assert summary["model_class"] == "rql_lightning.modules.rql.RQLModule"
    assert summary["status"] == "finished" and summary["step"] == 4
    assert [p["step"] for p in summary["curve"]] == [2, 4]
    assert all(p["episodes"] == 1 and 0.0 <= p["success_rate"] <= 1.0 for p in summary["curve"])
    assert summary["success_rate"] == summary["curve"][-1]["success_rate"]
    assert summary["return"] == summary["curve"][-1]["return"]
    assert summary["eval_env"] == "cube-single-singletask-task1-v0"
    assert summary["wall_time_s"] > 0
    assert summary["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", summary["git_commit"])
    assert summary["config"]["model"]["alpha"] == 3.0  # resolved from ${task.alpha}
    assert summary["config"]["paths"]["output_dir"] == str(out)
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []  # atomic writes leave no temp file

    (run,) = [r for r in load_runs(real_runs)[0] if r.path == out]
    assert run.model == "rql" and run.curve == tuple((p["step"], p["success_rate"]) for p in summary["curve"])
    assert run.data.source == "ogbench" and run.data.dataset == "cube-single-play-v0"
