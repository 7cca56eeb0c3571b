"""Evaluation throughput: the vectorised evaluator (``evaluate_policy``) vs a serial loop; prints JSON.

    python benchmarks/eval.py [--episodes 10] [--num-envs <cores>] [--env cube-single-singletask-task1-v0]
    python benchmarks/eval.py --tasks 1,2 --seeds 0,1 [--episodes 5] [--num-envs 1]

With ``--tasks``: a paper column's evaluation instead, an untrained RQL module at paper sizes with one replica per
(task, seed) evaluated by :class:`~rql_lightning.evaluator.Evaluator` (``--num-envs`` envs per replica) twice on
kept envs; prints both wall times, the policy calls of one evaluation and a digest of every episode's outcome
(equal digests: equal results).  It uses only the evaluator's public face, so it times older code too.

Both run the same episodes (episode k seeded seed + k) with the same cheap deterministic policy (a fixed
random linear map of the observation, tanh-squashed, one chunk of ``--chunk-size`` actions per call), so the
simulator dominates.  The serial baseline is the plain one-episode-at-a-time loop on a single env
(``make_eval_env``, reset, step until done); the vectorised evaluator runs ``--num-envs`` envs in
subprocesses (``AsyncVectorEnv``, each a forked copy of one env built in this process; none is kept between the
timed parts), each stepping whole
action chunks, and batches the policy calls.  Wall times include building the envs (what one evaluation in
training pays: ~1 s for the env, then the forks); ``speedup_excluding_startup`` subtracts the separately
measured build times.  Also reported: ``evaluate_policy`` with one in-process env (the vector machinery's own
overhead), a second evaluation on a kept vector env (``EvalEnvs``, what training pays from its second
evaluation on), and whether all of them give identical per-episode returns and lengths.

The speedup is bounded by the free cores: at most ``min(num_envs, episodes, free cores)``, less the imbalance
of the last wave of episodes and the env build (~0.7 s on an idle core, once, before the workers fork).  For
10 episodes of cube-single (~0.2-0.3 s each) the build is a large share of the serial time, so >= 4x
including start-up needs >= ~8 free cores; the steady-state figure
(``speedup_excluding_startup``) approaches the core count.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time

import numpy as np

import rql_lightning.envs as envs_module
from rql_lightning.envs import EvalEnvs, evaluate_policy, make_eval_env


class LinearPolicy:
    """Deterministic: ``tanh(obs @ W)`` reshaped into ``(N, chunk, act_dim)`` chunks."""

    def __init__(self, obs_dim: int, act_dim: int, chunk_size: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.w = (rng.normal(size=(obs_dim, chunk_size * act_dim)) / np.sqrt(obs_dim)).astype(np.float32)
        self.shape = (chunk_size, act_dim)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.tanh(obs.astype(np.float32) @ self.w).reshape(obs.shape[0], *self.shape)


def serial(policy, env_name: str, episodes: int, seed: int, chunk_size: int, env_kwargs: dict):
    """One env, one episode after another, one policy call per chunk: the loop without vectorisation."""
    start = time.perf_counter()
    env = make_eval_env(env_name, **env_kwargs)
    returns, lengths, successes = [], [], []
    try:
        for k in range(episodes):
            obs, _ = env.reset(seed=seed + k)
            ret, t, done, info = 0.0, 0, False, {}
            while not done:
                if t % chunk_size == 0:
                    chunk = np.clip(policy(np.asarray(obs, np.float32)[None])[0], -1.0, 1.0)
                obs, reward, terminated, truncated, info = env.step(chunk[t % chunk_size])
                ret += float(reward)
                t += 1
                done = terminated or truncated
            returns.append(ret)
            lengths.append(t)
            successes.append(bool(info.get("success", False)))
    finally:
        env.close()
    return np.array(returns), np.array(lengths), np.array(successes), time.perf_counter() - start


def startup(env_name: str, num_envs: int, chunk_size: int, env_kwargs: dict) -> float:
    """Seconds to build (and close) the vector env ``evaluate_policy`` uses: workers and their MuJoCo envs."""
    start = time.perf_counter()
    with EvalEnvs() as holder:
        holder.get([env_name] * num_envs, chunk_size, env_kwargs, frame_skip=1).reset(seed=list(range(num_envs)))
    return time.perf_counter() - start


def column(args: argparse.Namespace, env_kwargs: dict) -> dict:
    """Two evaluations of a (task, seed) replica batch on kept envs (the first builds them), policy calls counted."""
    import torch

    from rql_lightning.evaluator import Evaluator
    from rql_lightning.modules.rql import RQLModule

    tasks, seeds = ([int(x) for x in a.split(",")] for a in (args.tasks, args.seeds))
    probe = make_eval_env(args.env, **env_kwargs)
    obs_dim, act_dim = probe.observation_space.shape[0], probe.action_space.shape[0]
    probe.close()
    torch.manual_seed(0)
    pairs = [(t, s) for t in tasks for s in seeds]
    module = RQLModule(obs_dim, act_dim, args.chunk_size, seeds=[s for _, s in pairs], task_ids=[t for t, _ in pairs])
    calls, act = [], module.act
    module.act = lambda obs, noise: calls.append(1) or act(obs, noise)
    times = []
    with Evaluator(args.env, args.episodes, num_envs=args.num_envs, env_kwargs=env_kwargs) as evaluator:
        for _ in range(2):
            start = time.perf_counter()
            results = evaluator.run(module)
            times.append(time.perf_counter() - start)
    outcomes = [(k, r.episode_returns.tolist(), r.episode_lengths.tolist()) for k, r in sorted(results.items())]
    return {
        "env": args.env,
        "tasks": tasks,
        "seeds": seeds,
        "episodes_per_replica": args.episodes,
        "num_envs_per_replica": args.num_envs,
        "chunk_size": args.chunk_size,
        "first_evaluation_s": round(times[0], 3),  # builds the envs
        "kept_envs_evaluation_s": round(times[1], 3),
        "policy_calls_per_evaluation": len(calls) // 2,
        "outcome_digest": hashlib.sha256(json.dumps(outcomes).encode()).hexdigest()[:16],
        "cpu_count": os.cpu_count(),
        "load_avg_1min_after": os.getloadavg()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default="cube-single-singletask-task1-v0")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--num-envs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--chunk-size", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-episode-steps", type=int, default=None, help="override the env's time limit")
    ap.add_argument("--tasks", default=None, help="comma-separated task ids: time a paper column's evaluation")
    ap.add_argument("--seeds", default="0", help="with --tasks: comma-separated seeds")
    args = ap.parse_args()
    envs_module.SPARES_KEPT = 0  # no env handed on between the timed parts: each builds its own, as a run's first does
    env_kwargs = {} if args.max_episode_steps is None else {"max_episode_steps": args.max_episode_steps}
    if args.tasks is not None:
        print(json.dumps(column(args, env_kwargs), indent=2))
        return

    probe = make_eval_env(args.env, **env_kwargs)
    obs_dim, act_dim = probe.observation_space.shape[0], probe.action_space.shape[0]
    probe.close()
    policy = LinearPolicy(obs_dim, act_dim, args.chunk_size)
    common = dict(num_episodes=args.episodes, seeds=[args.seed], chunk_size=args.chunk_size, env_kwargs=env_kwargs)

    s_ret, s_len, s_succ, s_time = serial(policy, args.env, args.episodes, args.seed, args.chunk_size, env_kwargs)
    (one,) = evaluate_policy(policy, [args.env], num_envs=1, **common)
    with EvalEnvs() as kept:
        (vec,) = evaluate_policy(policy, [args.env], num_envs=args.num_envs, envs=kept, **common)
        (reused,) = evaluate_policy(policy, [args.env], num_envs=args.num_envs, envs=kept, **common)
    n = min(args.num_envs, args.episodes)
    s_start = startup(args.env, 1, args.chunk_size, env_kwargs)
    v_start = startup(args.env, n, args.chunk_size, env_kwargs)
    steps = int(s_len.sum())
    same = all(
        np.array_equal(r.episode_returns, s_ret) and np.array_equal(r.episode_lengths, s_len)
        for r in (one, vec, reused)
    )
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    print(
        json.dumps(
            {
                "env": args.env,
                "episodes": args.episodes,
                "env_steps": steps,
                "chunk_size": args.chunk_size,
                "cpu_count": os.cpu_count(),
                "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                "load_avg_1min_before": load,
                "num_envs": args.num_envs,
                "serial_s": round(s_time, 3),
                "vectorised_1env_s": round(one.wall_time_s, 3),
                "vectorised_s": round(vec.wall_time_s, 3),
                "vectorised_kept_envs_s": round(reused.wall_time_s, 3),  # a later evaluation: no env build
                "serial_steps_per_s": round(steps / s_time, 1),
                "vectorised_steps_per_s": round(steps / vec.wall_time_s, 1),
                "speedup_vs_serial": round(s_time / vec.wall_time_s, 2),
                # the same without building the envs (one env, vs num_envs workers), measured separately
                "serial_startup_s": round(s_start, 3),
                "vectorised_startup_s": round(v_start, 3),
                "speedup_excluding_startup": round((s_time - s_start) / max(vec.wall_time_s - v_start, 1e-9), 2),
                "overhead_1env_vs_serial": round(one.wall_time_s / s_time, 2),
                "identical_episodes": bool(same),
                "success_rate": float(s_succ.mean()),
                "python": platform.python_version(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
