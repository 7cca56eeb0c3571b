"""A seed-batched (and a multi-task) run evaluated on 2 gloo ranks: the ranks split every replica's episodes, gather
them, agree, and each replica's episodes are those one process evaluates for it."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from rql_lightning.callbacks.evaluation import EvaluationCallback
from rql_lightning.data.datamodule import ArrayDataModule
from rql_lightning.evaluator import evaluate
from tests.callbacks.test_evaluation import _ddp_arrays
from tests.envs.scripted import ENV
from tests.runs import bare_trainer
from tests.seeds.test_seed_evaluation import KW, NoisyScriptedSeeds

SEEDS, EPISODES, T = [3, 5], 3, 60


def seed_batch(tasks: list[int] | None) -> NoisyScriptedSeeds:
    module = NoisyScriptedSeeds(**KW, seeds=SEEDS, task_ids=tasks)
    module.calls = []
    return module


class SavePerReplica(L.Callback):
    """Each rank stores the weights and what the evaluation callback (handed to it) recorded per replica."""

    def __init__(self, out_dir, evaluation) -> None:
        self.out_dir, self.evaluation = out_dir, evaluation

    def on_train_end(self, trainer, pl_module) -> None:
        rank = trainer.global_rank
        torch.save(pl_module.state_dict(), self.out_dir / f"weights{rank}.pt")
        arrays = {}
        for key, history in self.evaluation.histories.items():
            r = history.last
            arrays.update({f"{key}/ids": r.episode_ids, f"{key}/returns": r.episode_returns})
            arrays.update({f"{key}/lengths": r.episode_lengths, f"{key}/success": [r.success_rate]})
        np.savez(self.out_dir / f"eval{rank}.npz", **arrays)


@pytest.mark.slow
@pytest.mark.parametrize("tasks", [None, [1, 2]], ids=["seeds", "tasks"])
def test_two_ranks_evaluate_every_replica_as_one_process_does(tmp_path, tasks):
    callback = EvaluationCallback(
        ENV, num_episodes=EPISODES, every_n_steps=0, num_envs=1, seed=0, env_kwargs=dict(max_episode_steps=T)
    )
    # the evaluation callback runs first in on_train_end
    trainer = bare_trainer(2, devices=2, callbacks=[callback, SavePerReplica(tmp_path, callback)])
    datamodule = ArrayDataModule(_ddp_arrays(), chunk_size=1, batch_size=8, seed=0)
    datamodule.seeds = SEEDS
    trainer.fit(seed_batch(tasks), datamodule=datamodule)  # the tasks only tell the evaluation's envs apart here
    ranks = [dict(np.load(tmp_path / f"eval{r}.npz")) for r in (0, 1)]
    keys = [f"seed{s}" for s in SEEDS] if tasks is None else ["task1/seed3", "task2/seed5"]
    assert sorted(ranks[0]) == sorted(f"{key}/{k}" for key in keys for k in ("ids", "returns", "lengths", "success"))
    for key in ranks[0]:  # every rank holds every replica's complete result
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key], err_msg=key)

    module = seed_batch(tasks)
    module.load_state_dict(torch.load(tmp_path / "weights0.pt"))
    one_process = evaluate(module, ENV, num_episodes=EPISODES, num_envs=1, env_kwargs=dict(max_episode_steps=T))
    lengths = []
    for key in keys:
        got, want = ranks[0], one_process[key]
        np.testing.assert_array_equal(got[f"{key}/ids"], np.arange(EPISODES))
        np.testing.assert_array_equal(got[f"{key}/returns"], want.episode_returns)
        np.testing.assert_array_equal(got[f"{key}/lengths"], want.episode_lengths)
        assert float(got[f"{key}/success"][0]) == want.success_rate
        lengths += want.episode_lengths.tolist()
    assert len(set(lengths)) > 1  # not a trivial agreement: episodes end at different steps
