"""Every baseline trains through the CLI, checkpoints and resumes: model=fql, bc, and the example.

The example runs as a user would run `PYTHONPATH=examples rql-train --config-dir examples model=my_flow_policy`
(in this process, with examples/ on ``sys.path``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from tests.runs import TINY, explain, rql_train_here

EXAMPLES = str(Path(__file__).resolve().parents[2] / "examples")
# The shared tiny networks, checkpoints every 3 steps, no evaluation.
OVERRIDES = [
    *(o for o in TINY if not o.lstrip("+").startswith(("callbacks.evaluation", "callbacks.checkpoint"))),
    "callbacks.checkpoint.every_n_train_steps=3",
    "~callbacks.evaluation",
]


MODELS = ("fql", "bc", "my_flow_policy")  # rql: tests/cli/test_train.py


def _train(model: str, root: Path, dataset: Path, *args: str) -> subprocess.CompletedProcess:
    """``rql-train`` in this process; the example's module is found on ``sys.path``, as ``PYTHONPATH`` puts it."""
    extra = ["--config-dir", EXAMPLES] if model == "my_flow_policy" else []
    common = [*extra, f"model={model}", f"data.dataset_path={dataset}", f"hydra.run.dir={root / model}", *OVERRIDES]
    with pytest.MonkeyPatch.context() as mp:
        if model == "my_flow_policy":
            mp.syspath_prepend(EXAMPLES)
        return rql_train_here([*common, *args], cwd=root)


@pytest.fixture(scope="module")
def runs(cube_single_dataset, tmp_path_factory):
    """Each model trained 3 steps, then resumed to 5 with resume=auto. Returns (root, first runs, their step-3
    checkpoints, resumed runs)."""
    root = tmp_path_factory.mktemp("models")
    first = {m: _train(m, root, cube_single_dataset, "trainer.max_steps=3") for m in MODELS}
    at_3 = {
        m: torch.load(root / m / "checkpoints" / "last.ckpt", weights_only=True)
        for m in MODELS
        if first[m].returncode == 0
    }
    resumed = {m: _train(m, root, cube_single_dataset, "trainer.max_steps=5", "resume=auto") for m in at_3}
    return root, first, at_3, resumed


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_model_trains_checkpoints_and_resumes_through_rql_train(model, runs):
    root, first, at_3, resumed = runs
    assert first[model].returncode == 0, explain(first[model])
    ckpt = at_3[model]
    assert ckpt["global_step"] == 3
    assert resumed[model].returncode == 0, explain(resumed[model])
    after = torch.load(root / model / "checkpoints" / "last.ckpt", weights_only=True)
    assert after["global_step"] == 5
    assert any(not torch.equal(v, ckpt["state_dict"][k]) for k, v in after["state_dict"].items())
