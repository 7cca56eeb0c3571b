"""A seed-batched run is evaluated as S runs: each seed the episodes and noise of its own run, published and
recorded per seed (``seed<s>/eval/*``, ``<run>/seed<s>/summary.json``), all through one batched policy call."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from rql_lightning.config import compose_config
from rql_lightning.evaluator import evaluate
from rql_lightning.modules.rql import RQLModule
from rql_lightning.results import aggregate, load_runs
from rql_lightning.training import train
from tests.envs.scripted import ACT_DIM, ENV, scripted_policy
from tests.runs import TINY, scalars

SEEDS = [3, 5]
KW = dict(obs_dim=28, action_dim=ACT_DIM, chunk_size=1, flow_steps=2, num_critics=2)
KW.update(actor_hidden_dims=[16], critic_hidden_dims=[16], log_every=1)
T = 60


class NoisyScriptedRQL(RQLModule):
    """The scripted controller plus 0.2 x the flow actor's sample: outcomes depend on weights, env seed and noise."""

    vmap_policy = False  # host code (numpy) in the policy: replicas act one after another

    def sample_chunks(self, obs, noise):
        scripted = torch.as_tensor(scripted_policy(obs.cpu().numpy()))
        return scripted + (0.2 * super().sample_chunks(obs, noise)).double()


class NoisyScriptedSeeds(RQLModule):
    """The same policy for every seed of a seed batch, all seeds in one call."""

    calls: list[tuple[int, ...]]

    def act(self, obs, noise):
        self.calls.append(tuple((noise != 0).any(dim=-1).sum(dim=1).tolist()))  # rows of each seed in this call
        flat = obs.reshape(-1, obs.shape[-1]).cpu().numpy()
        scripted = torch.as_tensor(scripted_policy(flat)).reshape(*obs.shape[:2], 1, ACT_DIM)
        return scripted + 0.2 * super().act(obs, noise).double()


def test_each_seed_gets_the_episodes_and_noise_of_its_own_run():
    batched = NoisyScriptedSeeds(**KW, seeds=SEEDS)
    batched.calls = []
    combined = evaluate(batched, ENV, num_episodes=3, num_envs=1, env_kwargs=dict(max_episode_steps=T))
    per_seed = {s: combined[f"seed{s}"] for s in SEEDS}
    assert all(sum(c) > 1 for c in batched.calls[:3])  # the seeds' rows went through one call per round
    lengths = []
    for seed in SEEDS:
        alone = NoisyScriptedRQL(**KW, seed=seed)
        alone.load_state_dict(batched.replica(SEEDS.index(seed)).state_dict())
        (single,) = evaluate(alone, ENV, num_episodes=3, seed=seed, env_kwargs=dict(max_episode_steps=T)).values()
        got = per_seed[seed]
        np.testing.assert_array_equal(got.episode_ids, [0, 1, 2])
        np.testing.assert_array_equal(got.episode_successes, single.episode_successes)
        np.testing.assert_array_equal(got.episode_returns, single.episode_returns)
        np.testing.assert_array_equal(got.episode_lengths, single.episode_lengths)
        lengths += single.episode_lengths.tolist()
    assert len(set(lengths)) > 1  # not a trivial agreement: some episodes succeed, at different steps


@pytest.mark.slow
def test_a_method_that_overrides_act_is_evaluated_through_its_own_act_per_seed():
    batched = NoisyScriptedRQL(**KW, seeds=SEEDS)
    combined = evaluate(batched, ENV, num_episodes=3, num_envs=2, env_kwargs=dict(max_episode_steps=T))
    per_seed = {s: combined[f"seed{s}"] for s in SEEDS}
    lengths = []
    for seed in SEEDS:
        alone = batched.replica(SEEDS.index(seed))
        (single,) = evaluate(alone, ENV, num_episodes=3, seed=seed, env_kwargs=dict(max_episode_steps=T)).values()
        np.testing.assert_array_equal(per_seed[seed].episode_returns, single.episode_returns)
        np.testing.assert_array_equal(per_seed[seed].episode_lengths, single.episode_lengths)
        lengths += single.episode_lengths.tolist()
    assert len(set(lengths)) > 1  # the scripted part of its act succeeds, at different steps


def run(dataset: Path, out: Path, *extra: str) -> dict:
    cfg = compose_config(
        [
            f"data.dataset_path={dataset}",
            f"paths.output_dir={out}",
            *TINY,
            "trainer.max_steps=4",
            "callbacks.evaluation.every_n_steps=2",
            "callbacks.evaluation.env_kwargs.max_episode_steps=40",
            *extra,
        ]
    )
    (out / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, out / ".hydra" / "config.yaml")  # what a Hydra job leaves, so summaries hold the config
    return train(cfg)


@pytest.fixture(scope="module")
def runs(cube_single_dataset, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("seed-eval")
    out = {"batched": run(cube_single_dataset, root / "batched", "seeds=[0,1]"), "root": root}
    for seed in (0, 1):
        out[seed] = run(cube_single_dataset, root / f"single{seed}", f"seed={seed}")
    return out


def summary(path: Path) -> dict:
    return json.loads((path / "summary.json").read_text())


@pytest.mark.slow
def test_seed_batched_evaluation_equals_the_single_runs(runs):
    batched = runs["batched"]
    assert batched["seeds"] == [0, 1]
    for seed in (0, 1):
        single = summary(runs["root"] / f"single{seed}")
        mine = summary(runs["root"] / "batched" / f"seed{seed}")
        assert len(mine["curve"]) == 2 and mine["curve"] == single["curve"]  # steps 2 and 4, each seed its own
        assert mine["success_rate"] == single["success_rate"] == runs[seed]["success_rate"]
        assert mine["return"] == single["return"] == runs[seed]["return"]
        assert batched["per_seed"][seed] == {"success_rate": runs[seed]["success_rate"], "return": runs[seed]["return"]}


def test_each_seed_leaves_its_own_summary_and_rql_results_counts_seeds(runs):
    run_dir = runs["root"] / "batched"
    assert not (run_dir / "summary.json").exists()  # S records, no extra one for the batch
    for seed in (0, 1):
        record = summary(run_dir / f"seed{seed}")
        assert record["seed"] == seed and record["seeds"] == [0, 1] and record["status"] == "finished"
        assert record["model"] == "rql" and record["model_class"] == "rql_lightning.modules.rql.RQLModule"
        assert record["config"]["seed"] == seed
    loaded, notes = load_runs(run_dir)
    assert not notes and sorted(r.seed for r in loaded) == [0, 1]
    res = aggregate(loaded)
    assert res.methods == ["rql"] and res.task[("rql", "cube-single", 1)].n_seeds == 2


def test_each_seed_has_its_own_eval_scalars_in_tensorboard(runs):
    series = scalars(Path(runs["batched"]["tensorboard"]))
    for seed in (0, 1):
        assert [step for step, _ in series[f"seed{seed}/eval/success_rate"]] == [2, 4]
        assert series[f"seed{seed}/eval/return"][-1][1] == pytest.approx(runs[seed]["return"])
        assert series[f"seed{seed}/final/success_rate"][0][1] == runs[seed]["success_rate"]  # the HParams view's
    assert "eval/success_rate" not in series


def test_seed_batched_checkpoint_keeps_each_seeds_evaluation_curve_for_a_resume(runs):
    ckpt = torch.load(runs["root"] / "batched" / "checkpoints" / "last.ckpt", weights_only=False)
    (state,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("EvaluationCallback")]
    assert sorted(state["seeds"]) == [0, 1]
    assert [p[0] for p in state["seeds"][0]] == [2, 4]
