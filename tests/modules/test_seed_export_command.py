"""``python -m rql_lightning.modules.seed_export <ckpt> <seed> <out>``, the command README.md and docs/running.md
give, run as a user runs it: it writes the replica's single-run checkpoint and prints where."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.runs import quiet_env


@pytest.mark.slow
def test_the_export_command_writes_one_seeds_checkpoint(tmp_path):
    batched = tmp_path / "last.ckpt"
    torch.save(
        {
            "hyper_parameters": {"seeds": [4, 7], "seed": 0, "alpha": 0.3},
            "state_dict": {"critic.w": torch.arange(6.0).reshape(2, 3)},  # (replicas, 3)
            "optimizer_states": [
                {"state": {0: {"exp_avg": torch.tensor([[1.0], [2.0]]), "step": torch.tensor(5.0)}}, "param_groups": []}
            ],
            "global_step": 5,
        },
        batched,
    )
    out = tmp_path / "exported" / "seed7.ckpt"
    proc = subprocess.run(
        [sys.executable, "-m", "rql_lightning.modules.seed_export", str(batched), "7", str(out)],
        cwd=tmp_path,
        env=quiet_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    single = torch.load(out, weights_only=True)
    assert single["hyper_parameters"] == {"seed": 7, "alpha": 0.3}  # seed 7 alone, no replica axis left
    assert single["state_dict"]["critic.w"].tolist() == [3.0, 4.0, 5.0]  # replica 1's row
    assert single["optimizer_states"][0]["state"][0]["exp_avg"].tolist() == [2.0]
    assert single["global_step"] == 5
