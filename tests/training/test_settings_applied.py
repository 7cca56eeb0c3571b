"""Settings that change how a run computes are applied, not only accepted: ``tf32``, ``data.device=auto``, and the
``experiment=gpu_fast`` bundle, composed and built as far as a CPU machine can."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from rql_lightning.checks import check_config, check_machine
from rql_lightning.config import compose_config
from rql_lightning.errors import UserError
from tests.runs import train_tiny


@pytest.fixture
def matmul_precision():
    before = torch.get_float32_matmul_precision()
    yield
    torch.set_float32_matmul_precision(before)


def test_tf32_sets_the_matmul_precision(cube_single_dataset, tmp_path, matmul_precision):
    torch.set_float32_matmul_precision("highest")
    train_tiny(tmp_path / "run", [f"data.dataset_path={cube_single_dataset}", "tf32=true", "eval.episodes=0"])
    assert torch.get_float32_matmul_precision() == "high"


def test_data_device_auto_samples_on_the_cpu_without_a_gpu(cube_single_dataset):
    cfg = compose_config([f"data.dataset_path={cube_single_dataset}", "data.device=auto"])
    datamodule = instantiate(cfg.data, _convert_="all")
    assert datamodule.device == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_gpu_fast_composes_and_builds(cube_single_dataset):
    cfg = compose_config(["experiment=gpu_fast", f"data.dataset_path={cube_single_dataset}"])
    assert cfg.model.compile and cfg.model.compile_mode == "reduce-overhead" and cfg.tf32
    assert cfg.model.check_finite_every == cfg.trainer.log_every_n_steps == 1000
    check_config(cfg)  # every setting in range, wherever it will run
    if not torch.cuda.is_available():  # this machine cannot serve it: one line, before anything heavy
        with pytest.raises(
            UserError, match="trainer.accelerator=gpu but no GPU is visible; use trainer.accelerator=cpu"
        ):
            check_machine(cfg)
    cpu = compose_config(["experiment=gpu_fast", f"data.dataset_path={cube_single_dataset}", "trainer=cpu"])
    cpu.data.device = "auto"
    datamodule = instantiate(cpu.data, _convert_="all")
    obs_dim, action_dim = datamodule.dims()
    model = instantiate(cpu.model, obs_dim=obs_dim, action_dim=action_dim, _convert_="all")
    assert model.hparams.compile and model.hparams.check_finite_every == 1000
