"""Does a long run stay flat? Train the quickstart through the real ``rql-train`` and watch it from outside.

    python benchmarks/soak.py                                   # 20 minutes, an evaluation every 1,000 steps
    python benchmarks/soak.py --minutes 1 --eval-every 200 --small data.generate_transitions=20000

The training process and its children (the evaluation env workers) are sampled every ``--interval`` seconds
through ``/proc``: resident memory, open file descriptors, processes and threads; the step rate comes from the
run's own ``summary.json`` (rewritten after every evaluation with ``step`` and ``wall_time_s``). The soak
starts at the first evaluation (data generated or loaded, networks built, env workers started) and lasts
``--minutes``; then the run gets SIGTERM (it saves and stops, as on a cluster) and any process of its session
still alive is counted as left behind.

Start and end are windows of ``--window`` samples: memory is their median; descriptors, processes and threads
their minimum (a leak shows in every sample, a file open for a checkpoint write in one). Flat means memory
grew under 5% and descriptors and processes did not grow. Prints one JSON; the samples go to
``<out>/samples.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RQL_TRAIN = str(Path(sys.executable).with_name("rql-train"))
MEMORY_GROWTH_TARGET = 0.05
# --small: the quickstart's loop, evaluation and env workers with tiny networks, for a smoke of this script
SMALL = [
    "model.num_critics=2",
    "model.actor_hidden_dims=[32,32]",
    "model.critic_hidden_dims=[32,32]",
    "model.compile=false",
    "data.batch_size=64",
    "eval.episodes=2",
    "trainer.log_every_n_steps=50",
]


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, session id) of a live process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp session ...
    return int(fields[1]), int(fields[3])


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def process_tree(root: int) -> list[int]:
    """``root`` and every descendant still alive."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        st = _stat(pid)
        if st is not None:
            children.setdefault(st[0], []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def session_members(sid: int) -> list[int]:
    return [pid for pid in _all_pids() if (st := _stat(pid)) is not None and st[1] == sid]


def describe(pid: int) -> str:
    """``<pid> <command line>`` (shortened) of a process, for naming what outlived the run."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = "?"
    return f"{pid} {cmd[:160]}"


def sample_tree(root: int) -> dict[str, float]:
    """Resident memory (MiB, summed), open descriptors, processes and threads of ``root``'s tree."""
    rss_kib = fds = threads = procs = 0
    for pid in process_tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            n_fds = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:  # exited between the listing and the read
            continue
        fields = dict(line.split(":", 1) for line in status if ":" in line)
        rss_kib += int(fields.get("VmRSS", "0 kB").split()[0])
        threads += int(fields["Threads"])
        fds += n_fds
        procs += 1
    return {"rss_mib": rss_kib / 1024, "fds": fds, "procs": procs, "threads": threads}


def read_summary(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):  # not written yet (it is replaced atomically, never half-written)
        return None


def step_rate(points: list[tuple[float, int]]) -> float | None:
    """Steps per second between the first and last (wall_time_s, step) point, training and evaluation both."""
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return None
    return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])


def window(samples: list[dict]) -> dict[str, float]:
    """Median memory and minimum counts of a window of samples."""
    counts = {k: min(s[k] for s in samples) for k in ("fds", "procs", "threads")}
    return {"rss_mib": round(statistics.median(s["rss_mib"] for s in samples), 1), **counts}


