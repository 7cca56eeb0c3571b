"""The Lightning EvaluationCallback: schedule, noise, published results, kept envs, videos, DDP gathering."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from rql_lightning.callbacks.evaluation import EvalHistory, EvalPoint
from rql_lightning.evaluator import evaluate
from rql_lightning.modules.rql import RQLModule
from tests.envs.scripted import ACT_DIM, ENV, scripted_policy
from tests.rendering import gl_env, require_gl
from tests.runs import bare_trainer

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*precision lowered by casting:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*DISPLAY environment variable is missing"),
]


def _tiny_module(chunk_size: int = 5):
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False
            self.critic = nn.Linear(2, 1)
            self.actor = nn.Linear(2, 1)
            self.frozen = nn.Linear(1, 1)  # stays in eval mode during training; must survive evaluation
            self.chunk_size = chunk_size
            self.act_calls: list[tuple] = []
            self.modes: list[tuple[bool, bool]] = []

        def on_train_start(self):
            self.frozen.eval()

        def training_step(self, batch, batch_idx):
            self.modes.append((self.training, self.frozen.training))
            for opt, net in zip(self.optimizers(), (self.critic, self.actor), strict=True):
                loss = net(batch[0]).pow(2).mean()
                opt.zero_grad()
                self.manual_backward(loss)
                opt.step()

        def configure_optimizers(self):
            return [
                torch.optim.SGD(self.critic.parameters(), 0.1),
                torch.optim.SGD(self.actor.parameters(), 0.1),
            ]

        def train_dataloader(self):
            return DataLoader(TensorDataset(torch.randn(256, 2)), batch_size=4)

        noise_dim = 1

        def act(self, obs, noise):
            grad = torch.is_grad_enabled()
            self.act_calls.append((tuple(obs.shape), obs.dtype, self.training, grad, float(noise[0, 0])))
            return torch.zeros(obs.shape[0], self.chunk_size, ACT_DIM)

    return Tiny()


def _fit(tmp_path, max_steps, callback):
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    module = _tiny_module()
    logger = TensorBoardLogger(str(tmp_path), name="tb")
    trainer = L.Trainer(
        max_steps=max_steps,
        logger=logger,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        log_every_n_steps=1,
    )
    trainer.fit(module)
    return trainer, module, logger


@pytest.mark.slow
def test_callback_schedules_on_batches_and_logs_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rql_lightning.callbacks.evaluation import EvaluationCallback

    cb = EvaluationCallback(
        ENV, num_episodes=3, every_n_steps=3, num_envs=1, seed=0, env_kwargs=dict(max_episode_steps=12)
    )
    # manual optimization with two optimizers: global_step advances 2 per batch, so 10 steps = 5 batches
    trainer, module, logger = _fit(tmp_path, max_steps=10, callback=cb)
    assert trainer.global_step == 10 and trainer.fit_loop.total_batch_idx + 1 == 5
    history = cb.histories[""]
    assert [b for b, _ in history.results] == [3, 5]  # every 3 batches, plus train end
    assert history.last is history.results[-1][1]
    for _, res in history.results:
        assert res.num_episodes == 3 and res.success_rate == 0.0
        np.testing.assert_array_equal(res.episode_lengths, [12, 12, 12])
        np.testing.assert_array_equal(res.episode_ids, [0, 1, 2])
    # per-episode noise: one single-observation call per 5-step chunk, 3 episodes x ceil(12/5), per evaluation
    assert len(module.act_calls) == 2 * 3 * 3
    shape, dtype, training, grad, _ = module.act_calls[0]
    assert shape == (1, 28) and dtype == torch.float32 and not training and not grad
    # the noise is a function of (seed, episode, chunk): equal across evaluations, distinct within one
    noises = [c[-1] for c in module.act_calls]
    assert noises[:9] == noises[9:] and len(set(noises[:9])) == 9
    # train/eval flags restored per submodule after each evaluation
    assert module.modes and all(m == (True, False) for m in module.modes)
    # published: eval/* and the curve in callback_metrics; one vector env for both evaluations, closed at teardown
    assert trainer.callback_metrics["eval/curve"].tolist() == [[3, 0.0, -12.0, 3], [5, 0.0, -12.0, 3]]
    assert trainer.callback_metrics["eval/success_rate"] == 0.0 and trainer.callback_metrics["eval/return"] == -12.0
    assert cb.evaluator.envs.builds == 1 and not cb.evaluator.envs.alive

    acc = EventAccumulator(logger.log_dir)
    acc.Reload()
    tags = acc.Tags()["scalars"]
    for tag in ("eval/success_rate", "eval/return", "eval/episodes"):
        assert tag in tags
    assert [e.step for e in acc.Scalars("eval/success_rate")] == [3, 5]
    assert [e.value for e in acc.Scalars("eval/episodes")] == [3.0, 3.0]
    assert [e.value for e in acc.Scalars("eval/return")] == [-12.0, -12.0]


@pytest.mark.slow
def test_callback_batched_noise_mode_makes_one_call_per_chunk_step(tmp_path):
    from rql_lightning.callbacks.evaluation import EvaluationCallback

    kw = dict(num_episodes=2, num_envs=1, seed=0, env_kwargs=dict(max_episode_steps=6), episode_noise=False)
    cb = EvaluationCallback(ENV, **kw)
    module = _tiny_module(chunk_size=3)
    first = cb.evaluator.run(module)[""]
    noises = [c[-1] for c in module.act_calls]
    cb.evaluator.run(module)
    assert first.num_episodes == 2 and len(noises) == 2 * 2  # 2 episodes x ceil(6/3) calls
    assert [c[-1] for c in module.act_calls[4:]] == noises  # re-seeded per evaluation, drawn in sequence
    assert len(set(noises)) == 4


@pytest.mark.slow
def test_callback_skips_duplicate_train_end_evaluation(tmp_path):
    from rql_lightning.callbacks.evaluation import EvaluationCallback

    kw = dict(num_episodes=1, every_n_steps=2, num_envs=1, env_kwargs=dict(max_episode_steps=5))
    cb = EvaluationCallback(ENV, **kw)
    _fit(tmp_path, max_steps=8, callback=cb)  # 4 batches: evaluations at 2 and 4, none extra at the end
    assert [b for b, _ in cb.histories[""].results] == [2, 4]
    assert cb.state_dict()["last_eval_batch"] == 4


def test_callback_rejects_unknown_env():
    from rql_lightning.callbacks.evaluation import EvaluationCallback

    with pytest.raises(ValueError, match="single-task"):
        EvaluationCallback("cube-single-v0")


def test_gif_summary_tiles_episodes_of_different_lengths():
    from PIL import Image, ImageSequence

    from rql_lightning.callbacks.evaluation import gif_summary, tile

    a = np.zeros((3, 4, 6, 3), np.uint8)
    b = np.full((5, 4, 6, 3), 255, np.uint8)
    b[::2, 0, 0] = 0  # consecutive frames differ, so the GIF keeps all of them
    grid = tile([a, b, a])
    assert grid.shape == (5, 8, 12, 3)  # 2x2 grid, padded to the longest episode
    assert (grid[:, :4, :6] == 0).all() and (grid[:, :4, 6:][:, 1:, 1:] == 255).all()
    np.testing.assert_array_equal(grid[:, 4:, :6], np.zeros((5, 4, 6, 3)))  # a, held at its last frame
    summary = gif_summary("eval/video", grid, fps=10)
    (value,) = summary.value
    assert value.tag == "eval/video" and (value.image.height, value.image.width) == (8, 12)
    gif = Image.open(io.BytesIO(value.image.encoded_image_string))
    assert gif.format == "GIF" and gif.size == (12, 8)
    assert sum(f.info["duration"] for f in ImageSequence.Iterator(gif)) == 5 * 100


_VIDEO_SCRIPT = """
import json, sys
from rql_lightning.callbacks.evaluation import EvaluationCallback
from tests.callbacks.test_evaluation import ENV, _fit
from pathlib import Path
cb = EvaluationCallback(ENV, num_episodes=1, every_n_steps=0, num_envs=1, video_episodes=2, video_frame_skip=2,
                        video_fps=10, video_width=32, video_height=24, env_kwargs=dict(max_episode_steps=6))
