"""The online phase as a callback (docs/online.md): after ``offline_steps`` updates, act, store, and keep updating."""

from __future__ import annotations

import contextlib
import hashlib
import io
import time
from pathlib import Path
from typing import Any

import gymnasium
import lightning as L
import numpy as np
import torch

from rql_lightning.checkpointing import checkpoint_dir, last_good_line
from rql_lightning.data.windows import WindowSampler
from rql_lightning.envs import worker_envs
from rql_lightning.errors import UserError
from rql_lightning.evaluator import report
from rql_lightning.file_writes import write_atomically
from rql_lightning.modules.base import FlowQModule
from rql_lightning.online.buffer import ReplayBuffer
from rql_lightning.seeding import EXPLORE_STREAM, RESET_STREAM, seeded_generator, stream_seed

CHECKPOINT_KEY = "online"
_COUNTERS = ("env_steps", "chunks", "episodes", "episodes_done", "episode_steps", "episode_return")
SEGMENT_DIR = "online"  # beside the checkpoints, their segments (docs/online.md); a segment's name holds its content
# digest, so two histories never overwrite each other


def write_segment(directory: Path, start: int, arrays: dict[str, np.ndarray]) -> str:
    """Write online rows ``[start, start + n)``; returns the segment's file name."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    raw = buffer.getvalue()
    n = len(next(iter(arrays.values())))
    name = f"rows{start:010d}-{start + n:010d}-{hashlib.blake2b(raw, digest_size=8).hexdigest()}.npz"
    path = directory / name
    if path.exists():  # same range, same content
        return name
    last_good = directory.parent  # the checkpoint that lists this segment is written after it, beside its directory
    write_atomically(
        path, lambda f: f.write(raw), what="the online transitions", state=lambda: last_good_line(last_good)
    )
    return name


def read_segments(directory: Path, names: list[str], rows: int) -> dict[str, np.ndarray]:
    """The first ``rows`` online rows from the listed segments, in order."""
    parts: dict[str, list[np.ndarray]] = {}
    for name in names:
        with np.load(directory / name, allow_pickle=False) as file:
            for key in file.files:
                parts.setdefault(key, []).append(file[key])
    arrays = {key: np.concatenate(values) for key, values in parts.items()}
    found = len(next(iter(arrays.values()))) if arrays else 0
    if found < rows:
        raise FileNotFoundError(f"{directory} holds {found} of the checkpoint's {rows} online transitions")
    return {key: value[:rows] for key, value in arrays.items()}


def reset_seed(seed: int, episode: int) -> int:
    """The env seed of online episode ``episode``."""
    return stream_seed(seed, 0, episode, RESET_STREAM) % 2**31


@torch.no_grad()
def explore_chunk(module: FlowQModule, observation: np.ndarray, seed: int, chunk: int) -> np.ndarray:
    """Online chunk ``chunk`` to execute, ``(h, A)``, for ``observation (O,)``; its noise drawn on the CPU (the same
    numbers on any device)."""
    obs = torch.as_tensor(observation, dtype=torch.float32, device=module.device).unsqueeze(0)
    generator = seeded_generator(seed, 0, chunk, EXPLORE_STREAM)
    noise = torch.randn(1, module.policy.chunk_dim, generator=generator).to(module.device)
    if hasattr(module, "explore_chunks"):
        chunks = module.explore_chunks(obs, noise)
    elif type(module).sample_chunks is FlowQModule.sample_chunks:
        chunks = module.policy.split_chunk(module.policy.sample(obs, noise))
    else:
        chunks = module.sample_chunks(obs, noise)
    return chunks[0].float().cpu().numpy()


class OnlinePhase(L.Callback):
    """``steps`` environment steps with ``utd`` updates each, after ``offline_steps`` offline updates, in ``env_name``
    (None: the datamodule's)."""

    def __init__(
        self,
        steps: int,
        offline_steps: int,
        utd: int = 1,
        seed: int = 0,
        env_name: str | None = None,
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.steps, self.offline_steps, self.utd, self.seed = int(steps), int(offline_steps), int(utd), int(seed)
        self.env_name, self.env_kwargs = env_name, dict(env_kwargs or {})
        self.buffer: ReplayBuffer | None = None
        # The one env process (the platform's start method, as the evaluation envs': the worker only simulates, so
        # forking beside CUDA is safe); it resets itself with the seed sent at an episode's end.
        self.actor: gymnasium.vector.AsyncVectorEnv | None = None
        self.in_flight = False  # a chunk is executing there
        self.env_steps = self.chunks = self.episodes = self.episodes_done = self.episode_steps = 0
        self.episode_return = 0.0
        self.cuts: list[int] = []  # online rows whose episode a resume cut short
        self._observation: np.ndarray | None = None
        self._due = 0  # online updates after which the chunk in flight is collected
        self._segments: list[str] = []
        self._segment_dir: Path | None = None
        self._saved_rows = 0
        self.wait_s = 0.0  # this process: time the trainer waited for the env

    @property
    def total_steps(self) -> int:
        return self.offline_steps + self.steps * self.utd

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if trainer.world_size > 1:
            raise UserError(f"online.steps={self.steps} runs in one process; set trainer.devices=1 for it")
        if not isinstance(pl_module, FlowQModule) or pl_module.seeds is not None:
            raise UserError(f"online.steps={self.steps} acts with one FlowQModule; a seed-batched run is offline only")
        dm = trainer.datamodule
        sampler = getattr(dm, "train_sampler", None)
        if isinstance(sampler, ReplayBuffer):
            self.buffer = sampler
        elif isinstance(sampler, WindowSampler):
            self.buffer = dm.train_sampler = ReplayBuffer(sampler, self.steps)
        else:
            raise UserError(
                f"online.steps={self.steps} needs one in-memory dataset (data.data_kind=standard); a sharded "
                "dataset is offline only, as in the release"
            )
        self.env_name = self.env_name or dm.eval_env_name
        self.sparse = bool(getattr(dm, "sparse", False))  # rewards as the offline data's

    def _close(self) -> None:
        if self.actor is not None:
            with contextlib.suppress(Exception, KeyboardInterrupt):  # the chunk in flight ends first
                if self.in_flight:
                    self.actor.call_wait()
                    self.in_flight = False
                self.actor.close()
            for process in self.actor.processes if self.in_flight else []:  # its worker failed or died
                process.kill()
            self.actor, self.in_flight = None, False

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.buffer is not None:
            self._publish(trainer)
        self._close()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._close()  # a fit ends here or in on_train_end (Lightning calls no teardown after an exception)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int):
        done = trainer.global_step - self.offline_steps  # online updates done
        if done < 0 or (self.env_steps >= self.steps and self.actor is None):
            return
        if self.actor is None:  # the chunk executes one step at a time (as the release's ActionChunkingWrapper)
            self.actor = worker_envs([self.env_name], self.env_kwargs)
            self._observation = self.actor.reset(seed=reset_seed(self.seed, self.episodes))[0][0]
        while True:
            if self.in_flight and done >= self._due:
                start = time.perf_counter()
                (steps,), self.in_flight = self.actor.call_wait(), False
                self.wait_s += time.perf_counter() - start
                self._commit(steps, trainer)
            if not self.in_flight and self.env_steps < self.steps:
                self._send(pl_module)
                if done >= self._due:
                    continue
            break
        if not self.in_flight and self.env_steps >= self.steps:
            self._close()  # every step taken: the remaining updates need no env

    def _send(self, module: FlowQModule) -> None:
        chunk = explore_chunk(module, self._observation, self.seed, self.chunks)[: self.steps - self.env_steps]
        self.chunks += 1
        self._due = self.utd * self.env_steps
        self.actor.call_async("run_chunk", chunk.astype(np.float32), reset_seed(self.seed, self.episodes + 1))
        self.in_flight = True

    def _commit(self, steps: dict[str, np.ndarray], trainer: L.Trainer) -> None:
        """Store the chunk's steps as the release records them (docs/online.md, "What is stored")."""
        reward, terminated, ended = steps["rewards"], steps["terminated"], steps["terminated"] | steps["truncated"]
        rewards = -(reward != 0).astype(np.float32) if self.sparse else reward.astype(np.float32)
        rows = {
            "observations": steps["observations"],
            "actions": steps["actions"],
            "rewards": rewards,
            "terminals": ended.astype(np.float32),
            "masks": 1.0 - terminated.astype(np.float32),
        }
        self.buffer.add(rows, visible_from=trainer.global_step + 2)  # Lightning has fetched the next batch already
        self.buffer.forget_before(trainer.global_step)
        n = len(rewards)
        self.env_steps += n
        self.episode_steps += n
        self.episode_return += float(reward.sum())
        self._observation = steps["next_observation"]
        if ended[-1]:
            metrics = {
                "online/episode_return": self.episode_return,
                "online/episode_success": float(steps["success"][-1]),
                "online/episode_length": float(self.episode_steps),
                "online/buffer_size": float(self.buffer.rows),
                "online/env_steps": float(self.env_steps),
            }
            report(trainer, metrics, step=trainer.global_step)
            self.episodes += 1
            self.episodes_done += 1
            self.episode_steps, self.episode_return = 0, 0.0
        self._publish(trainer)

    def _publish(self, trainer: L.Trainer) -> None:
        values = {
            "online/env_steps": self.env_steps,
            "online/offline_steps": min(trainer.global_step, self.offline_steps),
            "online/online_updates": max(0, trainer.global_step - self.offline_steps),
            "online/episodes": self.episodes_done,
            "online/buffer_size": self.buffer.rows,
            "online/wait_s": self.wait_s,
        }
        report(trainer, values)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        own = (checkpoint_dir(trainer) / SEGMENT_DIR).resolve()
        vanished = not all((own / name).is_file() for name in self._segments)  # e.g. its directory was removed
        if self._segment_dir != own or vanished:  # rows restored from elsewhere, or lost: write them all again
            self._segment_dir, self._segments, self._saved_rows = own, [], 0
        if self.buffer is not None:
            if self.env_steps > self._saved_rows:
                arrays = self.buffer.online_arrays(self._saved_rows, self.env_steps)
                self._segments.append(write_segment(own, self._saved_rows, arrays))
                self._saved_rows = self.env_steps
            self.buffer.forget_before(trainer.global_step)
        checkpoint[CHECKPOINT_KEY] = {
            **{k: getattr(self, k) for k in _COUNTERS},
            "segments": list(self._segments),
            "dir": str(own),
            "commits": self.buffer.commits() if self.buffer is not None else [],
            "cuts": list(self.cuts),
            "steps": self.steps,
            "utd": self.utd,
            "offline_steps": self.offline_steps,
        }

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        state = checkpoint.get(CHECKPOINT_KEY)
        if not state or self.buffer is None:
            return
        for key in _COUNTERS:
            setattr(self, key, type(getattr(self, key))(state[key]))
        rows = self.env_steps
        if rows:
            beside = (Path(trainer.ckpt_path).parent / SEGMENT_DIR).resolve()
            directory = beside if all((beside / n).is_file() for n in state["segments"]) else Path(state["dir"])
            arrays = read_segments(directory, state["segments"], rows)
            self.cuts = [int(c) for c in state["cuts"]]
            arrays["terminals"][self.cuts] = 1.0
            self.buffer.add(arrays, visible_from=0)
            self.buffer.restore_commits(state["commits"])
            self._segment_dir, self._segments, self._saved_rows = directory, list(state["segments"]), rows
        if self.episode_steps:  # the simulator's mid-episode state is not restorable: cut the episode here
            self.buffer.end_episode(visible_from=int(checkpoint["global_step"]))
            self.cuts.append(rows - 1)
            self.episodes += 1
            self.episode_steps, self.episode_return = 0, 0.0


def online_phase(cfg: Any) -> OnlinePhase | None:
    """The online phase of ``cfg``'s (checked) ``online`` node; None when ``online.steps=0`` (an offline run)."""
    node = cfg.get("online") or {}
    if not node.get("steps", 0):
        return None
    return OnlinePhase(
        steps=int(node.steps),
        offline_steps=int(cfg.trainer.max_steps),
        utd=int(node.get("utd", 1)),
        seed=int(cfg.seed),
        env_name=node.get("env_name"),
        env_kwargs={"success_timing": (cfg.get("eval") or {}).get("success_timing"), **(node.get("env_kwargs") or {})},
    )
