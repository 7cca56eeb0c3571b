"""``rql-eval`` on a real checkpoint of a real ``rql-train`` run: the run's protocol, eval.json, TensorBoard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.rendering import gl_env, gl_renders
from tests.runs import TINY, TRACEBACK, explain, rql_train_here, scalars

RQL_EVAL = str(Path(sys.executable).with_name("rql-eval"))


def rql_eval(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([RQL_EVAL, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained_run(cube_single_dataset, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evalrun")
    run_dir = root / "run"
    proc = rql_train_here(
        [
            "trainer.max_steps=10",
            f"data.dataset_path={cube_single_dataset}",
            *TINY,  # its evaluation's episodes are 20 steps: rql-eval must repeat that
            f"hydra.run.dir={run_dir}",
        ],
        cwd=root,
    )
    assert proc.returncode == 0, explain(proc)
    return run_dir


@pytest.mark.slow
def test_rql_eval_repeats_the_runs_own_evaluation_and_logs_it(trained_run, tmp_path):
    """Also records one video with OSMesa where the probe renders here (decided before the run)."""
    renders = gl_renders("osmesa")
    summary = json.loads((trained_run / "summary.json").read_text())
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    video = [f"eval.video_episodes={int(renders)}", "eval.video_frame_skip=25", "eval.video_width=32"]
    proc = rql_eval(  # a small, sparse video: OSMesa renders on the CPU
        [f"ckpt_path={ckpt}", "eval.episodes=2", "eval.num_envs=1", *video, "eval.video_height=32"],
        cwd=tmp_path,
        env=gl_env("osmesa"),
    )
    assert proc.returncode == 0, explain(proc)
    (out_dir,) = (trained_run / "eval").iterdir()
    record = json.loads((out_dir / "eval.json").read_text())
    # Same env, seed and episodes as the run's final evaluation: the same numbers.
    assert record["env"] == summary["eval_env"] and record["step"] == 10 and record["episodes"] == 2
    assert record["success_rate"] == summary["success_rate"] and record["return"] == summary["return"]
    assert [(10, record["length"])] == scalars(trained_run / "tensorboard")["eval/length"] and record["length"] <= 20
    assert f"success rate: {record['success_rate']:.2f}" in proc.stdout

    acc = EventAccumulator(str(out_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("eval/success_rate")] == [(10, record["success_rate"])]
    assert ("eval/video" in acc.Tags()["images"]) == renders, proc.stderr[-3000:]


@pytest.mark.parametrize("what", ["missing", "not-a-checkpoint", "no-argument"])
def test_rql_eval_bad_checkpoint_is_one_line(what, tmp_path, monkeypatch, capsys):
    """In-process: the checkpoint is refused before Hydra starts (docs/errors.md rows 34, 35 and 40)."""
    from rql_lightning.cli import eval as eval_cli

    not_a_checkpoint = tmp_path / "data.npz"
    not_a_checkpoint.write_bytes(b"PK\x03\x04 not a torch file")
    args, expected = {
        "missing": ([f"ckpt_path={tmp_path / 'nope.ckpt'}"], " does not exist; point it at a .ckpt (e.g. "),
        "not-a-checkpoint": ([f"ckpt_path={not_a_checkpoint}"], " is not a readable checkpoint "),
        "no-argument": ([], "ckpt_path is required; usage: rql-eval ckpt_path="),
    }[what]
    monkeypatch.setattr(sys, "argv", ["rql-eval", *args])
    with pytest.raises(SystemExit) as exit_:
        eval_cli.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and TRACEBACK not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ckpt_path" in errors[0] and expected in errors[0], err


def test_rql_eval_refuses_a_key_it_does_not_have(tmp_path):
    """``+key=...`` adds a key Hydra lets through: refused in one line, not ignored (docs/errors.md row 81)."""
    import torch

    from rql_lightning.cli.eval import USAGE

    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"global_step": 1, "state_dict": {}, "hyper_parameters": {}}, ckpt)
    args = [f"ckpt_path={ckpt}", "+eval.episodez=3", "+colour=red"]
    proc = rql_train_here(args, cwd=tmp_path, command="rql-eval")
    assert proc.returncode == 2 and TRACEBACK not in proc.stderr, explain(proc)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    expected = "colour, episodez: not a setting of rql-eval (conf/eval.yaml has them all); usage: "
    assert errors == [f"error: {expected}{USAGE}"], explain(proc)
    assert not list((tmp_path / "run").rglob("eval.json"))
