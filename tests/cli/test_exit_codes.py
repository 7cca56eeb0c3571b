"""The exit-code contract of each command on a real process: bad input is exit code 2, one ``error:``
line, no traceback. (``rql-train``'s is in tests/checks/test_errors.py, ``rql-eval``'s in test_eval.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.runs import TRACEBACK, quiet_env

BIN = Path(sys.executable).parent


def run(command: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / command), *args], cwd=cwd, env=quiet_env(), capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ("rql-data", ["generate", "cube-single-play-v0", "--num-transitions", "0"], "--num-transitions=0 must be >= 1"),
        ("rql-data", ["info", "{tmp}/nope.npz"], "no dataset at"),
        ("rql-results", ["{tmp}/missing"], "runs_dir={tmp}/missing is not a directory"),
    ],
)
def test_bad_input_exits_2_with_one_error_line(command, args, expected, tmp_path):
    proc = run(command, *[a.format(tmp=tmp_path) for a in args], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert TRACEBACK not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected.format(tmp=tmp_path) in errors[0], proc.stderr
    assert not any(tmp_path.glob("*.npz")), "a refused generate wrote nothing"
