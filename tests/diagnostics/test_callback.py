"""The diagnostics callback in a real Trainer on real OGBench data: on schedule, on a fixed -val batch, and free
(no tensor work, no host sync) on every other batch."""

from __future__ import annotations

import csv
import math

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger

from rql_lightning.callbacks import premise_diagnostics as diag_callback
from rql_lightning.callbacks.premise_diagnostics import DiagnosticsCallback, DiagnosticsError
from rql_lightning.config import compose_config
from rql_lightning.data.datamodule import ArrayDataModule
from rql_lightning.data.ogbench_datamodule import OGBenchDataModule
from rql_lightning.modules.rql import RQLModule

TASK = "cube-single-play-singletask-task1-v0"
SYNCS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


def tiny_module(datamodule, mode: str = "reversal") -> RQLModule:
    obs_dim, action_dim = datamodule.dims()
    return RQLModule(
        obs_dim,
        action_dim,
        chunk_size=5,
        flow_steps=4,
        num_critics=2,
        actor_hidden_dims=[32, 32],
        critic_hidden_dims=[32, 32],
        virtual_states=mode,
        log_every=1000,
    )


def trainer(tmp_path, callback, steps: int) -> L.Trainer:
    return L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(tmp_path, name="", version=""),
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


@pytest.fixture
def datamodule(cube_single_dataset):
    return OGBenchDataModule(TASK, chunk_size=5, batch_size=32, dataset_path=str(cube_single_dataset), download=False)


def test_diagnostics_run_on_schedule_only_and_add_no_host_sync_elsewhere(datamodule, tmp_path, monkeypatch):
    calls: list[int] = []
    real = diag_callback.premise_diagnostics

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(diag_callback, "premise_diagnostics", counted)
    syncs = {"n": 0, "inside": False}
    for name in SYNCS:
        original = getattr(torch.Tensor, name)

        def wrapped(self, *args, _original=original, **kwargs):
            if syncs["inside"]:
                syncs["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapped)

    callback = DiagnosticsCallback(diag_every=3, batch_size=64, seed=0)
    hook = callback.on_train_batch_end
    per_batch: dict[int, tuple[int, int]] = {}  # batches done -> (diagnostics calls, host syncs) in the hook

    def observed(trainer, *args):
        before_calls, syncs["n"], syncs["inside"] = len(calls), 0, True
        try:
            hook(trainer, *args)
        finally:
            syncs["inside"] = False
        per_batch[int(trainer.fit_loop.total_batch_idx) + 1] = (len(calls) - before_calls, syncs["n"])

    callback.on_train_batch_end = observed
    fit = trainer(tmp_path, callback, steps=7)
    fit.fit(tiny_module(datamodule, "forward"), datamodule=datamodule)

    assert sorted(per_batch) == list(range(1, 8))
    for batch, (n_calls, n_syncs) in per_batch.items():
        if batch % 3:
            assert (n_calls, n_syncs) == (0, 0), batch
        else:
            assert n_calls == 1 and n_syncs >= 1, batch  # the counter does see the one sync of a due batch
    with open(tmp_path / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("diag/noise_sliced_w1")]
    assert [int(r["step"]) for r in rows] == [3, 6]
    for key in ("round_trip_max_d1", "round_trip_mean_du", "noise_std", "q_ratio", "val_critic_loss", "val_actor_loss"):
        assert all(math.isfinite(float(r[f"diag/{key}"])) for r in rows), key
    assert set(callback.latest) == {k for k in rows[0] if k.startswith("diag/")}
    assert fit.callback_metrics["diag/val_critic_loss"].item() == pytest.approx(callback.latest["diag/val_critic_loss"])


def test_the_held_out_batch_is_fixed_and_comes_from_the_val_split(datamodule):
    datamodule.setup("fit")
    module = tiny_module(datamodule)
    first = DiagnosticsCallback(diag_every=1, batch_size=16, seed=3).draw_fixed(datamodule, module)
    again = DiagnosticsCallback(diag_every=1, batch_size=16, seed=3).draw_fixed(datamodule, module)
    assert torch.equal(first[0][0].observations, again[0][0].observations) and torch.equal(first[1], again[1])
    val_obs = torch.from_numpy(datamodule.val_arrays.observations)
    train_obs = torch.from_numpy(datamodule.load_arrays().observations)
    # Every held-out observation is a row of the -val split (and the two splits share none here).
    in_val = (first[0][0].observations[:, None, :] == val_obs[None]).all(-1).any(-1)
    in_train = (first[0][0].observations[:, None, :] == train_obs[None]).all(-1).any(-1)
    assert bool(in_val.all()) and not bool(in_train.any())
    # The validation losses are the module's own losses on that batch.
    measured = DiagnosticsCallback(diag_every=1, batch_size=16, seed=3)
    measured.fixed = first
    critic_loss, actor_loss, _ = module.compute_losses(first[0][0], first[3])
    numbers = measured.measure(module)
    assert numbers["diag/val_critic_loss"] == pytest.approx(critic_loss.item(), rel=1e-6)
    assert numbers["diag/val_actor_loss"] == pytest.approx(actor_loss.item(), rel=1e-6)


def test_diagnostics_without_a_val_split_are_a_user_error(tmp_path):
    from rql_lightning.data.windows import OfflineArrays

    n = 40
    arrays = OfflineArrays(
        observations=torch.randn(n, 3).numpy(),
        actions=(torch.rand(n, 2) * 1.8 - 0.9).numpy(),
        rewards=torch.zeros(n).numpy(),
        terminals=torch.tensor([0.0] * 19 + [1.0] + [0.0] * 19 + [1.0]).numpy(),
        masks=torch.ones(n).numpy(),
    )
    datamodule = ArrayDataModule(arrays, chunk_size=5, batch_size=8)
    with pytest.raises(DiagnosticsError, match=r"callbacks.diagnostics.diag_every=2 needs the dataset's -val split"):
        trainer(tmp_path, DiagnosticsCallback(diag_every=2), steps=2).fit(
            tiny_module(datamodule), datamodule=datamodule
        )


def test_config_defaults_are_rql_and_no_diagnostics():
    cfg = compose_config(["paths.output_dir=/tmp/rql-diag-test"])
    assert cfg.model.virtual_states == "reversal"
    assert cfg.callbacks.diagnostics.diag_every == 0
    assert instantiate(cfg.callbacks.diagnostics).diag_every == 0
    cfg = compose_config(["paths.output_dir=/tmp/rql-diag-test", "model.virtual_states=interpolation"])
    model = instantiate(cfg.model, obs_dim=5, action_dim=2, _convert_="all")
    assert model.hparams.virtual_states == "interpolation"
