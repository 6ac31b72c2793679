"""Data at rest: the kiosk's databases, keys and their directories belong to the service user alone.

Every process that writes them (kiosk, edge agent, hub tools) starts with a umask of 0o077, so whatever
it creates (a database's -wal and -shm files included) is private from the first byte; files that must
be private whatever the umask are also created with an explicit mode. At start each process checks
what it will read: a database or key that group or others can read, or that another user owns, is
refused with the command that fixes it, rather than used.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

PRIVATE_UMASK = 0o077
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
# SQLite in WAL mode keeps committed data in these beside the database until a checkpoint.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class ExposedDataError(RuntimeError):
    """A private file or directory is open to other users; the message says what to run."""


def private_umask() -> None:
    """For the start of every process that writes kiosk data."""
    os.umask(PRIVATE_UMASK)


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 if it does not exist; True if this call created it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    # os.open's mode is filtered by the umask, which can only take bits away: 0600 or less.
    return True


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) with mode 0700; an existing directory is left as it is
    and checked by :func:`check_private`."""
    if not path.is_dir():
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        path.chmod(PRIVATE_DIR_MODE)  # mkdir's mode passes through the umask
    return path


def database_files(database: Path) -> tuple[Path, ...]:
    """The database and the journal files SQLite keeps beside it."""
    return (database, *(database.with_name(database.name + suffix) for suffix in SQLITE_SIDE_FILES))


def problem(path: Path) -> str | None:
    """What is wrong with the ownership or mode of ``path`` (None if absent or private)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    directory = stat.S_ISDIR(info.st_mode)
    wanted = PRIVATE_DIR_MODE if directory else PRIVATE_FILE_MODE
    if info.st_uid != os.geteuid():
        return (
            f"{path} is owned by uid {info.st_uid}, not by the service user (uid {os.geteuid()}): "
            f"run `chown {os.geteuid()} {path}`"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        kind = "directory" if directory else "file"
        return f"{kind} {path} is open to group/others (mode {mode:04o}): run `chmod {wanted:o} {path}`"
    return None


def check_private(paths: Iterable[Path]) -> None:
    """Raises ExposedDataError naming every path group or others can reach (absent paths are fine)."""
    problems = [found for path in paths if (found := problem(path)) is not None]
    if problems:
        raise ExposedDataError("; ".join(problems))
