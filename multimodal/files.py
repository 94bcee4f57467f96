"""Writing files so that a failed write never leaves a truncated one: write beside it, then replace."""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path


STALE_TMP_S = 60.0  # a temp file this old beside its target is a save that was killed (a save takes milliseconds)


def write_atomic(path: Path, data: str | bytes, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename; with
    ``exclusive``, never over an existing file (:class:`FileExistsError`). Temp files that a killed save left
    beside ``path`` are removed first."""
    path = Path(path)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            os.link(tmp, path)  # fails if the name exists, even one made a moment ago
        else:
            os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _remove_stale_temps(path: Path) -> None:
    import time

    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if tmp.lstat().st_mtime < time.time() - STALE_TMP_S:
                tmp.unlink()
        except OSError:
            pass  # gone already, or not ours to remove


def not_own_file(path: Path) -> str | None:
    """Why an existing ``path`` must not be used as one of moodtune's files ("is a symbolic link", "is not a regular
    file", "belongs to another user"); None when it is the user's own regular file or does not exist."""
    import stat

    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # absent (creating it will say what is wrong with the folder)
        return None
    except OSError as exc:
        return f"cannot be checked ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return "belongs to another user"
    return None


def check_user_file(path: str | Path, force: bool, error: type[Exception]) -> Path:
    """``path`` as a file the user asked for may be written (before any work): its folder exists, and nothing is in
    the way unless ``force``, and then only a regular file of the user's own (never a link, a device, another user's
    file). Problems raise ``error``."""
    path = Path(path).expanduser()
    if not path.parent.is_dir():
        raise error(f"cannot write {path}: the folder {path.parent} does not exist")
    why = not_own_file(path)
    if why:
        raise error(f"{path} is not a regular file of your own ({why.removeprefix('is ')}); choose another name")
    if path.exists() and not force:
        raise error(f"{path} exists already; pass --force to replace it")
    return path


def write_user_file(path: str | Path, data: str | bytes, force: bool, error: type[Exception]) -> Path:
    """Write a file the user asked for (an export) whole, as :func:`check_user_file` allows; a new one is created
    exclusively (one that appears meanwhile is not overwritten). Problems raise ``error``."""
    path = check_user_file(path, force, error)
    try:
        write_atomic(path, data, exclusive=not force)
    except FileExistsError:
        raise error(f"{path} appeared while it was being written; pass --force to replace it") from None
    except OSError as exc:
        raise error(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def create_exclusive(path: Path) -> None:
    """Create ``path`` empty and owner-only, failing (:class:`FileExistsError`) if anything has that name."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600))


def moodtune_home() -> Path:
    """moodtune's own folder, for everything it writes: ``$MOODTUNE_HOME``, default ``~/.moodtune``."""
    return Path(os.environ.get("MOODTUNE_HOME") or Path.home() / ".moodtune").expanduser()


def is_regular_file(path: Path) -> bool:
    """True for a regular file (after following links); False for folders, FIFOs, devices, loops, dangling links."""
    import stat

    try:
        return stat.S_ISREG(Path(path).stat().st_mode)
    except (OSError, RuntimeError):  # ELOOP, ENOENT, permission
        return False


def work_dir(name: str) -> Path:
    """Where a training recipe or study keeps checkpoints and feature caches: ``$MOODTUNE_HOME/work/<name>``."""
    return moodtune_home() / "work" / name
