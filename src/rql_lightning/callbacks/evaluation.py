"""Periodic policy evaluation during training: when to evaluate (:mod:`rql_lightning.evaluator` says what), and
publishing it. The schedule counts training batches (``fit_loop.total_batch_idx + 1``), not ``global_step`` (two
``optimizer.step()`` calls a batch with a critic and an actor optimizer); it is the x of the ``eval/*`` logs. Per
replica: ``eval/`` ``success_rate``, ``return``, ``length``, ``episodes``, ``time_s`` (``trainer.callback_metrics``,
which ``ddp_spawn`` copies back, and every logger), ``eval/curve`` (float64 ``(P, 4)`` rows ``(step, success_rate,
return, episodes)``, restored ones included) at fit start and after each evaluation, ``eval/video``: the episodes
tiled into one animated GIF image summary (Pillow: ``SummaryWriter.add_video`` writes nothing without ``moviepy<2``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from rql_lightning.envs import EvalResult, resolve_env_id
from rql_lightning.evaluator import Evaluator, gather, metric_key, report
from rql_lightning.naming import replica_key


def tile(videos: list[np.ndarray]) -> np.ndarray:
    """Episodes ``(T_i, H, W, 3)`` -> one ``(max T_i, rows * H, cols * W, 3)`` grid (shorter ones held)."""
    t = max(v.shape[0] for v in videos)
    h, w = videos[0].shape[1:3]
    cols = math.ceil(math.sqrt(len(videos)))
    rows = math.ceil(len(videos) / cols)
    held = [np.concatenate([v, np.repeat(v[-1:], t - v.shape[0], axis=0)]).astype(np.uint8) for v in videos]
    held += [np.zeros((t, h, w, 3), np.uint8)] * (rows * cols - len(videos))  # blank tiles
    grid = np.stack(held).reshape(rows, cols, t, h, w, 3)
    return grid.transpose(2, 0, 3, 1, 4, 5).reshape(t, rows * h, cols * w, 3)


def gif_summary(tag: str, frames: np.ndarray, fps: float):
    """A TensorBoard ``Summary`` of ``frames (T, H, W, 3)`` uint8 as an animated GIF image."""
    from PIL import Image
    from tensorboard.compat.proto.summary_pb2 import Summary

    images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    buf = io.BytesIO()
    duration = max(1, round(1000 / fps))
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    _, h, w, c = frames.shape
    image = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=buf.getvalue())
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def log_video(loggers: Iterable[Any], tag: str, videos: list[np.ndarray], step: int, fps: float) -> None:
    """Episodes side by side as one GIF ``tag`` at ``step`` in every TensorBoard logger; a failure is a warning."""
    tensorboards = [lg for lg in loggers if isinstance(lg, TensorBoardLogger)]
    if not tensorboards or not videos:
        return
    grid = tile(videos)
    for logger in tensorboards:
        writer = logger.experiment
        try:  # Lightning's writer is torch's (tensorboard is a dependency, so never tensorboardX's)
            writer._get_file_writer().add_summary(gif_summary(tag, grid, fps), step)
            writer.flush()
        except Exception as err:  # noqa: BLE001
            rank_zero_warn(f"eval video not logged: {type(err).__name__}: {err}")


class EvalPoint(NamedTuple):
    """One evaluation in summary: ``step`` in training batches (the x of the ``eval/*`` logs)."""

    step: int
    success_rate: float
    mean_return: float
    episodes: int


@dataclass
class EvalHistory:
    """One replica's evaluations: this process's ``results`` (videos of the latest only) and ``restored`` ones."""

    results: list[tuple[int, EvalResult]] = field(default_factory=list)
    restored: list[EvalPoint] = field(default_factory=list)

    @property
    def last(self) -> EvalResult | None:
        return self.results[-1][1] if self.results else None

    def record(self, step: int, result: EvalResult) -> None:
        if self.results:  # keep videos of the latest evaluation only
            self.results[-1][1].videos = []
        self.results.append((int(step), result))

    def curve(self) -> list[EvalPoint]:
        """Every evaluation by step: restored ones, then this run's (which win on an equal step)."""
        points = {int(p.step): EvalPoint(*p) for p in self.restored}
        for step, r in self.results:
            points[step] = EvalPoint(step, r.success_rate, r.mean_return, r.num_episodes)
        return [points[s] for s in sorted(points)]

    def state_dict(self) -> list[tuple[int, float, float, int]]:
        return [tuple(p) for p in self.curve()]

    def load_state_dict(self, state: list[Any]) -> None:
        self.restored = [EvalPoint(int(s), float(sr), float(ret), int(n)) for s, sr, ret, n in state]


class EvaluationCallback(L.Callback):
    """Evaluate every ``every_n_steps`` training batches (``<= 0``: never) and at train end (unless just done), on
    every DDP rank together; ``env_name`` None: the datamodule's; ``settings``: the
    :class:`~rql_lightning.evaluator.Evaluator`'s others (``video_*``, ``env_kwargs``, ...).
    """

    def __init__(
        self,
        env_name: str | None = None,
        num_episodes: int = 50,
        every_n_steps: int = 100_000,
        num_envs: int = 2,
        seed: int = 0,
        video_fps: float = 15.0,
        **settings: Any,
    ):
        super().__init__()
        if video_fps <= 0:
            raise ValueError(f"video_fps must be > 0, got {video_fps}")
        self.evaluator = Evaluator(env_name, num_episodes, num_envs, int(seed), **settings)
        self.every_n_steps, self.video_fps = int(every_n_steps), video_fps
        self.histories: dict[str, EvalHistory] = {}  # replica key -> its evaluations
        self._last_eval_batch: int | None = None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(seed=self.evaluator.seed)

    def state_dict(self) -> dict[str, Any]:
        """The curves: a single run's as ``history``, a seed batch's as ``seeds``, a task batch's as ``replicas``."""
        seeds = {int(k.removeprefix("seed")): h.state_dict() for k, h in self.histories.items() if k[:4] == "seed"}
        replicas = {k: h.state_dict() for k, h in self.histories.items() if k[:4] == "task"}
        single = self.histories[""].state_dict() if "" in self.histories else []
        return {"last_eval_batch": self._last_eval_batch, "history": single, "seeds": seeds, "replicas": replicas}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._last_eval_batch = state_dict.get("last_eval_batch")
        curves = {replica_key(None, int(s)): c for s, c in (state_dict.get("seeds") or {}).items()}
        curves.update(state_dict.get("replicas") or {})
        if state_dict.get("history"):
            curves[""] = state_dict["history"]
        for key, curve in curves.items():
            self.histories.setdefault(key, EvalHistory()).load_state_dict(curve)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.evaluator.env_name is None:
            name = getattr(getattr(trainer, "datamodule", None), "eval_env_name", None)
            if name is None:
                raise ValueError(
                    "the datamodule names no evaluation env; set callbacks.evaluation.env_name=<env id> "
                    "or drop evaluation with ~callbacks.evaluation"
                )
            resolve_env_id(name)
            self.evaluator.env_name = name

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for key in self.evaluator.replicas(pl_module):
            self.histories.setdefault(key, EvalHistory())
        self._publish_curves(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        batches = int(trainer.fit_loop.total_batch_idx) + 1
        if self.every_n_steps > 0 and batches % self.every_n_steps == 0 and batches != self._last_eval_batch:
            self.evaluate(trainer, pl_module, batches)

    def on_train_end(self, trainer, pl_module) -> None:
        batches = int(trainer.fit_loop.total_batch_idx) + 1
        if batches > 0 and batches != self._last_eval_batch:
            self.evaluate(trainer, pl_module, batches)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.evaluator.envs.discard()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.evaluator.envs.close()

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule, batches: int) -> dict[str, EvalResult]:
        """Evaluate now on every rank (a collective), gather, record and publish at x = ``batches``."""
        self._last_eval_batch = batches
        zero = trainer.is_global_zero
        local = self.evaluator.run(pl_module, trainer.global_rank, trainer.world_size, render=zero)
        results = gather(pl_module, local, self.evaluator.num_episodes, trainer.world_size)
        replicas = self.evaluator.replicas(pl_module)
        for key, one in results.items():
            self.histories.setdefault(key, EvalHistory()).record(batches, one)
            metrics = {**one.numbers(), "time_s": one.wall_time_s}
            report(trainer, {metric_key(key, f"eval/{k}"): float(v) for k, v in metrics.items()}, step=batches)
            if zero:
                log_video(trainer.loggers, metric_key(key, "eval/video"), one.videos, batches, self.video_fps)
                where = f"batch={batches} global_step={trainer.global_step}" + (f" {key}" if key else "")
                rank_zero_info(f"[eval] {replicas[key][1]} {where}: {one.summary()}")
        self._publish_curves(trainer)
        return results

    def _publish_curves(self, trainer: L.Trainer) -> None:
        for key, history in self.histories.items():
            curve = torch.tensor(history.state_dict(), dtype=torch.float64).reshape(-1, 4)
            trainer.callback_metrics[metric_key(key, "eval/curve")] = curve
