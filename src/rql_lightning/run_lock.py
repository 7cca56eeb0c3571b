"""One writer per run directory: ``<run dir>/.rql-lock`` (created with ``O_CREAT | O_EXCL`` before the run writes
anything of its own, removed when it ends) names the writing process; a second ``rql-train`` there would overwrite
its checkpoints. A lock whose holder is gone (this host: its pid no longer runs; another: its heartbeat is older
than ``stale_after_s``) is taken over with a warning. Under DDP only global rank 0 takes it."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from rql_lightning.errors import UserError
from rql_lightning.file_writes import WriteRefusedError, write_atomically

log = logging.getLogger("rql_lightning")
LOCK_NAME = ".rql-lock"


class RunDirBusy(UserError):
    """Another live process holds the run directory's lock."""


def is_rank_zero_process() -> bool:
    """Global rank 0 of a launch, from the variables launchers set (torchrun, Lightning's, SLURM)."""
    return all(os.environ.get(v, "0") == "0" for v in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID"))


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux ``/proc``), which tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of proc(5); the name before ")" may hold spaces


def _running_here(pid: int, pid_start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    now = _process_start(pid)
    return pid_start is None or now is None or now == pid_start


class RunLock:
    """The lock of one run directory; :meth:`acquire` takes it (or refuses), :meth:`release` gives it back."""

    def __init__(self, run_dir: str | Path, heartbeat_s: float = 30.0, stale_after_s: float = 300.0) -> None:
        self.run_dir = Path(run_dir).expanduser()
        self.path = self.run_dir / LOCK_NAME
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.record: dict[str, Any] = {}
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def acquire(self) -> None:
        """Create the lock file, or take over a stale one; a live holder is :class:`RunDirBusy`."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self.record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": now,
            "heartbeat": now,
            "pid_start": _process_start(os.getpid()),
            "token": uuid.uuid4().hex,
        }
        for _ in range(3):  # a lost race with another taker is one more look
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.read()
                why = self.stale_reason(holder)
                if why is None:
                    raise RunDirBusy(self.busy_message(holder)) from None
                if self.read() == holder:  # still the lock we judged (not a fresh one another taker made)
                    with suppress(FileNotFoundError):
                        self.path.unlink()
                    log.warning(f"taking over the run directory {self.run_dir}: its lock {why}")
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(self.record, f)
                f.flush()
                os.fsync(f.fileno())
            self._beat = threading.Thread(target=self._heartbeat, name="rql-run-lock", daemon=True)
            self._beat.start()
            return
        raise RunDirBusy(self.busy_message(self.read()))

    def read(self) -> dict[str, Any] | None:
        """The holder's record; None while it is being written (or if it is not ours to parse)."""
        try:
            record = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and {"pid", "host", "heartbeat"} <= record.keys() else None

    def stale_reason(self, holder: dict[str, Any] | None) -> str | None:
        """Why ``holder``'s lock may be taken over, or None while its holder may still run."""
        if holder == {}:
            return "vanished"
        if holder is None:  # half-written by a taker just now, or garbage: judged by the file's age
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return "vanished"
            return f"is unreadable and {age:.0f} s old" if age > self.stale_after_s else None
        if holder["host"] == socket.gethostname():
            if _running_here(int(holder["pid"]), holder.get("pid_start")):
                return None
            return f"names pid {holder['pid']} on this host, which is no longer running"
        age = time.time() - float(holder["heartbeat"])
        if age > self.stale_after_s:
            return (
                f"names pid {holder['pid']} on host {holder['host']}, whose heartbeat is {age:.0f} s old "
                f"(> run_lock.stale_after_s={self.stale_after_s:g})"
            )
        return None

    def busy_message(self, holder: dict[str, Any] | None) -> str:
        fix = "wait for it to end or stop it, or write elsewhere with hydra.run.dir=<another dir>"
        if not holder:
            return f"the run directory {self.run_dir} is being locked by another rql-train ({self.path}); {fix}"
        beat = time.time() - float(holder["heartbeat"])
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder.get("started", holder["heartbeat"]))))
        if holder["host"] != socket.gethostname():
            fix += f" (taken over once its heartbeat is older than run_lock.stale_after_s={self.stale_after_s:g})"
        return (
            f"the run directory {self.run_dir} is in use by pid {holder['pid']} on host {holder['host']} "
            f"since {started} (heartbeat {beat:.0f} s ago); {fix}"
        )

    def _heartbeat(self) -> None:
        """Rewrite the record's heartbeat (written whole, so a reader never sees half of it) while it is ours."""
        while not self._stop.wait(self.heartbeat_s):
            with suppress(OSError, WriteRefusedError):  # a full disk must not stop training; the next beat tries again
                if (self.read() or {}).get("token") != self.record["token"]:
                    log.warning(f"the lock of {self.run_dir} was taken over by another process; this run keeps writing")
                    return
                self.record["heartbeat"] = time.time()
                write_atomically(
                    self.path, lambda f: f.write(json.dumps(self.record).encode()), what="the run lock", state=str
                )

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        if (self.read() or {}).get("token") == self.record.get("token"):
            with suppress(FileNotFoundError):
                self.path.unlink()


@contextmanager
def hold_run_dir(run_dir: str | Path, settings: Any = None) -> Iterator[RunLock | None]:
    """Hold ``run_dir``'s lock for the ``with`` block on global rank 0 (``settings``: the ``run_lock`` config)."""
    if not is_rank_zero_process():
        yield None
        return
    lock = RunLock(run_dir, **dict(settings or {}))
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
