"""A run that really fails leaves its record: training diverges (``model.actor_lr=1e30``), the non-finite guard
stops it naming the step, and ``summary.json`` says ``failed`` at that step with the evaluation made before it,
which ``rql-results --include-unfinished`` reads. (The callback's hooks alone: tests/results/test_summary_file.py.)"""

from __future__ import annotations

import json

import pytest

from rql_lightning.errors import NonFiniteError
from rql_lightning.results import load_runs
from tests.runs import train_tiny


@pytest.mark.slow
def test_summary_of_a_run_that_diverges_says_failed_at_the_step_and_keeps_its_curve(cube_single_dataset, tmp_path):
    run_dir = tmp_path / "run"
    overrides = [f"data.dataset_path={cube_single_dataset}", "model.actor_lr=1e30", "model.critic_lr=1e30"]
    # An evaluation after every update: the one after step 0's update lands before step 1 diverges.
    with pytest.raises(NonFiniteError, match=r"^step 1: non-finite ") as err:
        train_tiny(run_dir, [*overrides, "eval.every_n_steps=1", "trainer.max_steps=10"])
    assert "model.skip_nonfinite=true" in str(err.value)

    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["step"]) == ("failed", 1)
    assert [point["step"] for point in summary["curve"]] == [1] and summary["eval_step"] == 1
    assert summary["config"]["model"]["actor_lr"] == 1e30  # the run's own record of what it ran

    runs, notes = load_runs(tmp_path)
    assert runs == [] and any("failed" in note for note in notes)
    (run,), _ = load_runs(tmp_path, include_unfinished=True)
    assert run.status == "failed" and [step for step, _ in run.curve] == [1]
