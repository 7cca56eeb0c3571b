"""A built wheel, installed into a fresh venv, gives working commands from outside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.runs import SHORT_EPISODES

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
    not run), so ``rql_lightning`` can only come from the wheel. It is built from a copy of the sources: an
    in-tree build reuses the checkout's ``build/lib``, which keeps modules that have since been deleted."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", source / "src", ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(root), str(source)],
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
            SHORT_EPISODES,
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


@pytest.mark.slow
def test_wheel_declares_the_cluster_extra(wheel_venv):
    """``pip install "rql-lightning[cluster]"`` brings the sweep and launcher plugins the README's sweeps use."""
    (wheel,) = wheel_venv.parent.glob("rql_lightning-*.whl")
    with zipfile.ZipFile(wheel) as whl:
        (metadata,) = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(whl.read(metadata).decode())
    assert "cluster" in meta.get_all("Provides-Extra")
    cluster = {r.name for r in map(Requirement, meta.get_all("Requires-Dist")) if str(r.marker) == 'extra == "cluster"'}
    assert cluster == {"hydra-joblib-launcher", "hydra-submitit-launcher", "hydra-optuna-sweeper"}


@pytest.mark.slow
def test_wheel_joblib_sweep_runs_jobs_in_parallel(wheel_venv, cube_single_dataset, tmp_path):
    """The project's joblib launcher (``hydra/launcher=local``) from the installed wheel: both jobs finish, and
    ran at the same time. A job spans from its ``.hydra/config.yaml`` (Hydra writes it as the job starts, before
    our code) to the last write of its ``summary.json`` (at train end); one-after-another jobs cannot overlap.
    File times, not summary.json's ``started_at``/``updated_at``: those are to the second and span only the
    ~2 s fit, too little margin against the jobs' start skew on a loaded machine."""
    sweep_dir = tmp_path / "sweep"
    run(
        [
            str(wheel_venv / "bin" / "rql-train"),
            "-m",
            "hydra/launcher=local",
            "hydra.launcher.n_jobs=2",
            "seed=0,1",
            "debug=default",
            SHORT_EPISODES,
            "trainer.max_steps=3",
            f"data.dataset_path={cube_single_dataset}",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        tmp_path,
        timeout=600,
    )
    jobs = [sweep_dir / str(num) for num in (0, 1)]
    summaries = [json.loads((job / "summary.json").read_text()) for job in jobs]
    assert [(s["seed"], s["status"], s["step"]) for s in summaries] == [(0, "finished", 3), (1, "finished", 3)]
    spans = [
        ((job / ".hydra" / "config.yaml").stat().st_mtime_ns, (job / "summary.json").stat().st_mtime_ns) for job in jobs
    ]
    assert max(start for start, _ in spans) < min(end for _, end in spans), f"the jobs ran one after another: {spans}"
