"""The bad-input catalogue (docs/errors.md): each case is one clear line, exit code 2, no traceback.

Messages are checked in-process; one real `rql-train` process checks the exit-code contract. The data
cases live in tests/data/, the schema's in tests/checks/test_schema.py, Hydra's own in tests/cli/test_train.py.
"""

from __future__ import annotations

import os
import stat

import pytest
import torch

from rql_lightning.checks import check_config, check_machine, read_checkpoint
from rql_lightning.config import compose_config
from rql_lightning.errors import UserError
from rql_lightning.training import train
from tests.runs import TRACEBACK, explain, rql_train, rql_train_here

TINY_MODEL = [
    "model.num_critics=2",
    "model.actor_hidden_dims=[16]",
    "model.critic_hidden_dims=[16]",
    "data.batch_size=16",
]


def one_line_error(proc) -> str:
    assert proc.returncode == 2, explain(proc)
    assert TRACEBACK not in proc.stderr, explain(proc)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, explain(proc)
    return errors[0]


@pytest.mark.slow
def test_rql_train_bad_value_exits_2_with_one_line_and_no_traceback(tmp_path):
    """The exit-code contract, on a real process; the messages themselves are checked in-process below."""
    proc = rql_train(["task.id=7", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, timeout=120)
    assert one_line_error(proc) == (
        "error: task.id=7 must be >= 1 and <= 5; OGBench single-task environments have tasks 1 2 3 4 5"
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.max_steps=-5", "trainer.max_steps=-5 must be >= 1; a positive number of steps (or -1"),
        ("model.actor_lr=-0.001", "model.actor_lr=-0.001 must be > 0"),
        ("trainer.devices=0", "trainer.devices=0 must be >= 1"),
        ("trainer.accelerator=gpu", "no GPU is visible; use trainer.accelerator=cpu"),
    ],
)
def test_bad_settings_are_one_line_user_errors(override, expected):
    # docs/errors.md rows 29 and 30
    if override == "trainer.accelerator=gpu" and torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(UserError) as err:
        cfg = compose_config([override, "paths.output_dir=/tmp/unused"])
        check_config(cfg)
        check_machine(cfg)
    assert expected in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_an_error_inside_hydra_instantiation_comes_out_as_the_users_line(capsys, tmp_path):
    """The evaluation callback refuses an unknown env while Hydra instantiates it: the one-line path unwraps
    Hydra's InstantiationException to the user's error (docs/errors.md row 59)."""
    from rql_lightning.cli.common import user_errors_as_one_line

    cfg = compose_config(["callbacks.evaluation.env_name=nope-v0", f"paths.output_dir={tmp_path}", *TINY_MODEL])
    from rql_lightning.training import make_callbacks

    with pytest.raises(SystemExit) as exit_:
        user_errors_as_one_line(lambda: make_callbacks(cfg))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "env_name='nope-v0' is not an OGBench single-task env id or dataset name; use one like" in err


@pytest.mark.slow
def test_unwritable_output_dir(tmp_path):
    # docs/errors.md row 60
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: use a path under a regular file instead
            target = tmp_path / "a-file" / "run"
            (tmp_path / "a-file").write_text("")
        else:
            target = locked / "run"
        proc = rql_train_here([f"hydra.run.dir={target}"], cwd=tmp_path)
    finally:
        locked.chmod(stat.S_IRWXU)
    assert "cannot create the output directory" in one_line_error(proc)


def test_unwritable_output_dir_check_names_the_fix(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UserError, match=r"cannot write to the output directory .*hydra\.run\.dir"):
        train(compose_config([f"paths.output_dir={tmp_path / 'a-file' / 'run'}"]))


def test_checkpoint_from_another_task_or_corrupt(tmp_path):
    # docs/errors.md rows 35, 36 and 39
    other = tmp_path / "other.ckpt"
    hp = {"obs_dim": 40, "action_dim": 5, "chunk_size": 5}
    torch.save({"hyper_parameters": hp, "state_dict": {}, "global_step": 3}, other)
    with pytest.raises(UserError, match=r"does not fit this run: obs_dim=40 in the checkpoint, 28 here \(obs/action"):
        read_checkpoint(other, {**hp, "obs_dim": 28})
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(other.read_bytes()[:100])
    with pytest.raises(UserError, match="is not a readable checkpoint"):
        read_checkpoint(corrupt, {"obs_dim": 28})
    not_lightning = tmp_path / "weights.pt"
    torch.save({"weights": torch.zeros(2)}, not_lightning)
    with pytest.raises(UserError, match="is not a Lightning checkpoint"):
        read_checkpoint(not_lightning)


def test_config_checks_accept_the_defaults():
    check_config(compose_config(["paths.output_dir=/tmp/unused"]))


@pytest.mark.slow
def test_divergence_stops_with_step_and_term_and_keeps_last_good_checkpoint(cube_single_dataset, tmp_path):
    run = tmp_path / "run"
    proc = rql_train_here(
        [
            f"data.dataset_path={cube_single_dataset}",
            f"hydra.run.dir={run}",
            "model.actor_lr=1e30",
            "model.critic_lr=1e30",
            "trainer.max_steps=50",
            "callbacks.checkpoint.every_n_train_steps=1",
            "~callbacks.evaluation",
            *TINY_MODEL,
        ],
        cwd=tmp_path,
    )
    line = one_line_error(proc)
    assert "non-finite" in line and "step " in line and "model.skip_nonfinite=true" in line
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


@pytest.mark.slow
def test_a_failed_start_leaves_an_existing_run_untouched(cube_single_dataset, tmp_path):
    """Bad input on the command line of an existing run: its config record, summary and checkpoints stay byte
    for byte as they were (the check runs before Hydra rewrites .hydra/config.yaml)."""
    from tests.runs import TINY

    run_dir = tmp_path / "run"
    base = [f"data.dataset_path={cube_single_dataset}", *TINY, "eval.episodes=0", f"hydra.run.dir={run_dir}"]
    assert rql_train_here([*base, "trainer.max_steps=10"], cwd=tmp_path).returncode == 0
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and not p.name.endswith(".log")}
    assert any(p.suffix == ".ckpt" for p in before) and (run_dir / ".hydra" / "config.yaml") in before
    proc = rql_train_here([*base, "trainer.max_steps=20", "task.expectile=1.5", "resume=auto"], cwd=tmp_path)
    assert one_line_error(proc).startswith("error: task.expectile=1.5 must be > 0 and < 1")
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and not p.name.endswith(".log")}
    assert after == before
