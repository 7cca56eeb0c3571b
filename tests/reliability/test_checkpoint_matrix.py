"""Every checkpoint the project writes works with every command that takes one (issue 25).

The matrix: the checkpoints of a single run, a seed batch, a paper column (``task.ids`` x seeds), an online
phase, sharded data, ``model=fql``, and seed batches of ``model=bc`` and of a subclass (examples/my_flow_policy.py;
the single runs of each method: tests/modules/test_models_cli.py), each under ``rql-eval`` (every replica, and one
replica by its key; a key it does not hold), ``resume=auto``, and the export of one replica followed by
``rql-eval`` and a resume of the exported file. Real tiny runs, in-process: the contract here is the library's
(the commands' exit codes and streams are tested in tests/cli)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from rql_lightning.cli.eval import evaluate_checkpoint
from rql_lightning.config import compose_config
from rql_lightning.errors import UserError
from rql_lightning.modules import seed_export
from rql_lightning.training import train
from tests.runs import TINY, explain, rql_train_here

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STEPS, MORE = 4, 6  # the first run's steps; a resume goes on to MORE
ONLINE = 3  # env steps of the online kind (utd 1: one update each)
KINDS = {  # the run's overrides (the dataset is added by run_overrides)
    "single": [],
    "seeds": ["seeds=[0,1]"],
    "tasks": ["task.ids=[1,2]", "seeds=[0,1]"],
    "online": [f"online.steps={ONLINE}"],
    "shards": ["data.data_kind=100m_shards"],
    "fql": ["model=fql"],
    "bc-seeds": ["model=bc", "seeds=[0,1]"],
    "subclass-seeds": ["model=my_flow_policy", f"hydra.searchpath=[file://{EXAMPLES}]", "seeds=[0,1]"],
}


class FirstStep(L.Callback):
    """Writes the step a fit starts at: the checkpoint's step on a resume, 0 on a fresh start."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        Path(self.path).write_text(str(trainer.global_step))


@pytest.fixture(scope="module", autouse=True)
def examples_importable():
    """``my_flow_policy`` importable, as ``PYTHONPATH=examples rql-train --config-dir examples`` makes it."""
    sys.path.insert(0, str(EXAMPLES))
    yield
    sys.path.remove(str(EXAMPLES))


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory) -> Path:
    from rql_lightning.data.generate import generate_play_dataset

    out = tmp_path_factory.mktemp("shards") / "cube-single-play-v0"
    return generate_play_dataset("cube-single-play-v0", out, 400, progress=False, num_shards=2, max_episode_steps=100)


def run_overrides(kind: str, dataset: Path, shards: Path) -> list[str]:
    data = shards if kind == "shards" else dataset
    return [f"data.dataset_path={data}", *KINDS[kind]]


def fit(out: Path, overrides: list[str], steps: int) -> dict:
    """One tiny run into ``out`` as ``rql-train`` makes it (its ``.hydra/config.yaml`` included); returns its
    summary and the step its fit started at."""
    cfg = compose_config(
        [
            f"paths.output_dir={out}",
            *TINY,
            f"trainer.max_steps={steps}",
            "callbacks.evaluation.num_episodes=1",
            "+callbacks.first_step._target_=tests.reliability.test_checkpoint_matrix.FirstStep",
            f"+callbacks.first_step.path={out}/first_step.txt",
            *overrides,
        ]
    )
    (out / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / ".hydra" / "config.yaml")
    summary = train(cfg)
    return {**summary, "first_step": int((out / "first_step.txt").read_text())}


def total(kind: str, steps: int) -> int:
    return steps + (ONLINE if kind == "online" else 0)


@pytest.fixture(scope="module")
def runs(cube_single_dataset, shard_dir, tmp_path_factory) -> dict[str, Path]:
    """One tiny run of each kind, trained once for the module: kind -> its ``last.ckpt``."""
    root = tmp_path_factory.mktemp("matrix")
    out = {}
    for kind in KINDS:
        fit(root / kind, run_overrides(kind, cube_single_dataset, shard_dir), STEPS)
        out[kind] = root / kind / "checkpoints" / "last.ckpt"
    return out


def replicas_of(ckpt: Path) -> list[tuple[int | None, int]]:
    """The checkpoint's (task, seed) replicas; empty for a single run."""
    hp = torch.load(ckpt, map_location="cpu", weights_only=False)["hyper_parameters"]
    seeds = hp.get("seeds")
    if seeds is None:
        return []
    return list(zip(hp.get("task_ids") or [None] * len(seeds), seeds, strict=True))


def key_of(task: int | None, seed: int) -> str:
    return f"seed{seed}" if task is None else f"task{task}/seed{seed}"


NUMBERS = ("success_rate", "return", "length", "episodes")


@pytest.fixture(scope="module")
def every_replica(runs, tmp_path_factory):
    """kind -> ``evaluate_checkpoint`` of its run's every replica and the directory it wrote, made once for the
    module (deterministic: the tests that compare against it need no second one)."""
    done: dict[str, tuple[dict, Path]] = {}

    def evaluated(kind: str) -> tuple[dict, Path]:
        if kind not in done:
            out = tmp_path_factory.mktemp(f"every-{kind}")
            done[kind] = (evaluate_checkpoint(str(runs[kind]), out, episodes=1, num_envs=1), out)
        return done[kind]

    return evaluated