trainer, module, logger = _fit(Path(sys.argv[1]), max_steps=2, callback=cb)
r = cb.histories[""].last
print("RESULT=" + json.dumps(dict(log_dir=logger.log_dir, episodes=r.num_episodes,
                                  videos=[list(v.shape) for v in r.videos])))
"""


@pytest.mark.slow
def test_video_episodes_logged_to_tensorboard_with_osmesa(tmp_path):
    """Fresh interpreter: MUJOCO_GL must be set before MuJoCo is imported.  Skipped only where the probe cannot
    render with OSMesa (libosmesa6)."""
    from PIL import Image, ImageSequence
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    require_gl("osmesa")
    env = gl_env("osmesa")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
    proc = subprocess.run(
        [sys.executable, "-c", _VIDEO_SCRIPT, str(tmp_path)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0 and "Rendering disabled" not in proc.stderr, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT=")[1].splitlines()[0])
    # 2 extra episodes of 6 steps, every 2nd frame: after reset and steps 2, 4, 6; not counted as episodes
    assert out["episodes"] == 1 and out["videos"] == [[4, 24, 32, 3]] * 2

    acc = EventAccumulator(out["log_dir"], size_guidance={"images": 0})
    acc.Reload()
    assert "eval/video" in acc.Tags()["images"]
    (event,) = acc.Images("eval/video")
    assert event.step == 1 and (event.height, event.width) == (24, 64)  # at train end (1 batch), side by side
    gif = Image.open(io.BytesIO(event.encoded_image_string))
    assert gif.format == "GIF" and gif.size == (64, 24)
    assert sum(f.info["duration"] for f in ImageSequence.Iterator(gif)) == 4 * 100
    assert [e.value for e in acc.Scalars("eval/episodes")] == [1.0]


# ------------------------------------------------------------------------------------------------- DDP

DDP_T = 60


class NoisyScriptedRQL(RQLModule):
    """A tiny real RQLModule whose evaluation policy is the scripted controller plus 0.2 x its flow actor's
    sample: outcomes depend on the weights, the env seed and the policy noise."""

    def sample_chunks(self, obs, noise):
        scripted = torch.as_tensor(scripted_policy(obs.cpu().numpy()))
        return scripted + (0.2 * super().sample_chunks(obs, noise)).double()


def _ddp_module() -> NoisyScriptedRQL:
    torch.manual_seed(0)
    kw = dict(flow_steps=2, num_critics=2, actor_hidden_dims=[16], critic_hidden_dims=[16], log_every=1)
    return NoisyScriptedRQL(obs_dim=28, action_dim=ACT_DIM, chunk_size=1, seed=0, **kw)


def _ddp_arrays():
    from rql_lightning.data.windows import OfflineArrays

    rng = np.random.default_rng(0)
    n = 8 * 10
    terminals = np.zeros(n, np.float32)
    terminals[9::10] = 1
    rewards = -(rng.random(n) < 0.7).astype(np.float32)
    return OfflineArrays(
        observations=rng.normal(size=(n, 28)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(n, ACT_DIM)).astype(np.float32),
        rewards=rewards,
        terminals=terminals,
        masks=(rewards != 0).astype(np.float32),
    )


def _ddp_callback():
    from rql_lightning.callbacks.evaluation import EvaluationCallback

    return EvaluationCallback(
        ENV, num_episodes=4, every_n_steps=0, num_envs=1, seed=7, env_kwargs=dict(max_episode_steps=DDP_T)
    )


class SaveEvalResult(L.Callback):
    """Stores what the evaluation callback recorded (handed to it, no search of trainer.callbacks)."""

    def __init__(self, out_dir, evaluation):
        self.out_dir, self.evaluation = out_dir, evaluation

    def on_train_end(self, trainer, pl_module):
        history = self.evaluation.histories[""]
        r = history.last
        rank = trainer.global_rank
        torch.save(pl_module.state_dict(), self.out_dir / f"weights{rank}.pt")
        np.savez(
            self.out_dir / f"eval{rank}.npz",
            success_rate=r.success_rate,
            mean_return=r.mean_return,
            ids=r.episode_ids,
            successes=r.episode_successes,
            returns=r.episode_returns,
            lengths=r.episode_lengths,
            history=[b for b, _ in history.results],
            metric=float(trainer.callback_metrics["eval/success_rate"]),
        )


@pytest.mark.slow
def test_ddp_two_ranks_split_episodes_and_agree_with_one_process(tmp_path):
    from rql_lightning.data.datamodule import ArrayDataModule

    # the evaluation callback runs first in on_train_end
    evaluation = _ddp_callback()
    trainer = bare_trainer(2, devices=2, callbacks=[evaluation, SaveEvalResult(tmp_path, evaluation)])
    trainer.fit(_ddp_module(), datamodule=ArrayDataModule(_ddp_arrays(), chunk_size=1, batch_size=8, seed=0))
    ranks = [dict(np.load(tmp_path / f"eval{r}.npz")) for r in (0, 1)]
    for key in ranks[0]:  # every rank stores the same, complete result
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key], err_msg=key)
    got = ranks[0]
    assert got["history"].tolist() == [2]
    np.testing.assert_array_equal(got["ids"], [0, 1, 2, 3])

    # One process, same weights and seed, all 4 episodes: the same outcomes, episode by episode.
    module = _ddp_module()
    module.load_state_dict(torch.load(tmp_path / "weights0.pt"))
    single = _ddp_callback().evaluator.run(module)[""]
    assert float(got["metric"]) == single.success_rate
    # and the trainer-free entry point (rql-eval's) is the same protocol: the same episodes, noise and outcomes
    (free,) = evaluate(module, ENV, num_episodes=4, seed=7, env_kwargs=dict(max_episode_steps=DDP_T)).values()
    np.testing.assert_array_equal(free.episode_returns, single.episode_returns)
    np.testing.assert_array_equal(free.episode_lengths, single.episode_lengths)
    assert float(got["success_rate"]) == single.success_rate
    assert float(got["mean_return"]) == single.mean_return
    np.testing.assert_array_equal(got["successes"], single.episode_successes)
    np.testing.assert_array_equal(got["returns"], single.episode_returns)
    np.testing.assert_array_equal(got["lengths"], single.episode_lengths)
    # not a trivial agreement: episodes differ (some time out, some succeed at different steps)
    assert len(set(single.episode_lengths.tolist())) > 1


def test_batched_seeded_actions_match_row_by_row_actions():
    """The evaluator's policy call (one batched flow pass, each row's noise from its own seed) gives each row the
    action act() gives it alone with that row's noise."""
    from rql_lightning.evaluator import act
    from rql_lightning.modules.rql import RQLModule

    torch.manual_seed(0)
    m = RQLModule(obs_dim=4, action_dim=2, chunk_size=3, flow_steps=4, actor_hidden_dims=[16], critic_hidden_dims=[8])
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    seeds = [11, 12, 13, 14, 15]
    g = torch.Generator()
    batched = act(m, obs[None], np.array([seeds]), g)[0]
    rows = []
    for i, s in enumerate(seeds):
        g.manual_seed(s)
        rows.append(m.act(torch.as_tensor(obs[i : i + 1]), torch.randn(1, 6, generator=g)).numpy())
    assert batched.shape == (5, 3, 2)
    np.testing.assert_allclose(batched, np.concatenate(rows), rtol=0, atol=1e-6)


def test_history_state_keeps_every_evaluation_across_resumes():
    """The checkpointed curve is the whole run's: restored evaluations plus this segment's."""
    from rql_lightning.envs import EvalResult

    empty = np.zeros(0)
    first = EvalHistory()
    first.record(100, EvalResult(0.25, -5.0, 4, empty, empty, empty))
    second = EvalHistory()
    second.load_state_dict(first.state_dict())  # resumed from the first segment's checkpoint
    second.record(200, EvalResult(0.5, -3.0, 4, empty, empty, empty))
    third = EvalHistory()
    third.load_state_dict(second.state_dict())
    assert third.curve() == [EvalPoint(100, 0.25, -5.0, 4), EvalPoint(200, 0.5, -3.0, 4)]
