"""Dataset load time, peak memory and window sampling speed on a synthetic 1M-transition file; prints JSON.

    python benchmarks/data.py [--transitions 1000000] [--dataset cube-single-play-v0] [--batch-size 256] [--tasks 1,5]

The file has OGBench's on-disk format (observations, actions, terminals, qpos, qvel and, for puzzle/scene,
button_states; 1001-row episodes) filled with random values of the right shapes, so ogbench really
relabels every row. Each loader runs in a fresh process, so its peak RSS is its own:

* ``ours``: :func:`rql_lightning.data.ogbench_datamodule.load_singletask` (compact read, relabel, in-place squeeze
  into the regular layout; observations held once);
* ``ogbench_regular``: the previous path, ``ogbench.make_env_and_datasets(compact_dataset=False)`` then
  dropping ``next_observations`` and converting (what this project did before).

``--tasks 1,5`` also loads the file for the first 5 tasks of its dataset at once (``ours_5tasks``: one copy of
the observations and actions, a reward and mask column per task; the multi-task run's load) and prints
``tasks_peak_rss_ratio``, each task count's peak RSS over the one-task load's.

Times exclude building the environment (done before the clock starts, in both). ``rss_before_mb`` is the
resident size after imports and the env; ``peak_rss_mb`` the process's high-water mark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

EPISODE_ROWS = 1001


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def singletask(dataset: str, task: int = 1) -> str:
    prefix, version = dataset.rsplit("-", 1)
    return f"{prefix}-singletask-task{task}-{version}"


def synthesize(dataset: str, rows: int, path: Path) -> None:
    """An OGBench-format file of ``rows`` random rows (episodes of 1001 rows, the last one terminal)."""
    import ogbench

    env = ogbench.make_env_and_datasets(singletask(dataset), env_only=True)
    u = env.unwrapped
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    nq, nv = u._model.nq, u._model.nv
    rng = np.random.default_rng(0)
    terminals = np.zeros(rows, bool)
    terminals[EPISODE_ROWS - 1 :: EPISODE_ROWS] = True
    terminals[-1] = True
    data = dict(
        observations=rng.standard_normal((rows, obs_dim), np.float32),
        actions=rng.uniform(-1, 1, (rows, act_dim)).astype(np.float32),
        terminals=terminals,
        qpos=rng.uniform(-0.5, 0.5, (rows, nq)).astype(np.float32),
        qvel=rng.standard_normal((rows, nv), np.float32),
    )
    if hasattr(u, "_num_buttons"):
        data["button_states"] = rng.integers(0, 2, (rows, u._num_buttons), dtype=np.int64)
    env.close()
    np.savez(path, **data)
    val_rows = min(rows, 10 * EPISODE_ROWS)
    val = {k: v[:val_rows].copy() for k, v in data.items()}
    val["terminals"][-1] = True
    np.savez(str(path).replace(".npz", "-val.npz"), **val)


def measure(variant: str, dataset: str, path: str, batch_size: int, chunk_size: int, tasks: int = 1) -> dict:
    """Run in a fresh process: load with one loader, report time and memory (and sampling speed for ours);
    ``tasks > 1``: ours for that many tasks of the dataset at once."""
    import ogbench
    import torch

    from rql_lightning.data.dataset_checks import ACTION_CLIP_EPS
    from rql_lightning.data.ogbench_datamodule import load_npz, task_env
    from rql_lightning.data.windows import OfflineArrays, sampler_from_arrays

    name = singletask(dataset)
    with task_env(name) as env:  # built before the measurement: the loader keeps it for the process
        pass
    if tasks > 1:  # load_npz builds each task's env in turn (one alive at a time): counted in the peak
        name, env = [singletask(dataset, t) for t in range(1, tasks + 1)], None
    before = rss_mb()
    t0 = time.perf_counter()
    if variant == "ours":
        train = load_npz(Path(path), name)
        val = load_npz(Path(path.replace(".npz", "-val.npz")), name)
    else:
        tr, va = ogbench.make_env_and_datasets(name, dataset_path=path, dataset_only=True, cur_env=env)

        def convert(ds):
            ds.pop("next_observations", None)
            return OfflineArrays(
                observations=np.ascontiguousarray(ds["observations"], dtype=np.float32),
                actions=np.clip(ds["actions"], -1 + ACTION_CLIP_EPS, 1 - ACTION_CLIP_EPS).astype(np.float32),
                rewards=ds["rewards"].astype(np.float32),
                terminals=ds["terminals"].astype(np.float32),
                masks=ds["masks"].astype(np.float32),
            )

        train, val = convert(tr), convert(va)
        del tr, va
    load_s = time.perf_counter() - t0
    out = {
        "variant": variant,
        "tasks": tasks,
        "transitions": len(train),
        "load_s": round(load_s, 3),
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_over_before_mb": round(peak_rss_mb() - before, 1),
        "arrays_mb": round((train.nbytes + val.nbytes) / 2**20, 1),
    }
    if variant == "ours" and tasks == 1:
        sampler = sampler_from_arrays(train, chunk_size, torch.device("cpu"))
        g = torch.Generator().manual_seed(0)
        out.update(batch_size=batch_size, chunk_size=chunk_size)
        for threads in sorted({1, torch.get_num_threads()}):
            torch.set_num_threads(threads)
            for _ in range(20):
                sampler.sample(batch_size, g)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 2.0:
                sampler.sample(batch_size, g)
                n += 1
            dt = time.perf_counter() - t0
            out[f"windows_per_s_{threads}_threads"] = round(n * batch_size / dt)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transitions", type=int, default=1_000_000)
    ap.add_argument("--dataset", default="cube-single-play-v0")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--chunk-size", type=int, default=5)
    ap.add_argument("--tasks", default="1", help="task counts to load (ours), comma-separated, e.g. 1,5")
    ap.add_argument("--measure", choices=("ours", "ogbench_regular"), help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    task_counts = sorted({1, *map(int, args.tasks.split(","))})
    if args.measure:
        out = measure(args.measure, args.dataset, args.path, args.batch_size, args.chunk_size, int(args.tasks))
        print(json.dumps(out))
        return
    with tempfile.TemporaryDirectory(prefix="rql-bench-data-") as tmp:
        path = Path(tmp) / f"{args.dataset}.npz"
        t0 = time.perf_counter()
        rows = args.transitions + -(-args.transitions // (EPISODE_ROWS - 1))  # + one final row per episode
        synthesize(args.dataset, rows, path)
        synth_s = time.perf_counter() - t0
        results = {}
        runs = [("ours", 1), ("ogbench_regular", 1), *(("ours", t) for t in task_counts if t > 1)]
        for variant, tasks in runs:
            cmd = [sys.executable, __file__, "--measure", variant, "--path", str(path), "--dataset", args.dataset]
            cmd += ["--batch-size", str(args.batch_size), "--chunk-size", str(args.chunk_size), "--tasks", str(tasks)]
            env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}  # as rql-train sets it
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
            results[variant if tasks == 1 else f"{variant}_{tasks}tasks"] = json.loads(
                proc.stdout.strip().splitlines()[-1]
            )
        if len(task_counts) > 1:
            one = results["ours"]["peak_rss_mb"]
            results["tasks_peak_rss_ratio"] = {
                t: round((results["ours"] if t == 1 else results[f"ours_{t}tasks"])["peak_rss_mb"] / one, 3)
                for t in task_counts
            }
        print(
            json.dumps(
                {
                    "dataset": args.dataset,
                    "file_mb": round(path.stat().st_size / 2**20, 1),
                    "synthesize_s": round(synth_s, 1),
                    "machine": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(),
                    **results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