@pytest.mark.parametrize("kind", KINDS)
def test_rql_eval_evaluates_every_replica_and_one_by_its_key(runs, every_replica, kind, tmp_path):
    ckpt = runs[kind]
    every, every_dir = every_replica(kind)
    assert every["step"] == total(kind, STEPS)
    assert json.loads((every_dir / "eval.json").read_text())["step"] == every["step"]
    pairs = replicas_of(ckpt)
    if not pairs:
        assert "replicas" not in every and 0.0 <= every["success_rate"] <= 1.0
        with pytest.raises(UserError, match=r"replica=seed0 is not a replica of .*it is a single run"):
            evaluate_checkpoint(str(ckpt), tmp_path / "one", episodes=1, num_envs=1, replica="seed0")
        return
    assert list(every["replicas"]) == [key_of(*p) for p in pairs] and every["seed"] == [s for _, s in pairs]
    assert every["success_rate"] == sum(r["success_rate"] for r in every["replicas"].values()) / len(pairs)
    assert json.loads((every_dir / "eval.json").read_text())["replicas"] == every["replicas"]
    task, seed = pairs[-1]
    one = evaluate_checkpoint(str(ckpt), tmp_path / "one", episodes=1, num_envs=1, replica=key_of(task, seed))
    assert one["seed"] == seed and "replicas" not in one
    assert {k: one[k] for k in NUMBERS} == every["replicas"][key_of(task, seed)]
    if task is not None:
        assert one["env"] == f"cube-single-singletask-task{task}-v0"


@pytest.mark.parametrize("kind", KINDS)
def test_resume_auto_continues_the_checkpoint(runs, kind, cube_single_dataset, shard_dir, tmp_path):
    import shutil

    run_dir = tmp_path / kind
    shutil.copytree(runs[kind].parent.parent, run_dir)  # the module's run stays as it was for the other tests
    summary = fit(run_dir, [*run_overrides(kind, cube_single_dataset, shard_dir), "resume=auto"], MORE)
    assert summary["first_step"] == total(kind, STEPS) and summary["step"] == total(kind, MORE)
    resumed = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert resumed["global_step"] == total(kind, MORE)


def test_a_replica_the_checkpoint_does_not_hold_is_one_line(runs, tmp_path):
    # docs/errors.md row 71
    with pytest.raises(UserError, match=r"replica=seed4 is not a replica of .*; its replicas: seed0, seed1"):
        evaluate_checkpoint(str(runs["seeds"]), tmp_path / "x", episodes=1, num_envs=1, replica="seed4")


def test_the_command_prints_each_replica(runs, tmp_path):
    args = [f"ckpt_path={runs['seeds']}", "eval.episodes=1", "eval.num_envs=1", f"hydra.run.dir={tmp_path}"]
    done = rql_train_here(args, tmp_path, command="rql-eval")
    assert done.returncode == 0, explain(done)
    assert "  seed0: success rate" in done.stdout and "  seed1: success rate" in done.stdout
    assert json.loads((tmp_path / "eval.json").read_text())["seed"] == [0, 1]


def test_single_runs_need_no_export_and_say_so_in_one_line(runs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        seed_export.main([str(runs["single"]), "0", str(tmp_path / "x.ckpt")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "single-seed run, not a seed-batched one; it needs no export" in err
    assert not (tmp_path / "x.ckpt").exists()


BATCHED = [k for k in KINDS if any(o.startswith("seeds=") for o in KINDS[k])]


@pytest.mark.parametrize("kind", BATCHED)
def test_an_exported_replica_evaluates_and_resumes_as_its_single_run(
    runs, every_replica, kind, cube_single_dataset, shard_dir, tmp_path, capsys
):
    task, seed = replicas_of(runs[kind])[-1]
    exported = tmp_path / "elsewhere" / "replica.ckpt"  # outside any run directory
    seed_export.main([str(runs[kind]), str(seed), str(exported), *(["--task", str(task)] if task else [])])
    assert capsys.readouterr().out.strip() == str(exported)
    origin = torch.load(exported, map_location="cpu", weights_only=False)["exported_from"]
    assert origin == {
        "ckpt_path": str(runs[kind]),
        "run_dir": str(runs[kind].parent.parent),
        "replica": key_of(task, seed),
        "task": task,
        "seed": seed,
    }

    batched, _ = every_replica(kind)
    alone = evaluate_checkpoint(str(exported), tmp_path / "alone", episodes=1, num_envs=1)
    assert alone["seed"] == seed and alone["step"] == STEPS and "replicas" not in alone
    assert {k: alone[k] for k in NUMBERS} == batched["replicas"][key_of(task, seed)]
    if task is not None:
        assert alone["env"] == f"cube-single-singletask-task{task}-v0"

    single = [o for o in run_overrides(kind, cube_single_dataset, shard_dir) if not o.startswith(("seeds=", "task."))]
    single += [f"seed={seed}", *([f"task.id={task}"] if task else [])]
    summary = fit(tmp_path / "continued", [*single, f"ckpt_path={exported}"], MORE)
    assert summary["first_step"] == STEPS and summary["step"] == MORE


def test_exporting_from_a_file_that_is_no_checkpoint_is_one_line(tmp_path, capsys):
    """The command's main, in this process: the command as a process is tests/modules/test_seed_export_command.py."""
    not_a_checkpoint = tmp_path / "notes.txt"
    not_a_checkpoint.write_text("not a checkpoint")
    with pytest.raises(SystemExit) as exit_:
        seed_export.main([str(not_a_checkpoint), "0", str(tmp_path / "x.ckpt")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: ckpt_path={not_a_checkpoint} is not a readable checkpoint (") and err.count("\n") == 1
    )
    assert not (tmp_path / "x.ckpt").exists()
