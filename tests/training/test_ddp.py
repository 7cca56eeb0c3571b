"""DDP on CPU (gloo, 2 real processes): ranks stay identical and equal one process fed the union."""

from __future__ import annotations

import copy

import lightning as L
import numpy as np
import pytest
import torch

from rql_lightning.data.datamodule import ArrayDataModule
from rql_lightning.data.windows import OfflineArrays, WindowStream, sampler_from_arrays
from rql_lightning.modules.rql import RQLModule
from rql_lightning.seeding import DRAW_STREAM, seeded_generator
from tests.runs import bare_trainer

SEED, BATCH, STEPS, H = 3, 16, 4, 2


def synthetic_arrays(n_episodes: int = 12, length: int = 15) -> OfflineArrays:
    rng = np.random.default_rng(0)
    n = n_episodes * length
    terminals = np.zeros(n, np.float32)
    terminals[length - 1 :: length] = 1
    rewards = -(rng.random(n) < 0.7).astype(np.float32)
    return OfflineArrays(
        observations=rng.normal(size=(n, 3)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
        rewards=rewards,
        terminals=terminals,
        masks=(rewards != 0).astype(np.float32),
    )


def small_module() -> RQLModule:
    torch.manual_seed(0)
    return RQLModule(
        obs_dim=3,
        action_dim=2,
        chunk_size=H,
        flow_steps=4,
        num_critics=3,
        actor_hidden_dims=[16, 16],
        critic_hidden_dims=[16, 16],
        seed=SEED,
        log_every=1,
    )


class SaveWeights(L.Callback):
    def __init__(self, out_dir):
        self.out_dir = out_dir

    def on_train_end(self, trainer, pl_module):
        torch.save(pl_module.state_dict(), self.out_dir / f"rank{trainer.global_rank}.pt")


def first_batch(sampler, rank: int, step: int):
    return next(iter(WindowStream(sampler, BATCH, SEED, rank, start=step)))


def concat(items):
    cls = type(items[0])
    return cls(**{k: torch.cat([getattr(i, k) for i in items]) for k in vars(items[0])})


@pytest.mark.slow
def test_ddp_two_processes_match_single_process_on_union_of_batches(tmp_path):
    arrays = synthetic_arrays()
    model = small_module()
    initial = copy.deepcopy(model.state_dict())
    trainer = bare_trainer(STEPS, devices=2, callbacks=[SaveWeights(tmp_path)])
    trainer.fit(model, datamodule=ArrayDataModule(arrays, chunk_size=H, batch_size=BATCH, seed=SEED))
    rank0 = torch.load(tmp_path / "rank0.pt")
    rank1 = torch.load(tmp_path / "rank1.pt")
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"ranks differ in {key}"

    # One process, fed both ranks' batches and draws of every step as one batch.
    single = small_module()
    single.load_state_dict(initial)
    opt = single.configure_optimizers()
    sampler = sampler_from_arrays(arrays, H, torch.device("cpu"))
    for step in range(STEPS):
        batches = [first_batch(sampler, rank, step) for rank in (0, 1)]
        draws = [single.draw(BATCH, seeded_generator(SEED, rank, step, DRAW_STREAM)) for rank in (0, 1)]
        single.update(concat(batches), concat(draws), opt)
    moved = 0
    for key, value in single.state_dict().items():
        torch.testing.assert_close(rank0[key], value, rtol=1e-5, atol=1e-6, msg=f"DDP != union run in {key}")
        moved += int(not torch.equal(value, initial[key]))
    assert moved > 0
    # The two ranks sampled different windows.
    a, b = (first_batch(sampler, r, 0) for r in (0, 1))
    assert not torch.equal(a.observations, b.observations)


def _fit(model, datamodule, devices: int, out_dir) -> None:
    trainer = bare_trainer(STEPS, devices=devices, callbacks=[SaveWeights(out_dir)])
    trainer.fit(model, datamodule=datamodule)


@pytest.mark.slow
def test_global_batch_split_over_two_ranks_equals_one_process_with_the_full_batch(tmp_path):
    """data.global_batch_size: 2 ranks x 16 train exactly like 1 process x 32 (windows and draws alike)."""
    arrays = synthetic_arrays()
    (tmp_path / "ddp").mkdir()
    (tmp_path / "one").mkdir()
    model = small_module()
    initial = copy.deepcopy(model.state_dict())
    split = ArrayDataModule(arrays, chunk_size=H, batch_size=999, global_batch_size=2 * BATCH, seed=SEED)
    _fit(model, split, devices=2, out_dir=tmp_path / "ddp")
    single = small_module()
    single.load_state_dict(initial)
    _fit(single, ArrayDataModule(arrays, chunk_size=H, batch_size=2 * BATCH, seed=SEED), 1, tmp_path / "one")
    ddp, one = torch.load(tmp_path / "ddp" / "rank0.pt"), torch.load(tmp_path / "one" / "rank0.pt")
    moved = 0
    for key, value in one.items():
        torch.testing.assert_close(
            ddp[key], value, rtol=1e-5, atol=1e-6, msg=f"global-batch DDP != one process in {key}"
        )
        moved += int(not torch.equal(value, initial[key]))
    assert moved > 0
