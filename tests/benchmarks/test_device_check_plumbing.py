"""benchmarks/device_check.sh on CPU with its smallest settings: every piece it promises is in its one JSON
object (or listed in "skipped") and none failed.  Plumbing only: the numbers are the benchmark's business."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runs import RQL_TRAIN

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "device_check.sh"
# What --device cpu runs: one throughput preset/mode, one- and four-seed training, one vector-env evaluation.
PIECES = {
    "throughput": {"quickstart.eager.tf32_off"},
    "train": {"single", "seeds4"},
    "eval": {"envs2"},
}


def _errors(value, where: str = "") -> list[str]:
    """Every ``"error"`` key anywhere in ``value``, with its path."""
    if isinstance(value, dict):
        found = [f"{where}: {value['error']}"] if "error" in value else []
        return found + [e for k, v in value.items() for e in _errors(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in _errors(v, f"{where}[{i}]")]
    return []


@pytest.mark.slow
def test_device_check_reports_every_piece_on_cpu(cube_single_dataset, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "RQL_TRAIN": RQL_TRAIN, "OMP_NUM_THREADS": "1"}
    args = ["bash", str(SCRIPT), "--device", "cpu", "--seeds", "1", "--dataset", str(cube_single_dataset)]
    proc = subprocess.run([*args, "--out", str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)  # one JSON object, nothing else on stdout
    assert out["device"] == "cpu" and isinstance(out["elapsed_s"], int) and "torch" in out
    assert _errors(out) == [], json.dumps(out, indent=1)[-3000:]
    skipped = set(out["skipped"])
    for group, names in PIECES.items():
        reported = set(out.get(group, {}))
        assert reported | {n for n in names if f"{group}.{n}" in skipped} == names, (group, reported, skipped)

    (throughput,) = out["throughput"].values()
    assert throughput["device"] == "cpu" and [r["replicas"] for r in throughput["results"]] == [1]
    for run in ("single", "seeds4"):
        assert out["train"][run]["returncode"] == 0 and out["train"][run]["steps"] == 10, (run, out["train"][run])
    # the one-seed run finished and evaluated (a seed-batched run keeps its summaries in seed<s>/)
    assert out["train"]["single"]["status"] == "finished" and out["train"]["single"]["success_rate"] is not None
    (evaluation,) = out["eval"].values()
    assert evaluation["num_envs"] == 2 and evaluation["identical_episodes"] is True
