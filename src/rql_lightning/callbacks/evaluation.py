"""Periodic policy evaluation on an OGBench single-task environment.

Schedule
    The schedule counts *training batches* (``trainer.fit_loop.total_batch_idx + 1`` in
    ``on_train_batch_end``), not ``trainer.global_step``.  Under manual optimization Lightning's
    ``global_step`` is the number of ``optimizer.step()`` calls (``_ManualOptimization.optim_step_progress``),
    so a module that steps a critic and an actor optimizer per batch advances it by 2 per batch; with
    automatic optimization it counts optimizer steps (batches / accumulation).  The batch counter is the
    number of gradient-update rounds in both cases, is restored from checkpoints by Lightning's loop state,
    and is also the x-axis used for the logged ``eval/*`` metrics.

Module contract
    ``pl_module.act(obs: np.ndarray (N, obs_dim), generator: torch.Generator) -> (N, h, act_dim)`` (numpy or
    tensor), sampling with the EMA actor, and ``pl_module.chunk_size: int`` (h, actions executed open loop per
    policy call).  ``act`` is called under ``torch.no_grad()`` with every submodule in eval mode; each
    submodule's train/eval flag is restored afterwards, and torch/numpy global RNG states are left untouched.

Policy noise
    The callback owns the ``torch.Generator`` (on ``pl_module.device``).  By default (``episode_noise=True``)
    ``act`` is called one observation at a time with the generator re-seeded from ``(seed, episode index,
    chunk index in the episode)``, so every episode's noise is a function of the weights, the seed and the
    episode only: results are then identical whatever ``num_envs`` and the number of DDP ranks (the price:
    ``num_envs`` small ``act`` calls per chunk instead of one batched call).  ``episode_noise=False`` makes one
    batched call per chunk step with the generator seeded once per evaluation (deterministic for a given
    ``num_envs`` and world size only).

DDP
    Every rank evaluates its share of the episodes (rank ``r`` of ``W`` runs episodes ``r, r + W, ...``, episode
    ``k`` seeded ``seed + k`` as in a single process); the per-episode outcomes are gathered with a
    torchmetrics ``CatMetric`` (and the wall time with a ``MaxMetric``) synced over the default process group,
    so ``last_result`` and ``history`` hold the same complete :class:`~rql_lightning.envs.EvalResult` on all
    ranks, equal to a single-process evaluation.  ``render_episodes`` and ``video_episodes`` run on global
    rank 0 only (their frames exist only there).

Logging (global rank 0 only)
    ``eval/success_rate``, ``eval/return``, ``eval/length``, ``eval/episodes`` and ``eval/time_s`` go to every
    ``trainer.loggers`` entry via ``log_metrics(..., step=<batches done>)`` (works in ``on_train_end`` too,
    where ``pl_module.log`` is not allowed), a one-line summary via ``rank_zero_info``.  With
    ``video_episodes > 0`` the extra rendered episodes (not counted in the statistics) go to every
    :class:`~lightning.pytorch.loggers.TensorBoardLogger` as one animated GIF image summary ``eval/video``
    (episodes side by side, shorter ones holding their last frame) -- the summary ``SummaryWriter.add_video``
    writes, encoded here with Pillow because ``add_video`` silently writes nothing without ``moviepy<2``.
    Rendering needs ``MUJOCO_GL=egl`` or ``osmesa`` set before MuJoCo is imported (see
    :mod:`rql_lightning.envs`).
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from rql_lightning.envs import EvalResult, evaluate_policy, resolve_env_id
from rql_lightning.seeding import stream_seed

__all__ = ["EvaluationCallback", "gif_summary"]

EVAL_NOISE_STREAM = 2  # stream id of the per-(episode, chunk) policy-noise seeds (0, 1: training batches, draws)


def _batches_done(trainer: L.Trainer) -> int:
    """Training batches run so far, counting the current one (valid in on_train_batch_end / on_train_end)."""
    return int(trainer.fit_loop.total_batch_idx) + 1


def _tile(videos: list[np.ndarray]) -> np.ndarray:
    """Episodes ``(T_i, H, W, 3)`` -> one ``(max T_i, rows * H, cols * W, 3)`` grid (shorter ones held)."""
    t = max(v.shape[0] for v in videos)
    h, w = videos[0].shape[1:3]
    cols = math.ceil(math.sqrt(len(videos)))
    rows = math.ceil(len(videos) / cols)
    grid = np.zeros((t, rows * h, cols * w, 3), dtype=np.uint8)
    for i, v in enumerate(videos):
        r, c = divmod(i, cols)
        padded = np.concatenate([v, np.repeat(v[-1:], t - v.shape[0], axis=0)]) if v.shape[0] < t else v
        grid[:, r * h : (r + 1) * h, c * w : (c + 1) * w] = padded
    return grid


def gif_summary(tag: str, frames: np.ndarray, fps: float, summary_cls: Any = None):
    """A TensorBoard ``Summary`` holding ``frames`` ``(T, H, W, 3)`` uint8 as an animated GIF image.

    ``summary_cls``: the ``Summary`` protobuf class of the writer's package (default: tensorboard's).
    """
    from PIL import Image

    if summary_cls is None:
        from tensorboard.compat.proto.summary_pb2 import Summary
    else:
        Summary = summary_cls  # noqa: N806

    images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    buf = io.BytesIO()
    duration = max(1, round(1000 / fps))
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    _, h, w, c = frames.shape
    image = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=buf.getvalue())
    return Summary(value=[Summary.Value(tag=tag, image=image)])


class EvaluationCallback(L.Callback):
    """Evaluate ``pl_module.act`` every ``every_n_steps`` training batches and at the end of training.

    Args:
        env_name: OGBench single-task env id or dataset name (see :func:`rql_lightning.envs.make_eval_env`).
        num_episodes: episodes per evaluation in total over all DDP ranks (episode ``k`` is seeded ``seed + k``).
        every_n_steps: evaluation period in training batches (not ``global_step``, see module docstring);
            ``<= 0`` disables periodic evaluation.
        num_envs: parallel environments per rank (subprocesses when > 1).
        seed: env seeds and the policy-noise seeds.
        at_train_end: also evaluate in ``on_train_end`` unless that batch count was just evaluated.
        render_episodes: record frames of the first episodes into ``last_result.frames`` (rank 0; needs
            MUJOCO_GL).
        env_kwargs: extra kwargs for the env constructor.
        video_episodes: extra episodes (not counted in the statistics) rendered and logged to TensorBoard as
            ``eval/video`` (rank 0; needs MUJOCO_GL).
        video_frame_skip: keep every n-th frame of the rendered episodes (plus the first and last).
        video_fps: playback rate of the logged video.
        video_width, video_height: render size (env kwargs ``width``/``height``, unless ``env_kwargs`` sets them).
        episode_noise: per-(episode, chunk) noise seeds, see the module docstring.
    """

    def __init__(
        self,
        env_name: str | None = None,
        num_episodes: int = 50,
        every_n_steps: int = 100_000,
        num_envs: int = 2,
        seed: int = 0,
        at_train_end: bool = True,
        render_episodes: int = 0,
        env_kwargs: dict[str, Any] | None = None,
        video_episodes: int = 0,
        video_frame_skip: int = 3,
        video_fps: float = 15.0,
        video_width: int = 128,
        video_height: int = 128,
        episode_noise: bool = True,
    ):
        super().__init__()
        if env_name is not None:
            resolve_env_id(env_name)  # fail at construction on a bad name, not hours into training
        if num_episodes < 1:
            raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if video_episodes < 0 or video_frame_skip < 1 or video_fps <= 0:
            raise ValueError(
                f"need video_episodes >= 0, video_frame_skip >= 1, video_fps > 0; got {video_episodes}, "
                f"{video_frame_skip}, {video_fps}"
            )
        self.env_name = env_name
        self.num_episodes = int(num_episodes)
        self.every_n_steps = int(every_n_steps)
        self.num_envs = int(num_envs)
        self.seed = int(seed)
        self.at_train_end = bool(at_train_end)
        self.render_episodes = int(render_episodes)
        self.env_kwargs = dict(env_kwargs or {})
        self.video_episodes = int(video_episodes)
        self.video_frame_skip = int(video_frame_skip)
        self.video_fps = float(video_fps)
        self.video_size = (int(video_width), int(video_height))
        self.episode_noise = bool(episode_noise)
        self.last_result: EvalResult | None = None
        self.history: list[tuple[int, EvalResult]] = []
        self._last_eval_batch: int | None = None
        self.restored_history: list[tuple[int, float, float, int]] = []  # summaries from a loaded checkpoint
        self._generator: torch.Generator | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """With ``env_name=None`` the datamodule names its evaluation env (``eval_env_name``): the
        OGBench single-task env of its dataset, or ``minari:<id>`` for Minari's recovered env."""
        if self.env_name is None:
            name = getattr(trainer.datamodule, "eval_env_name", None)
            if name is None:
                raise ValueError(
                    "the datamodule names no evaluation env; set callbacks.evaluation.env_name=<env id> "
                    "or drop evaluation with ~callbacks.evaluation"
                )
            resolve_env_id(name)
            self.env_name = name

    @property
    def state_key(self) -> str:
        return self._generate_state_key(seed=self.seed)

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_eval_batch": self._last_eval_batch,
            "history": [(b, r.success_rate, r.mean_return, r.num_episodes) for b, r in self.history],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._last_eval_batch = state_dict.get("last_eval_batch")
        self.restored_history = list(state_dict.get("history", []))

    # ------------------------------------------------------------------ hooks

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps <= 0:
            return
        batches = _batches_done(trainer)
        if batches % self.every_n_steps == 0 and batches != self._last_eval_batch:
            self.evaluate(trainer, pl_module, batches)

    def on_train_end(self, trainer, pl_module) -> None:
        if not self.at_train_end:
            return
        batches = _batches_done(trainer)
        if batches > 0 and batches != self._last_eval_batch:
            self.evaluate(trainer, pl_module, batches)

    # ------------------------------------------------------------- evaluation

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule, batches: int) -> EvalResult:
        """Evaluate now on every rank, gather, log at x = ``batches`` (rank 0); returns the gathered result.

        Must be called on all ranks together (the gather is a collective).
        """
        self._last_eval_batch = batches
        zero = trainer.is_global_zero
        local = self.evaluate_module(
            pl_module,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            render_episodes=self.render_episodes if zero else 0,
            video_episodes=self.video_episodes if zero else 0,
        )
        result = self._gather(local, pl_module.device)
        if self.history:  # keep frames of the latest evaluation only
            self.history[-1][1].frames, self.history[-1][1].videos = [], []
        self.last_result = result
        self.history.append((batches, result))
        if zero:
            metrics = {
                "eval/success_rate": result.success_rate,
                "eval/return": result.mean_return,
                "eval/length": result.mean_length,
                "eval/episodes": float(result.num_episodes),
                "eval/time_s": result.wall_time_s,
            }
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=batches)
            if result.videos:
                self._log_videos(trainer, result.videos, batches)
            where = f"batch={batches} global_step={trainer.global_step}"
            rank_zero_info(f"[eval] {self.env_name} {where}: {result.summary()}")
        return result

    def evaluate_module(
        self,
        pl_module: L.LightningModule,
        rank: int = 0,
        world_size: int = 1,
        render_episodes: int | None = None,
        video_episodes: int | None = None,
    ) -> EvalResult:
        """This rank's share of one evaluation of ``pl_module`` (no gathering, no logging).

        With the defaults it is the whole single-process evaluation; ``render_episodes``/``video_episodes``
        default to the callback's settings.
        """
        chunk_size = int(pl_module.chunk_size)
        device = pl_module.device
        generator = self._get_generator(device)
        generator.manual_seed(self.seed)
        modes = [(m, m.training) for m in pl_module.modules()]
        fork_devices = []
        if device.type == "cuda":
            fork_devices = [device.index if device.index is not None else torch.cuda.current_device()]
        np_state = np.random.get_state()
        seed = self.seed

        def batched_policy(obs: np.ndarray) -> Any:
            return pl_module.act(obs, generator)

        def episode_policy(obs: np.ndarray, episodes: np.ndarray, chunks: np.ndarray) -> np.ndarray:
            seeds = [
                stream_seed(seed, int(e), int(c), EVAL_NOISE_STREAM) for e, c in zip(episodes, chunks, strict=True)
            ]
            if hasattr(pl_module, "act_seeded"):  # one batched call, each row's noise from its own seed
                return pl_module.act_seeded(obs, seeds, generator)
            out = []
            for i in range(obs.shape[0]):
                generator.manual_seed(seeds[i])
                a = pl_module.act(obs[i : i + 1], generator)
                out.append(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a))
            return np.concatenate(out)

        videos = self.video_episodes if video_episodes is None else int(video_episodes)
        renders = self.render_episodes if render_episodes is None else int(render_episodes)
        env_kwargs = dict(self.env_kwargs)
        if videos or renders:
            env_kwargs.setdefault("width", self.video_size[0])
            env_kwargs.setdefault("height", self.video_size[1])
        pl_module.eval()
        try:
            with torch.random.fork_rng(devices=fork_devices), torch.no_grad():
                return evaluate_policy(
                    episode_policy if self.episode_noise else batched_policy,
                    self.env_name,
                    num_episodes=self.num_episodes,
                    num_envs=self.num_envs,
                    seed=self.seed,
                    chunk_size=chunk_size,
                    render_episodes=renders,
                    env_kwargs=env_kwargs,
                    rank=rank,
                    world_size=world_size,
                    video_episodes=videos,
                    frame_skip=self.video_frame_skip if videos else 1,
                    episode_info=self.episode_noise,
                )
        finally:
            for module, training in modes:
                module.training = training
            with contextlib.suppress(Exception):
                np.random.set_state(np_state)

    # ---------------------------------------------------------------- helpers

    def _get_generator(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            try:
                self._generator = torch.Generator(device=device)
            except RuntimeError:
                self._generator = torch.Generator()
        return self._generator

    def _gather(self, local: EvalResult, device: torch.device) -> EvalResult:
        """All ranks' episodes, via torchmetrics (synced over the default group when distributed is up)."""
        from torchmetrics.aggregation import CatMetric, MaxMetric

        dtype = torch.float64 if device.type != "mps" else torch.float32
        rows = CatMetric(nan_strategy="disable").set_dtype(dtype).to(device)
        wall = MaxMetric(nan_strategy="disable").set_dtype(dtype).to(device)
        table = np.stack(
            [local.episode_ids, local.episode_successes, local.episode_returns, local.episode_lengths], axis=1
        ).astype(np.float64)
        rows.update(torch.as_tensor(table.reshape(-1), dtype=dtype, device=device))
        wall.update(torch.tensor(local.wall_time_s, dtype=dtype, device=device))
        table = rows.compute().cpu().numpy().reshape(-1, 4)
        wall_time = float(wall.compute())
        ids = table[:, 0].astype(np.int64)
        if sorted(ids.tolist()) != list(range(self.num_episodes)):
            raise RuntimeError(
                f"evaluation gathered episodes {sorted(ids.tolist())}, expected 0..{self.num_episodes - 1}"
            )
        return EvalResult.from_episodes(
            ids,
            table[:, 1] > 0.5,
            table[:, 2],
            table[:, 3].astype(np.int64),
            frames=local.frames,
            videos=local.videos,
            wall_time_s=wall_time,
        )

    def _log_videos(self, trainer: L.Trainer, videos: list[np.ndarray], step: int) -> None:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers:
            return
        grid = _tile(videos)
        for logger in loggers:
            writer = logger.experiment
            try:
                summary_cls = None
                if type(writer).__module__.startswith("tensorboardX"):  # Lightning prefers it when installed
                    from tensorboardX.proto.summary_pb2 import Summary as summary_cls
                summary = gif_summary("eval/video", grid, self.video_fps, summary_cls)
                writer._get_file_writer().add_summary(summary, step)  # what SummaryWriter.add_video does
                writer.flush()
            except Exception as err:  # noqa: BLE001  (videos are optional; never fail a run on them)
                rank_zero_warn(f"eval video not logged: {type(err).__name__}: {err}")
