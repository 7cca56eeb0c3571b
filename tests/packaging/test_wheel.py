"""A built wheel, installed into a fresh venv, gives working commands from outside the checkout."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{cmd} -> {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """The project built as a wheel and installed (no network, no deps) into a new venv.

    The venv sees the test environment's installed dependencies through a ``.pth`` line, but not its
    editable install of this project (editable finders live in ``.pth`` files that a path line does
    not run), so ``rql_lightning`` can only come from the wheel."""
    root = tmp_path_factory.mktemp("wheel")
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(root), str(REPO)],
        root,
    )
    (wheel,) = root.glob("rql_lightning-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "rql_lightning/conf/train.yaml" in names and "rql_lightning/conf/task/antmaze-giant.yaml" in names
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root)
    (site_dir,) = (venv / "lib").glob("python3*/site-packages")
    (site_dir / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    py = venv / "bin" / "python"
    run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index", str(wheel)], root
    )
    return venv


@pytest.mark.slow
def test_wheel_commands_work_from_any_directory(wheel_venv, cube_single_dataset, tmp_path):
    bin_dir = wheel_venv / "bin"
    where = run([str(bin_dir / "python"), "-c", "import rql_lightning; print(rql_lightning.__file__)"], tmp_path)
    assert str(wheel_venv) in where.stdout, "rql_lightning was not imported from the wheel"

    job = run([str(bin_dir / "rql-train"), "--cfg", "job", "task=antmaze-giant", "model=fql"], tmp_path)
    assert "singletask_name: antmaze-giant-navigate-singletask-task${task.id}-v0" in job.stdout
    assert "_target_: rql_lightning.modules.fql.FQLModule" in job.stdout

    run_dir = tmp_path / "run"
    run(
        [
            str(bin_dir / "rql-train"),
            "debug=default",
            "trainer.max_steps=3",
            f"data.dataset_path={cube_single_dataset}",
            f"hydra.run.dir={run_dir}",
        ],
        tmp_path,
    )
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert json.loads((run_dir / "summary.json").read_text())["step"] == 3

    run([str(bin_dir / "rql-data"), "--help"], tmp_path)
    results = run([str(bin_dir / "rql-results"), str(tmp_path), "--include-unfinished"], tmp_path)
    assert "cube-single" in results.stdout
