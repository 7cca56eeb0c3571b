"""Every experiment composes with every data source, logger and trainer choice, and instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

from rql_lightning.config import CONF_DIR, compose_config

CONF = Path(CONF_DIR)
EXPERIMENTS = [None, *sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))]
DATA = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))
DATA_ARGS = {"minari": ["data.dataset_id=rql/cube-single-play-task1-v0"]}


def compose(*overrides: str):
    return compose_config([*overrides, "paths.output_dir=/tmp/rql-compose-test"])


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_with_data_source_and_instantiates(experiment, data):
    overrides = [f"data={data}", *DATA_ARGS.get(data, [])]
    if experiment:
        overrides.append(f"experiment={experiment}")
    cfg = compose(*overrides)
    datamodule = instantiate(cfg.data, _convert_="all")
    assert datamodule.batch_size == cfg.data.batch_size
    model = instantiate(cfg.model, obs_dim=5, action_dim=2, _convert_="all")
    assert model.hparams.chunk_size == cfg.task.chunk_size
    if cfg.trainer.accelerator != "gpu":
        instantiate(cfg.trainer, logger=False)


@pytest.mark.parametrize("logger", sorted(p.stem for p in (CONF / "logger").glob("*.yaml")))
def test_logger_choice_builds_its_loggers(logger, tmp_path):
    from rql_lightning.training import make_loggers

    extra = ["logger.wandb.offline=true"] if logger == "wandb" else []
    cfg = compose_config([f"logger={logger}", f"paths.output_dir={tmp_path}", *extra])
    names = [type(lg).__name__ for lg in make_loggers(cfg)]
    expected = {
        "tensorboard": ["RunTensorBoardLogger"],
        "csv": ["CSVLogger"],
        "wandb": ["WandbLogger"],
        "many": ["RunTensorBoardLogger", "CSVLogger"],
    }[logger]
    assert names == expected


@pytest.mark.parametrize(
    ("trainer", "accelerator", "devices", "strategy"),
    [
        ("default", "auto", 1, None),
        ("cpu", "cpu", 1, None),
        ("gpu", "gpu", 1, None),
        ("ddp", "gpu", 4, "ddp"),
        ("ddp_sim", "cpu", 2, "ddp"),
    ],
)
def test_trainer_choice_sets_accelerator_devices_strategy(trainer, accelerator, devices, strategy):
    cfg = compose(f"trainer={trainer}")
    assert (cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.get("strategy")) == (
        accelerator,
        devices,
        strategy,
    )
    assert cfg.trainer.plugins[0]._target_.endswith("AtomicCheckpointIO")  # every choice keeps atomic checkpoints


def test_debug_config_is_tiny_short_eager_and_checks_anomalies():
    cfg = compose("debug=default")
    assert cfg.trainer.max_steps == 10 and cfg.trainer.detect_anomaly is True
    assert cfg.model.compile is False and max(cfg.model.critic_hidden_dims) <= 32
    assert cfg.trainer.accelerator == "cpu"