def soak(args: argparse.Namespace) -> dict:
    out = Path(args.out or tempfile.mkdtemp(prefix="rql-soak-")).resolve()
    run_dir = out / "run"
    out.mkdir(parents=True, exist_ok=True)
    overrides = [
        "experiment=quickstart",
        f"eval.every_n_steps={args.eval_every}",
        "trainer.max_steps=1000000000",
        "callbacks.checkpoint.every_n_train_steps=5000",
        "trainer.enable_progress_bar=false",
        "extras.print_config=false",
        f"hydra.run.dir={run_dir}",
        *(SMALL if args.small else []),
        *args.overrides,
    ]
    log = (out / "train.log").open("w")
    proc = subprocess.Popen([RQL_TRAIN, *overrides], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    samples: list[dict] = []
    evals: list[tuple[float, int]] = []  # (wall_time_s, step) at each summary.json rewrite after an evaluation
    started = deadline = None
    launched = time.monotonic()
    with (out / "samples.jsonl").open("w") as trace:
        while proc.poll() is None:
            now = time.monotonic()
            summary = read_summary(run_dir)
            if summary and summary.get("eval_step") and summary.get("wall_time_s"):
                point = (float(summary["wall_time_s"]), int(summary["step"]))
                if not evals or point[0] > evals[-1][0]:
                    evals.append(point)
                if started is None:
                    started, deadline = now, now + 60 * args.minutes
            if started is not None:
                sample = {"t": round(now - started, 1), "step": evals[-1][1], **sample_tree(proc.pid)}
                samples.append(sample)
                trace.write(json.dumps(sample) + "\n")
                trace.flush()
                if now >= deadline and len(samples) >= 2 * args.window:
                    break
            elif now - launched > 60 * args.startup_minutes:
                break
            time.sleep(args.interval)
    ended = proc.poll() is not None  # on its own: a crash, or max_steps reached
    if not ended:
        proc.send_signal(signal.SIGTERM)  # saves last.ckpt and stops (the preemption callback)
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()
    left_behind, grace = session_members(proc.pid), time.monotonic() + args.exit_grace
    while left_behind and time.monotonic() < grace:  # workers told to stop may take a moment after their parent
        time.sleep(1)
        left_behind = session_members(proc.pid)
    left = [describe(pid) for pid in left_behind]
    for pid in left_behind:  # the soak's own children: clean up after reporting them
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    result: dict = {
        "command": ["rql-train", *overrides],
        "run_dir": str(run_dir),
        "exit_code": proc.returncode,
        "stopped_by": "training ended on its own" if ended else "SIGTERM after the soak",
        "minutes": round(samples[-1]["t"] / 60, 2) if samples else 0.0,
        "samples": len(samples),
        "evaluations": len(evals),
        "left_behind_after_exit": left,
    }
    if len(samples) < 2 * args.window or len(evals) < 3:
        result["error"] = (
            f"too few samples ({len(samples)}) or evaluations ({len(evals)}) to compare start and end; "
            f"see {out / 'train.log'}"
        )
        result["flat"] = False
        return result
    start, end = window(samples[: args.window]), window(samples[-args.window :])
    quarter = max(2, len(evals) // 4)
    rate_start, rate_end = step_rate(evals[:quarter]), step_rate(evals[-quarter:])
    growth = {
        "rss": round(end["rss_mib"] / start["rss_mib"] - 1, 4),
        "fds": end["fds"] - start["fds"],
        "procs": end["procs"] - start["procs"],
        "threads": end["threads"] - start["threads"],
    }
    result.update(
        start={**start, "steps_per_s": rate_start and round(rate_start, 2), "step": samples[0]["step"]},
        end={**end, "steps_per_s": rate_end and round(rate_end, 2), "step": samples[-1]["step"]},
        peak={k: round(max(s[k] for s in samples), 1) for k in ("rss_mib", "fds", "procs", "threads")},
        growth=growth,
        step_rate_ratio=round(rate_end / rate_start, 3) if rate_start and rate_end else None,
        targets={"rss": f"< {MEMORY_GROWTH_TARGET:.0%}", "fds": "0", "procs": "0", "left_behind_after_exit": "[]"},
        flat=growth["rss"] < MEMORY_GROWTH_TARGET and growth["fds"] <= 0 and growth["procs"] <= 0 and not left_behind,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="how long to soak after the first evaluation")
    parser.add_argument("--eval-every", type=int, default=1000, help="eval.every_n_steps (training steps)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--window", type=int, default=3, help="samples in the start and end windows")
    parser.add_argument("--startup-minutes", type=float, default=30.0, help="give up without a first evaluation")
    parser.add_argument("--exit-grace", type=int, default=15, help="seconds the run's processes get to exit")
    parser.add_argument("--small", action="store_true", help="tiny networks, no compile, 2 evaluation episodes")
    parser.add_argument("--out", help="where the run, its log and the samples go (default: a new temp folder)")
    parser.add_argument("overrides", nargs="*", help="more rql-train overrides, e.g. data.generate_transitions=20000")
    print(json.dumps(soak(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
