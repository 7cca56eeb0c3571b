"""Real runs aggregated by ``rql-results``: tiny RQL and flow-BC runs on generated cube-single play data, and
one RQL run on a Minari dataset of the same environment and task; a reference CSV beside them."""

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
    from rql_lightning.data.minari_datamodule import write_play_dataset_as_minari

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


def reference_table(printed: str) -> dict[tuple[str, str, str], list[str]]:
    """The printed comparison: (method, environment, task) -> [ours, reference, difference, within 2 s.e.]."""
    section = printed.split("## Against the reference", 1)[1]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| ")][1:]
    return {(m.strip(), env, task): [c.strip() for c in cells] for m, env, task, *cells in rows}


def test_a_reference_stands_beside_real_runs(real_runs, tmp_path, capsys):
    res = aggregate(load_runs(real_runs)[0])
    rql = res.task[("rql (ogbench)", "cube-single", 1)]  # two seeds: a standard error
    bc = res.task[("bc (ogbench)", "cube-single", 1)]  # one seed: none
    assert rql.n_seeds == 2 and bc.n_seeds == 1
    near = 100 * rql.mean + (1.0 if rql.mean < 0.5 else -1.0)  # 1 point off, s.e. 1: inside
    far = 100 * bc.mean + (10.0 if bc.mean < 0.5 else -10.0)  # 10 points off, s.e. 1 only: outside
    reference = tmp_path / "paper.csv"
    reference.write_text(
        "environment,task,method,success,stderr\n"
        f"cube-single,1,rql (ogbench),{near},1.0\n"  # a column by its name
        f"cube-single,1,bc,{far},1.0\n"  # a model: beside its column
        "cube-single,,rql (minari),40,\n"  # an environment's own number, no s.e.
        "scene,1,rql,50,2\n"  # beside no run of ours
    )
    out = tmp_path / "results"
    assert main([str(real_runs), "--reference", str(reference), "--out", str(out), "--no-plots"]) == 0
    captured = capsys.readouterr()
    table = reference_table(captured.out)
    assert "1 reference row(s) beside no run of ours: rql/scene/1" in captured.err

    ours_rql, ref_rql, diff_rql, within_rql = table[("rql (ogbench)", "cube-single", "1")]
    assert ref_rql == f"{near:.1f} ± 1.0" and ours_rql == rql.fmt()
    assert diff_rql == f"{100 * rql.mean - near:+.1f}" and within_rql == "yes"
    _, ref_bc, diff_bc, within_bc = table[("bc (ogbench)", "cube-single", "1")]
    assert ref_bc == f"{far:.1f} ± 1.0" and diff_bc == f"{100 * bc.mean - far:+.1f}" and within_bc == "no"
    assert table[("bc (ogbench)", "cube-single", "all")][1:] == [ref_bc, diff_bc, "no"]  # its one task
    minari = res.env[("rql (minari)", "cube-single")]
    assert table[("rql (minari)", "cube-single", "all")][1:] == ["40.0", f"{100 * minari.mean - 40:+.1f}", "?"]
    # rows the reference lacks: rql on task 2, hence also rql's environment (task 2 missing)
    assert table[("rql (ogbench)", "cube-single", "2")][1:] == ["-", "-", "-"]
    assert table[("rql (ogbench)", "cube-single", "all")][1:] == ["-", "-", "-"]
    assert "|ours - reference| <= 2·sqrt(s.e.ours² + s.e.ref²)" in captured.out  # the rule, in the legend

    with (out / "results_reference.csv").open() as f:
        rows = {(r["method"], r["task_id"]): r for r in csv.DictReader(f) if r["env"] == "cube-single"}
    row = rows[("rql (ogbench)", "1")]
    assert float(row["difference"]) == pytest.approx(float(row["ours_mean"]) - float(row["reference_mean"]), abs=2e-6)
    assert float(row["reference_mean"]) == pytest.approx(near / 100) and row["within_2se"] == "yes"
    assert rows[("rql (ogbench)", "2")]["reference_mean"] == "" and rows[("bc (ogbench)", "1")]["within_2se"] == "no"
    assert "## Against the reference" in (out / "results.md").read_text()
