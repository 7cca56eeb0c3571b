"""Every baseline trains through the CLI, checkpoints and resumes: model=fql, bc, and the example.

The example runs as a user would: `PYTHONPATH=examples rql-train --config-dir examples model=my_flow_policy`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.runs import TINY, explain, rql_train

EXAMPLES = str(Path(__file__).resolve().parents[2] / "examples")
# The shared tiny networks, checkpoints every 3 steps, no evaluation.
OVERRIDES = [
    *(o for o in TINY if not o.startswith(("callbacks.evaluation", "callbacks.checkpoint"))),
    "callbacks.checkpoint.every_n_train_steps=3",
    "~callbacks.evaluation",
]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["fql", "bc", "my_flow_policy"])  # rql: tests/cli/test_train.py
def test_model_trains_checkpoints_and_resumes_through_rql_train(model, cube_single_dataset, tmp_path, monkeypatch):
    extra = []
    if model == "my_flow_policy":
        extra = ["--config-dir", EXAMPLES]
        monkeypatch.setenv("PYTHONPATH", EXAMPLES + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = tmp_path / "run"
    common = [*extra, f"model={model}", f"data.dataset_path={cube_single_dataset}", f"hydra.run.dir={run}", *OVERRIDES]
    first = rql_train([*common, "trainer.max_steps=3"], cwd=tmp_path)
    assert first.returncode == 0, explain(first)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3
    resumed = rql_train([*common, "trainer.max_steps=5", "resume=auto"], cwd=tmp_path)
    assert resumed.returncode == 0, explain(resumed)
    after = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert after["global_step"] == 5
    assert any(not torch.equal(v, ckpt["state_dict"][k]) for k, v in after["state_dict"].items())
