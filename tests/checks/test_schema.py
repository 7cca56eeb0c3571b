"""Every declared setting refuses a value outside its range with one line naming key, problem and fix; a key that
reads another is not set apart on the command line; a sweep is checked, every job, before Hydra launches one."""

from __future__ import annotations

import pytest

from rql_lightning.checks import SETTINGS, Setting, check_config, check_machine, check_overrides
from rql_lightning.config import compose_config
from rql_lightning.errors import UserError

# Each setting is looked up under a model/data choice where the user sets it (RQL reads expectile and rho
# from the task; FQL sets its own).
CONTEXT = {key: ["model=fql"] for key in ("model.normalize_q_loss", "model.expectile", "model.rho")}


def compose(*overrides: str):
    return compose_config([*overrides, "paths.output_dir=/tmp/rql-schema-test"])


def _override(setting: Setting, value) -> str:
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return f"{setting.key}={text}"


def out_of_range(setting: Setting):
    """A value this setting refuses (for the property test over the table)."""
    if setting.choices is not None:
        return "not-a-choice"
    if setting.kind is bool:
        return 3
    if setting.low is not None:
        return setting.low if setting.open_low else setting.low - 1
    return setting.high if setting.open_high else setting.high + 1


def test_defaults_of_every_model_and_task_pass_the_schema():
    for model in ("rql", "fql", "bc"):
        for task in ("cube-single", "antmaze-giant", "puzzle-4x4", "humanoidmaze-large"):
            check_config(compose(f"model={model}", f"task={task}"))


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.key)
def test_every_setting_out_of_range_is_one_line_naming_it(setting: Setting):
    bad = out_of_range(setting)
    cfg = compose(*CONTEXT.get(setting.key, []), _override(setting, bad))
    with pytest.raises(UserError) as err:
        check_config(cfg)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{setting.key}="), message
    assert "; " in message, message  # the problem, then what to do


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("task.expectile=1.5", "task.expectile=1.5"),  # model.expectile reads it: name the key the user set
        ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps=0 must be >= 1;"),  # read by model.log_every
        ("task.id=7", "task.id=7 must be >= 1 and <= 5; OGBench single-task environments have tasks 1 2 3 4 5"),
        ("task.fql.q_agg=max", "task.fql.q_agg=max must be one of mean, min;"),
        ("online.utd=0", "online.utd=0 must be >= 1;"),
        ("trainer.max_steps=-1 online.steps=10", "trainer.max_steps=-1 must be >= 0 with online.steps=10;"),
        ("seeds=[0,1] online.steps=10", "seeds=[0,1] with online.steps=10: a seed-batched run is offline only;"),
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
    # docs/errors.md rows 31 and 32
    import torch

    if override == "data.device=cuda" and torch.version.cuda is not None:
        pytest.skip("this torch build has CUDA")
    if override == "trainer.precision=16-mixed" and torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(UserError) as err:
        cfg = compose(*override.split())
        check_config(cfg)
        check_machine(cfg)
    assert str(err.value).startswith(expected), str(err.value)


def test_zero_evaluation_episodes_means_no_evaluation():
    from rql_lightning.training import make_callbacks

    names = {type(c).__name__ for c in make_callbacks(compose("eval.episodes=0"))}
    assert "EvaluationCallback" not in names and "RunSummaryCallback" in names
    check_config(compose("eval.episodes=0"))


def test_the_checks_virtual_states_are_the_losses():
    from rql_lightning import checks, losses

    assert checks.VIRTUAL_STATES == losses.VIRTUAL_STATES


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["model.alpha=0.3"],
            "model.alpha=0.3 sets apart a value the config reads from task.alpha; set task.alpha=0.3 instead",
        ),
        (["model=fql", "model.alpha=30"], "model.alpha=30 sets apart a value the config reads from task.fql.alpha;"),
        (["model.expectile=0.8"], "model.expectile=0.8 sets apart a value the config reads from task.expectile;"),
        (["model.chunk_size=3"], "model.chunk_size=3 sets apart a value the config reads from task.chunk_size;"),
        (["model.log_every=7"], "model.log_every=7 sets apart a value the config reads from trainer.log_every_n_steps"),
        (
            ["callbacks.evaluation.num_episodes=3"],
            "callbacks.evaluation.num_episodes=3 sets apart a value the config "
            "reads from eval.episodes; set eval.episodes=3 instead",
        ),
        (["data.seed=4"], "data.seed=4 sets apart a value the config reads from seed; set seed=4 instead"),
    ],
)
def test_a_key_that_reads_another_cannot_be_set_apart(overrides, expected):
    with pytest.raises(UserError) as err:
        check_overrides(overrides)
    assert str(err.value).startswith(expected), str(err.value)


def test_the_key_a_value_is_read_from_is_set_once_and_reaches_the_model():
    check_overrides(["task.alpha=0.3", "model=fql", "task.fql.alpha=30", "model.expectile=0.6", "eval.episodes=3"])
    rql = compose("task.alpha=0.3")
    assert (rql.model.alpha, rql.task.alpha) == (0.3, 0.3)
    fql = compose("model=fql", "task.fql.alpha=30", "model.expectile=0.6")  # FQL's own expectile is its own key
    assert (fql.model.alpha, fql.model.expectile) == (30, 0.6)
