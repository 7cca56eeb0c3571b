"""The seed-batched update under DDP: each rank holds all seeds. (Compiled == eager with replicas:
tests/seeds/test_task_column_paths.py's compiled column, through the same update path.)"""

from __future__ import annotations

import copy

import pytest
import torch

from rql_lightning.data.datamodule import ArrayDataModule
from rql_lightning.data.windows import WindowStream, sampler_from_arrays
from rql_lightning.modules.rql import RQLModule
from rql_lightning.seeding import DRAW_STREAM, seeded_generator
from tests.runs import bare_trainer
from tests.training.test_ddp import BATCH, STEPS, H, SaveWeights, concat, synthetic_arrays

SMALL = dict(obs_dim=1, action_dim=1, chunk_size=1, flow_steps=4, num_critics=2, actor_hidden_dims=[32, 32])
SEEDS = [0, 1]


DDP_KWARGS = dict(
    obs_dim=3,
    action_dim=2,
    chunk_size=H,
    flow_steps=4,
    num_critics=3,
    actor_hidden_dims=[16, 16],
    critic_hidden_dims=[16, 16],
    log_every=1,
)


@pytest.mark.slow
def test_ddp_ranks_hold_all_seeds_and_each_seed_equals_its_union_run(tmp_path):
    """2 gloo processes x 2 seeds: ranks agree, and seed s equals one process fed both ranks' batches of seed s."""
    arrays = synthetic_arrays()
    model = RQLModule(**DDP_KWARGS, seeds=SEEDS)
    initial = copy.deepcopy(model.state_dict())
    datamodule = ArrayDataModule(arrays, chunk_size=H, batch_size=BATCH, seed=0)
    datamodule.seeds = SEEDS
    trainer = bare_trainer(STEPS, devices=2, callbacks=[SaveWeights(tmp_path)])
    trainer.fit(model, datamodule=datamodule)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"ranks differ in {key}"

    sampler = sampler_from_arrays(arrays, H, torch.device("cpu"))
    for i, seed in enumerate(SEEDS):
        torch.manual_seed(0)
        single = RQLModule(**DDP_KWARGS, seed=seed)
        single.load_state_dict({k: v[i] for k, v in initial.items()})
        opt = single.configure_optimizers()
        for step in range(STEPS):
            batches = [next(iter(WindowStream(sampler, BATCH, seed, rank, start=step))) for rank in (0, 1)]
            draws = [single.draw(BATCH, seeded_generator(seed, rank, step, DRAW_STREAM)) for rank in (0, 1)]
            single.update(concat(batches), concat(draws), opt)
        for key, value in single.state_dict().items():
            got = rank0[key][i]
            torch.testing.assert_close(got, value, rtol=1e-5, atol=1e-6, msg=f"seed {seed}: {key}")


@pytest.mark.slow
def test_global_batch_over_two_ranks_with_seeds_equals_each_seeds_one_process_full_batch(tmp_path):
    """data.global_batch_size with seeds: windows and draws of every seed split as in its own run, so seed s on
    2 ranks x BATCH equals one process of seed s with the full 2 x BATCH batch."""
    arrays = synthetic_arrays()
    model = RQLModule(**DDP_KWARGS, seeds=SEEDS)
    initial = copy.deepcopy(model.state_dict())
    datamodule = ArrayDataModule(arrays, chunk_size=H, batch_size=999, global_batch_size=2 * BATCH, seed=0)
    datamodule.seeds = SEEDS
    trainer = bare_trainer(STEPS, devices=2, callbacks=[SaveWeights(tmp_path)])
    trainer.fit(model, datamodule=datamodule)
    rank0 = torch.load(tmp_path / "rank0.pt")
    sampler = sampler_from_arrays(arrays, H, torch.device("cpu"))
    for i, seed in enumerate(SEEDS):
        torch.manual_seed(0)
        single = RQLModule(**DDP_KWARGS, seed=seed)
        single.load_state_dict({k: v[i] for k, v in initial.items()})
        opt = single.configure_optimizers()
        for step in range(STEPS):
            batch = next(iter(WindowStream(sampler, 2 * BATCH, seed, 0, start=step)))
            single.update(batch, single.draw(2 * BATCH, seeded_generator(seed, 0, step, DRAW_STREAM)), opt)
        for key, value in single.state_dict().items():
            got = rank0[key][i]
            torch.testing.assert_close(got, value, rtol=1e-5, atol=1e-6, msg=f"seed {seed}: {key}")
