"""Files written whole (a temporary file beside, fsync, :func:`os.replace`: a reader never sees half a file), and a
write the machine refuses (disk full, quota, permissions, ...) as one line naming the file, the OS error, what is
still good and what to do: :class:`WriteRefusedError` (docs/errors.md)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

from rql_lightning.errors import UserError

RESUME = "resume with resume=auto"

# What each OS error asks of the user before the command can go on.
_FIXES = {
    errno.ENOSPC: "free space on that disk",
    errno.EDQUOT: "free space within your disk quota",
    errno.EFBIG: "raise the file size limit (ulimit -f)",
    errno.EACCES: "make {dir} writable again",
    errno.EPERM: "make {dir} writable again",
    errno.EROFS: "make {dir} writable again (it is on a read-only file system)",
    errno.ENOENT: "restore {dir}, which vanished during the write",
}


class WriteRefusedError(UserError):
    """The machine refused a write (disk full, file size limit, permissions, a vanished directory)."""


def os_error_in(err: BaseException | None) -> OSError | None:
    """The OS error behind ``err``: itself, or the nearest along its causes (a library may wrap it)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def refusal(what: str, path: str | Path, err: OSError, state: str, then: str = RESUME) -> str:
    """One line: ``could not write <what> <path> (<OS error>); <state>; <fix>, then <then>``."""
    path = Path(path)
    reason = f"[Errno {err.errno}] {err.strerror}" if err.errno else str(err)
    fix = _FIXES.get(err.errno, "fix the disk").format(dir=path.parent)
    return f"could not write {what} {path} ({reason}); {state}; {fix}, then {then}"


class _Recorder:
    """The file, keeping the OS error of a failed ``write`` (torch's serializer reports only ``unexpected pos``)."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def __getattr__(self, name: str) -> Any:  # flush, tell, seek, seekable ... as the file has them
        return getattr(self.file, name)


def write_atomically(
    path: str | Path,
    writer: Callable[[IO[bytes]], object],
    *,
    what: str,
    state: Callable[[], str],
    then: str = RESUME,
) -> None:
    """``writer(file)`` fills a temporary file beside ``path``, which then replaces it whole; a refused write is a
    :class:`WriteRefusedError` (``what`` the file's kind, ``state()`` what is still good, ``then`` how to go on)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    recorder = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            recorder = _Recorder(f)
            writer(recorder)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        cause = (recorder.error if recorder is not None else None) or os_error_in(err)
        if cause is None:
            raise
        raise WriteRefusedError(refusal(what, path, cause, state(), then)) from None
    finally:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
