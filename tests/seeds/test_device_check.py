"""benchmarks/device_check.sh on CPU with small settings: every piece runs and the JSON holds what it promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runs import RQL_TRAIN

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "device_check.sh"


@pytest.mark.slow
def test_device_check_runs_on_cpu_and_prints_one_json(cube_single_dataset, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "RQL_TRAIN": str(RQL_TRAIN), "OMP_NUM_THREADS": "1"}
    args = ["bash", str(SCRIPT), "--device", "cpu", "--dataset", str(cube_single_dataset), "--out", str(tmp_path)]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["device"] == "cpu" and out["skipped"] == []
    (throughput,) = out["throughput"].values()
    assert [r["seeds"] for r in throughput["results"]] == [1, 2]
    for r in throughput["results"]:
        assert r["seed_steps_per_s"] == pytest.approx(r["seeds"] * r["steps_per_s"])
    assert out["train"]["single"]["returncode"] == 0 and out["train"]["single"]["status"] == "finished"
    assert out["train"]["single"]["success_rate"] is not None  # it evaluated
    assert out["train"]["seeds4"]["returncode"] == 0, out["train"]["seeds4"]["stderr_tail"]
    (evaluation,) = out["eval"].values()
    assert evaluation["identical_episodes"] is True
