"""A crashed run still counts for ``--include-unfinished``: ``summary.json`` is rewritten after each evaluation,
so a failure leaves the curve so far (status ``failed``)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import torch

from rql_lightning.callbacks.summary import RunSummaryCallback
from rql_lightning.results import load_runs


def test_summary_keeps_partial_curve_when_training_fails(tmp_path):
    summary = RunSummaryCallback(tmp_path, task="cube-single", task_id=2, seed=1)
    # the evaluation callback publishes its curve in trainer.callback_metrics: (step, success, return, episodes)
    trainer = SimpleNamespace(callbacks=[summary], is_global_zero=True, global_step=0, callback_metrics={})
    module = SimpleNamespace()
    path = tmp_path / "summary.json"

    summary.on_fit_start(trainer, module)
    assert json.loads(path.read_text())["status"] == "running" and json.loads(path.read_text())["curve"] == []
    trainer.callback_metrics["eval/curve"] = torch.tensor([[10, 0.5, -3.0, 2]], dtype=torch.float64)
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
    (run,) = load_runs(tmp_path, include_unfinished=True)[0]
    assert (run.status, run.success_rate, run.curve) == ("failed", 0.5, ((10, 0.5),))
