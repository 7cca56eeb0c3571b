"""Every setting of the schema refuses a value outside its range with one line naming key, problem and fix."""

from __future__ import annotations

import pytest

from rql_lightning.checks import check_config
from rql_lightning.config import compose_config
from rql_lightning.errors import UserError
from rql_lightning.schema import SETTINGS, Setting

# Each setting is looked up under a model/data choice that has it.
CONTEXT = {"model.q_agg": ["model=fql"], "model.normalize_q_loss": ["model=fql"]}


def compose(*overrides: str):
    return compose_config([*overrides, "paths.output_dir=/tmp/rql-schema-test"])


def _override(setting: Setting, value) -> str:
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return f"{setting.key}={text}"


def test_defaults_of_every_model_and_task_pass_the_schema():
    for model in ("rql", "fql", "bc"):
        for task in ("cube-single", "antmaze-giant", "puzzle-4x4", "humanoidmaze-large"):
            check_config(compose(f"model={model}", f"task={task}"))


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.key)
def test_every_setting_out_of_range_is_one_line_naming_it(setting: Setting):
    bad = setting.out_of_range()
    cfg = compose(*CONTEXT.get(setting.key, []), _override(setting, bad))
    with pytest.raises(UserError) as err:
        check_config(cfg)
    message = str(err.value)
    assert "\n" not in message
    if setting.key == "task.id":
        assert message.startswith(f"task.id={bad} is not a task of")
    else:
        assert message.startswith(f"{setting.key}="), message
        assert "; " in message, message  # the problem, then what to do


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("task.expectile=1.5", "task.expectile=1.5"),  # model.expectile reads it: name the key the user set
        ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps=0 must be >= 1;"),  # read by model.log_every
        ("model.expectile=1.5", "model.expectile=1.5 must be > 0 and < 1;"),
        ("task.expectile=1.0", "task.expectile=1.0 must be > 0 and < 1;"),
        ("task.discount=1.2", "task.discount=1.2 must be > 0 and <= 1;"),
        ("model.flow_steps=0", "model.flow_steps=0 must be >= 1;"),
        ("model.num_critics=0", "model.num_critics=0 must be >= 1;"),
        ("task.chunk_size=0", "task.chunk_size=0 must be >= 1;"),
        ("model.tau=-0.1", "model.tau=-0.1 must be > 0 and <= 1;"),
        ("model.ema=-1", "model.ema=-1 must be >= 0 and < 1;"),
        ("task.rho=-0.5", "task.rho=-0.5 must be >= 0;"),
        ("model.critic_hidden_dims=[512,0]", "model.critic_hidden_dims=[512,0] must be a list of positive"),
        ("trainer.precision=8-mixed", "trainer.precision=8-mixed must be one of"),
        ("trainer.precision=16-mixed", "trainer.precision=16-mixed is not supported on CPU"),
        ("data.device=cuda", "data.device=cuda but this torch build has no CUDA"),
    ],
)
def test_bad_values_name_the_problem_and_the_fix(override, expected):
    import torch

    if override == "data.device=cuda" and torch.version.cuda is not None:
        pytest.skip("this torch build has CUDA")
    if override == "trainer.precision=16-mixed" and torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(UserError) as err:
        check_config(compose(override))
    assert str(err.value).startswith(expected), str(err.value)


def test_zero_evaluation_episodes_means_no_evaluation():
    from rql_lightning.training import make_callbacks

    names = {type(c).__name__ for c in make_callbacks(compose("eval.episodes=0"))}
    assert "EvaluationCallback" not in names and "RunSummaryCallback" in names
    check_config(compose("eval.episodes=0"))


def test_the_schemas_virtual_states_are_the_losses():
    from rql_lightning import losses, schema

    assert schema.VIRTUAL_STATES == losses.VIRTUAL_STATES
