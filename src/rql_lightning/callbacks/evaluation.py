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
    policy call).  The callback owns the ``torch.Generator`` (created on ``pl_module.device``, re-seeded with
    ``seed`` before every evaluation so each evaluation is a deterministic function of the weights) and
    calls ``act`` under ``torch.no_grad()`` with every submodule in eval mode; each submodule's train/eval
    flag is restored afterwards, and torch/numpy global RNG states are left untouched.

Logging
    Only global rank 0 evaluates (other ranks wait at a barrier).  ``eval/success_rate``, ``eval/return``,
    ``eval/length``, ``eval/episodes`` and ``eval/time_s`` go to every ``trainer.loggers`` entry via
    ``log_metrics(..., step=<batches done>)`` (works in ``on_train_end`` too, where ``pl_module.log`` is not
    allowed), a one-line summary via ``rank_zero_info``; ``last_result`` and ``history`` keep the
    :class:`~rql_lightning.envs.EvalResult` objects.
"""

from __future__ import annotations

import contextlib
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from rql_lightning.envs import EvalResult, evaluate_policy, resolve_env_id

__all__ = ["EvaluationCallback"]


def _batches_done(trainer: L.Trainer) -> int:
    """Training batches run so far, counting the current one (valid in on_train_batch_end / on_train_end)."""
    return int(trainer.fit_loop.total_batch_idx) + 1


class EvaluationCallback(L.Callback):
    """Evaluate ``pl_module.act`` every ``every_n_steps`` training batches and at the end of training.

    Args:
        env_name: OGBench single-task env id or dataset name (see :func:`rql_lightning.envs.make_eval_env`).
        num_episodes: episodes per evaluation (episode ``k`` is seeded ``seed + k``).
        every_n_steps: evaluation period in training batches (not ``global_step``, see module docstring);
            ``<= 0`` disables periodic evaluation.
        num_envs: parallel environments (subprocesses when > 1).
        seed: env seeds and the policy-noise generator seed.
        at_train_end: also evaluate in ``on_train_end`` unless that batch count was just evaluated.
        render_episodes: record frames of the first episodes into ``last_result.frames`` (needs MUJOCO_GL).
        env_kwargs: extra kwargs for the env constructor.
    """

    def __init__(
        self,
        env_name: str,
        num_episodes: int = 50,
        every_n_steps: int = 100_000,
        num_envs: int = 2,
        seed: int = 0,
        at_train_end: bool = True,
        render_episodes: int = 0,
        env_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__()
        resolve_env_id(env_name)  # fail at construction on a bad name, not hours into training
        if num_episodes < 1:
            raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.env_name = env_name
        self.num_episodes = int(num_episodes)
        self.every_n_steps = int(every_n_steps)
        self.num_envs = int(num_envs)
        self.seed = int(seed)
        self.at_train_end = bool(at_train_end)
        self.render_episodes = int(render_episodes)
        self.env_kwargs = dict(env_kwargs or {})
        self.last_result: EvalResult | None = None
        self.history: list[tuple[int, EvalResult]] = []
        self._last_eval_batch: int | None = None
        self.restored_history: list[tuple[int, float, float, int]] = []  # summaries from a loaded checkpoint
        self._generator: torch.Generator | None = None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(env_name=self.env_name, seed=self.seed)

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

    def _get_generator(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            try:
                self._generator = torch.Generator(device=device)
            except RuntimeError:
                self._generator = torch.Generator()
        self._generator.manual_seed(self.seed)
        return self._generator

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule, batches: int) -> EvalResult | None:
        """Evaluate now (rank 0 only) and log at x = ``batches``; returns the result on rank 0, else None."""
        self._last_eval_batch = batches
        result = None
        if trainer.is_global_zero:
            result = self._run(pl_module)
            self.last_result = result
            self.history.append((batches, result))
            metrics = {
                "eval/success_rate": result.success_rate,
                "eval/return": result.mean_return,
                "eval/length": result.mean_length,
                "eval/episodes": float(result.num_episodes),
                "eval/time_s": result.wall_time_s,
            }
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=batches)
            where = f"batch={batches} global_step={trainer.global_step}"
            rank_zero_info(f"[eval] {self.env_name} {where}: {result.summary()}")
        trainer.strategy.barrier("EvaluationCallback.evaluate")
        return result

    def _run(self, pl_module: L.LightningModule) -> EvalResult:
        chunk_size = int(pl_module.chunk_size)
        device = pl_module.device
        generator = self._get_generator(device)
        modes = [(m, m.training) for m in pl_module.modules()]
        fork_devices = []
        if device.type == "cuda":
            fork_devices = [device.index if device.index is not None else torch.cuda.current_device()]
        np_state = np.random.get_state()

        def policy(obs: np.ndarray) -> np.ndarray:
            return pl_module.act(obs, generator)

        pl_module.eval()
        try:
            with torch.random.fork_rng(devices=fork_devices), torch.no_grad():
                return evaluate_policy(
                    policy,
                    self.env_name,
                    num_episodes=self.num_episodes,
                    num_envs=self.num_envs,
                    seed=self.seed,
                    chunk_size=chunk_size,
                    render_episodes=self.render_episodes,
                    env_kwargs=self.env_kwargs,
                )
        finally:
            for module, training in modes:
                module.training = training
            with contextlib.suppress(Exception):
                np.random.set_state(np_state)
