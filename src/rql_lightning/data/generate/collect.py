"""Episodes in order, from this process or a pool of spawned workers, with bounded memory."""

from __future__ import annotations

import multiprocessing as mp
import warnings
from collections import deque
from collections.abc import Generator, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice

import numpy as np

from rql_lightning.data.generate.play_protocol import EpisodeCollector, EpisodeSpec, quiet_sim_warnings

# Episodes queued per worker: keeps workers busy while the parent saves a file, without unbounded buffering.
EPISODES_IN_FLIGHT_PER_WORKER = 4

# Worker-process state: each spawned worker builds one collector in its initializer and reuses it.
_WORKER_COLLECTOR: EpisodeCollector | None = None


def _worker_init(dataset_name: str, seed: int, max_episode_steps: int) -> None:
    global _WORKER_COLLECTOR
    quiet_sim_warnings()
    _WORKER_COLLECTOR = EpisodeCollector(dataset_name, seed, max_episode_steps)


def _worker_collect(spec: EpisodeSpec) -> dict[str, np.ndarray]:
    assert _WORKER_COLLECTOR is not None, "worker initializer did not run"
    return _WORKER_COLLECTOR.collect(spec)


def collect_in_process(
    dataset_name: str, seed: int, max_episode_steps: int, specs: Iterable[EpisodeSpec]
) -> Generator[dict[str, np.ndarray], None, None]:
    """Single-worker path: no subprocess, but the caller's global numpy RNG state is restored afterwards."""
    saved_state = np.random.get_state()
    try:
        with warnings.catch_warnings():
            quiet_sim_warnings()
            collector = EpisodeCollector(dataset_name, seed, max_episode_steps)
        for spec in specs:
            yield collector.collect(spec)
    finally:
        np.random.set_state(saved_state)


def collect_in_pool(
    dataset_name: str, seed: int, max_episode_steps: int, specs: Iterable[EpisodeSpec], workers: int
) -> Generator[dict[str, np.ndarray], None, None]:
    """Yield episodes in order from spawned workers, with a bounded number in flight (bounded memory).

    ``ProcessPoolExecutor`` rather than ``multiprocessing.Pool``: a worker that dies or fails to initialise
    raises ``BrokenProcessPool`` here instead of being respawned forever. 'spawn' because MuJoCo/GL state must
    not be inherited through fork (so scripts calling this need the ``if __name__ == "__main__":`` guard).
    """
    context = mp.get_context("spawn")
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_init, initargs=(dataset_name, seed, max_episode_steps)
    )
    try:
        todo = iter(specs)
        pending: deque[Future[dict[str, np.ndarray]]] = deque(
            pool.submit(_worker_collect, spec) for spec in islice(todo, workers * EPISODES_IN_FLIGHT_PER_WORKER)
        )
        while pending:
            episode = pending.popleft().result()
            for spec in islice(todo, 1):
                pending.append(pool.submit(_worker_collect, spec))
            yield episode
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def collect_episodes(
    dataset_name: str, seed: int, max_episode_steps: int, specs: list[EpisodeSpec], num_workers: int
) -> Generator[dict[str, np.ndarray], None, None]:
    """Episodes of ``specs`` in order: in this process for one worker, else from a spawned pool."""
    workers = min(num_workers, len(specs))
    if workers == 1:
        return collect_in_process(dataset_name, seed, max_episode_steps, specs)
    return collect_in_pool(dataset_name, seed, max_episode_steps, specs, workers)
