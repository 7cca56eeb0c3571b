"""``rql-results`` on real runs that logged the premise diagnostics: a single RQL run and a seed-batched run of
the interpolation control, read back from their TensorBoard files, pooled over seeds, tabled and plotted."""

from __future__ import annotations

from pathlib import Path

import pytest

from rql_lightning.cli.results import main
from rql_lightning.results import diagnostic_curves, load_runs, run_diagnostics
from tests.results.test_rql_results import PNG
from tests.runs import scalars, train_tiny

pytestmark = pytest.mark.slow


def train(out: Path, overrides: list[str]) -> None:
    train_tiny(out, ["callbacks.diagnostics.diag_every=2", "callbacks.diagnostics.batch_size=32", *overrides])


@pytest.fixture(scope="module")
def diag_runs(tmp_path_factory, cube_single_dataset) -> Path:
    root = tmp_path_factory.mktemp("diag-runs")
    data = f"data.dataset_path={cube_single_dataset}"
    train(root / "rql", [data, "seed=0"])
    train(root / "interp", [data, "seeds=[0,1]", "model.virtual_states=interpolation", "model.name=rql_interp"])
    return root


def test_each_run_reads_its_own_diagnostics_from_the_event_files(diag_runs):
    runs, notes = load_runs(diag_runs)
    assert not notes and sorted((r.model, r.seed) for r in runs) == [("rql", 0), ("rql_interp", 0), ("rql_interp", 1)]
    logged = scalars(diag_runs / "interp" / "tensorboard")
    for run in runs:
        series = run_diagnostics(run)
        assert "diag/q_ratio" in series and "diag/val_critic_loss" in series
        assert [step for step, _ in series["diag/noise_std"]] == [2, 4]
        if run.model == "rql_interp":  # seed s of the job: its seed<s>/diag/* tags
            assert series["diag/noise_std"] == logged[f"seed{run.seed}/diag/noise_std"]
    seeds = {r.seed: run_diagnostics(r) for r in runs if r.model == "rql_interp"}
    assert seeds[0]["diag/val_actor_loss"] != seeds[1]["diag/val_actor_loss"]

    curves = diagnostic_curves(runs)
    steps, mean, se = curves["diag/val_actor_loss"][("rql_interp", "cube-single", 1)]
    assert list(steps) == [2, 4]
    last = [seeds[s]["diag/val_actor_loss"][-1][1] for s in (0, 1)]
    assert mean[-1] == pytest.approx(sum(last) / 2) and se[-1] == pytest.approx(abs(last[0] - last[1]) / 2)
    _, _, one_seed = curves["diag/val_actor_loss"][("rql", "cube-single", 1)]
    assert all(v != v for v in one_seed)  # one seed: no standard error


def test_rql_results_writes_the_diagnostics_table_and_figures(diag_runs, tmp_path, capsys):
    out = tmp_path / "results"
    assert main([str(diag_runs), "--out", str(out)]) == 0
    table = (out / "diagnostics.md").read_text()
    assert "| diagnostic | rql, task 1 | rql_interp, task 1 |" in table
    assert "| `diag/q_ratio` |" in table and "At step 4 on cube-single" in table
    for tag in ("diag_q_ratio", "diag_noise_sliced_w1", "diag_round_trip_max_du", "diag_val_critic_loss"):
        assert (out / "diagnostics" / f"{tag}.png").read_bytes()[:8] == PNG
    assert main([str(diag_runs), "--out", str(tmp_path / "bare"), "--no-plots"]) == 0
    assert (tmp_path / "bare" / "diagnostics.md").exists() and not (tmp_path / "bare" / "diagnostics").exists()
