"""S seeds in one fused update == S single-seed runs: same windows, same draws, same weights per seed."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from rql_lightning.data.datamodule import ArrayDataModule
from rql_lightning.modules.fql import FQLModule
from rql_lightning.modules.rql import RQLModule
from tests.runs import bare_trainer
from tests.training.test_ddp import synthetic_arrays

SEEDS, STEPS, BATCH, H = [3, 5, 8], 4, 16, 2
KWARGS = dict(
    obs_dim=3,
    action_dim=2,
    chunk_size=H,
    flow_steps=4,
    num_critics=3,
    actor_hidden_dims=[16, 16],
    critic_hidden_dims=[16, 16],
    log_every=1,
)


def fit(model: L.LightningModule, seed: int, seeds: list[int] | None = None) -> L.LightningModule:
    datamodule = ArrayDataModule(synthetic_arrays(), chunk_size=H, batch_size=BATCH, seed=seed)
    datamodule.seeds = seeds
    trainer = bare_trainer(STEPS)
    trainer.fit(model, datamodule=datamodule)
    return model


# FQL at alpha 10 (its code default before it became the cube/scene value, 300): the absolute tolerances below
# are sized for gradients of this scale; a 30x larger distillation term scales Adam's second moments by ~1e3.
METHOD_KWARGS = {FQLModule: {"alpha": 10.0}}


def single_run(cls: type, seed: int) -> L.LightningModule:
    torch.manual_seed(seed)  # what seed_everything(seed) leaves for the model's initialisation
    return fit(cls(**KWARGS, **METHOD_KWARGS.get(cls, {}), seed=seed), seed)


def adam_moments(module: L.LightningModule) -> list[torch.Tensor]:
    state = module.trainer.optimizers[0].state
    return [t for p in state.values() for t in (p["exp_avg"], p["exp_avg_sq"])]


@pytest.mark.parametrize("cls", [RQLModule, FQLModule])
def test_seed_batched_run_equals_single_seed_runs(cls):
    batched = fit(cls(**KWARGS, **METHOD_KWARGS.get(cls, {}), seeds=SEEDS), seed=0, seeds=SEEDS)
    stacked = batched.state_dict()
    moments = adam_moments(batched)
    for i, seed in enumerate(SEEDS):
        single = single_run(cls, seed)
        for key, value in single.state_dict().items():
            torch.testing.assert_close(stacked[key][i], value, rtol=1e-5, atol=1e-6, msg=f"seed {seed}: {key}")
        for a, b in zip(moments, adam_moments(single), strict=True):
            torch.testing.assert_close(a[i], b, rtol=1e-5, atol=1e-7, msg=f"seed {seed}: Adam moments")
    # The seeds are independent runs: their weights differ from one another.
    weight = stacked["policy.velocity_net.weights.0"]
    assert not torch.allclose(weight[0], weight[1])


def test_seed_s_sees_the_windows_of_a_run_with_seed_s():
    datamodule = ArrayDataModule(synthetic_arrays(), chunk_size=H, batch_size=BATCH, seed=0)
    datamodule.setup()
    stream = datamodule.make_stream(rank=1, start=7)
    stream.replicas = [(0, s) for s in SEEDS]
    stacked = stream.batch(7)
    for i, seed in enumerate(SEEDS):
        alone = ArrayDataModule(synthetic_arrays(), chunk_size=H, batch_size=BATCH, seed=seed)
        alone.setup()
        one = alone.make_stream(rank=1, start=7).batch(7)
        for key, value in vars(one).items():
            assert torch.equal(getattr(stacked, key)[i], value), (seed, key)


def test_one_batched_policy_call_gives_each_seeds_own_actions():
    batched = RQLModule(**KWARGS, seeds=SEEDS)
    with torch.no_grad():  # the EMA actors differ per seed after training; make them differ here
        for p in batched.ema_policy.parameters():
            p.add_(0.1 * torch.randn_like(p))
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(len(SEEDS), 5, 3, generator=g)
    noise = torch.randn(len(SEEDS), 5, H * 2, generator=g)
    chunks = batched.act(obs, noise)  # (S, N, h, A)
    assert chunks.shape == (len(SEEDS), 5, H, 2)
    for i, seed in enumerate(SEEDS):
        alone = batched.replica(i)
        assert alone.hparams.seed == seed
        torch.testing.assert_close(chunks[i], alone.sample_chunks(obs[i], noise[i]), rtol=1e-6, atol=1e-7)
    assert not torch.allclose(chunks[0], chunks[1])
