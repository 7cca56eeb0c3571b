"""Periodic policy evaluation during training: when to evaluate, on which ranks, and where results go.

What an evaluation is (module contract, policy noise, episode seeds) is :mod:`rql_lightning.callbacks.protocol`;
this callback schedules it, shares it over DDP ranks, logs it and publishes it.

Schedule
    The schedule counts *training batches* (``trainer.fit_loop.total_batch_idx + 1`` in
    ``on_train_batch_end``), not ``trainer.global_step``.  Under manual optimization Lightning's
    ``global_step`` is the number of ``optimizer.step()`` calls (``_ManualOptimization.optim_step_progress``),
    so a module that steps a critic and an actor optimizer per batch advances it by 2 per batch; with
    automatic optimization it counts optimizer steps (batches / accumulation).  The batch counter is the
    number of gradient-update rounds in both cases, is restored from checkpoints by Lightning's loop state,
    and is also the x-axis used for the logged ``eval/*`` metrics.

DDP
    Every rank evaluates its share of the episodes (rank ``r`` of ``W`` runs episodes ``r, r + W, ...``, episode
    ``k`` seeded ``seed + k`` as in a single process); the per-episode outcomes are gathered with
    ``LightningModule.all_gather`` (:mod:`~rql_lightning.callbacks.gather`), so every rank holds the same
    complete :class:`~rql_lightning.envs.EvalResult`, equal to a single-process evaluation.
    ``render_episodes`` and ``video_episodes`` run on global rank 0 only (their frames exist only there).

Environments
    Each rank's vector env (``num_envs`` worker processes when > 1) is built at the first evaluation and
    kept for the next ones (:class:`~rql_lightning.envs.EvalEnvs`); it is closed in ``teardown`` and when
    training raises.

Results
    Published for others to read (:mod:`rql_lightning.callbacks.history`): ``eval/*`` scalars in
    ``trainer.callback_metrics`` and the :class:`~rql_lightning.callbacks.history.EvalHistory` on the
    LightningModule (``last_result``/``history`` here are the same objects).  Global rank 0 also sends
    ``eval/success_rate``, ``eval/return``, ``eval/length``, ``eval/episodes`` and ``eval/time_s`` to every
    ``trainer.loggers`` entry via ``log_metrics(..., step=<batches done>)`` (works in ``on_train_end`` too,
    where ``pl_module.log`` is not allowed), a one-line summary via ``rank_zero_info``, and with
    ``video_episodes > 0`` the extra rendered episodes as the GIF ``eval/video``
    (:mod:`~rql_lightning.callbacks.video`).  Rendering needs ``MUJOCO_GL=egl`` or ``osmesa`` set before
    MuJoCo is imported.

Seed-batched modules
    A module with ``seeds`` (:class:`~rql_lightning.modules.seeds.SeedBatch`) is ``S`` runs: every seed gets
    the episodes and noise of its own run, all through one vector env (``num_envs`` per seed) and one batched
    policy call per round (:mod:`~rql_lightning.callbacks.seed_eval`).  Each seed's numbers are published and
    logged as ``seed<s>/eval/*`` (the same TensorBoard run as its ``seed<s>/train/*``), its curve as its own
    :class:`~rql_lightning.callbacks.history.EvalHistory` (``seed_results``, published on the module).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from rql_lightning.callbacks.gather import gather_episodes
from rql_lightning.callbacks.history import EvalHistory, EvalPoint, eval_metrics, publish, publish_seeds, seed_key
from rql_lightning.callbacks.protocol import device_of, evaluate_module, noise_generator
from rql_lightning.callbacks.run_info import seeds_of
from rql_lightning.callbacks.seed_eval import SeedLayout, evaluate_seeds, split_by_seed
from rql_lightning.callbacks.video import log_video
from rql_lightning.envs import EvalEnvs, EvalResult, resolve_env_id

__all__ = ["EvaluationCallback"]


def _batches_done(trainer: L.Trainer) -> int:
    """Training batches run so far, counting the current one (valid in on_train_batch_end / on_train_end)."""
    return int(trainer.fit_loop.total_batch_idx) + 1


class EvaluationCallback(L.Callback):
    """Evaluate ``pl_module.act`` every ``every_n_steps`` training batches and at the end of training.

    Args:
        env_name: OGBench single-task env id or dataset name, or ``minari:<dataset>``
            (see :func:`rql_lightning.envs.make_eval_env`); None: the datamodule's ``eval_env_name``.
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
        episode_noise: per-(episode, chunk) noise seeds, see :mod:`rql_lightning.callbacks.protocol`.
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
        self.results = EvalHistory(env_name=env_name)  # what this callback publishes
        self.seed_results: dict[int, EvalHistory] = {}  # a seed-batched module's: seed -> its record
        self.envs = EvalEnvs()
        self._last_eval_batch: int | None = None
        self._generator: torch.Generator | None = None

    # ------------------------------------------------------------- the record (see callbacks.history)

    @property
    def env_name(self) -> str | None:
        return self.results.env_name

    @property
    def history(self) -> list[tuple[int, EvalResult]]:
        """``(batches, result)`` of every evaluation in this process, in order."""
        return self.results.results

    @property
    def last_result(self) -> EvalResult | None:
        return self.results.last

    @property
    def restored_history(self) -> list[EvalPoint]:
        """Summaries of the evaluations stored in the checkpoint this run resumed from."""
        return self.results.restored

    @property
    def state_key(self) -> str:
        return self._generate_state_key(seed=self.seed)

    def state_dict(self) -> dict[str, Any]:
        seeds = {s: h.state_dict() for s, h in self.seed_results.items()}
        return {"last_eval_batch": self._last_eval_batch, "history": self.results.state_dict(), "seeds": seeds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._last_eval_batch = state_dict.get("last_eval_batch")
        self.results.load_state_dict(state_dict.get("history", []))
        for seed, state in (state_dict.get("seeds") or {}).items():
            self._history(int(seed)).load_state_dict(state)

    def _history(self, seed: int | None) -> EvalHistory:
        """The record of ``seed`` of a seed-batched module; ``None``: the single run's."""
        if seed is None:
            return self.results
        return self.seed_results.setdefault(int(seed), EvalHistory(env_name=self.results.env_name))

    # ------------------------------------------------------------------ hooks

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Publish the record on the module; with ``env_name=None`` take the datamodule's evaluation env
        (``eval_env_name``): the OGBench single-task env of its dataset, or ``minari:<id>``."""
        if self.results.env_name is None:
            name = getattr(getattr(trainer, "datamodule", None), "eval_env_name", None)
            if name is None:
                raise ValueError(
                    "the datamodule names no evaluation env; set callbacks.evaluation.env_name=<env id> "
                    "or drop evaluation with ~callbacks.evaluation"
                )
            resolve_env_id(name)
            self.results.env_name = name
        seeds = seeds_of(pl_module)
        if seeds is None:
            publish(pl_module, self.results)
            return
        for seed in seeds:
            self._history(seed).env_name = self.results.env_name
        publish_seeds(pl_module, self.seed_results)

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

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.envs.discard()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.envs.close()

    # ------------------------------------------------------------- evaluation

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule, batches: int) -> EvalResult:
        """Evaluate now on every rank, gather, publish, log at x = ``batches`` (rank 0); the gathered result.

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
        seeds = seeds_of(pl_module)
        total = self.num_episodes * (len(seeds) if seeds else 1)
        result = gather_episodes(pl_module, local, total, trainer.world_size)
        per_seed: dict[int | None, EvalResult] = {None: result}
        if seeds:
            layout = SeedLayout(tuple(seeds), self.num_episodes, self.video_episodes if zero else 0)
            per_seed = split_by_seed(result, layout, local.episode_ids[: len(local.frames)])
        for seed, one in per_seed.items():
            self._history(seed).record(batches, one)
            metrics = eval_metrics(one, seed)
            trainer.callback_metrics.update({k: torch.tensor(v, dtype=torch.float64) for k, v in metrics.items()})
            if zero:
                for logger in trainer.loggers:
                    logger.log_metrics({**metrics, seed_key(seed, "eval/time_s"): one.wall_time_s}, step=batches)
                log_video(trainer.loggers, seed_key(seed, "eval/video"), one.videos, batches, self.video_fps)
                where = f"batch={batches} global_step={trainer.global_step}" + ("" if seed is None else f" seed={seed}")
                rank_zero_info(f"[eval] {self.env_name} {where}: {one.summary()}")
        return result

    def evaluate_module(
        self,
        pl_module: L.LightningModule,
        rank: int = 0,
        world_size: int = 1,
        render_episodes: int | None = None,
        video_episodes: int | None = None,
    ) -> EvalResult:
        """This rank's share of one evaluation of ``pl_module`` with this callback's settings and envs (no
        gathering, no logging): :func:`~rql_lightning.callbacks.protocol.evaluate_module`, or for a seed-batched
        module every seed's combined episodes (:func:`~rql_lightning.callbacks.seed_eval.evaluate_seeds`).

        With the defaults it is the whole single-process evaluation; ``render_episodes``/``video_episodes``
        default to the callback's settings.
        """
        if self.env_name is None:
            raise ValueError("env_name is not known yet: pass it, or let setup() take the datamodule's")
        device = device_of(pl_module)
        if self._generator is None or self._generator.device != device:
            self._generator = noise_generator(device)
        evaluate = evaluate_seeds if seeds_of(pl_module) else evaluate_module
        return evaluate(
            pl_module,
            self.env_name,
            num_episodes=self.num_episodes,
            num_envs=self.num_envs,
            seed=self.seed,
            video_episodes=self.video_episodes if video_episodes is None else int(video_episodes),
            frame_skip=self.video_frame_skip,
            width=self.video_size[0],
            height=self.video_size[1],
            render_episodes=self.render_episodes if render_episodes is None else int(render_episodes),
            env_kwargs=self.env_kwargs,
            episode_noise=self.episode_noise,
            rank=rank,
            world_size=world_size,
            envs=self.envs,
            generator=self._generator,
        )
