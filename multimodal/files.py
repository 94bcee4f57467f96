"""Writing files so that a failed write never leaves a truncated one: write beside it, then replace."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
