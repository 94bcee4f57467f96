"""How the embedded models run: one thread count for every runtime, and ONNX Runtime sessions set up alike."""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any


_threads: int | None = None


def set_math_threads(n: int) -> None:
    """Threads every model call may use from now on, for ONNX Runtime, CTranslate2 and torch alike (process-wide:
    sessions made before keep theirs). One per pool thread is right for a server with other work on the cores."""
    global _threads
    if int(n) < 1:
        raise ValueError("threads must be at least 1")
    _threads = int(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(_threads)


def configured_threads() -> int | None:
    """:func:`set_math_threads`'s setting, or None (each runtime's own default)."""
    return _threads


def math_threads() -> int:
    """Threads each model call may use: :func:`set_math_threads`'s setting, else torch's when torch is loaded,
    else the CPUs this process may use."""
    if _threads is not None:
        return _threads
    if "torch" in sys.modules:  # keep the cores the voice (CTranslate2) and hub models use in step with torch
        return int(sys.modules["torch"].get_num_threads())
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def onnx_session(path: Path) -> Any:
    """An ONNX Runtime CPU session whose threads do not spin between calls (the next encoder gets the cores)."""
    import onnxruntime as ort  # ORT_DISABLE_TELEMETRY is set by multimodal/__init__.py, which runs before this

    ort.disable_telemetry_events()
    options = ort.SessionOptions()
    options.intra_op_num_threads = math_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@lru_cache(maxsize=1)
def single_thread_blas() -> None:
    """Run numpy's and scipy's BLAS on one thread from now on, in this process (once; the libraries loaded by then).

    Idle OpenBLAS threads busy-wait, and beside torch's threads on 2 cores they made the voice encoder 2-3x slower
    (a 4-s clip: 91-123 ms for emotion instead of 44-51; emotion + transcript 240 instead of 152-168); moodtune's own
    numpy work is small matrices. ``threadpoolctl.threadpool_limits`` undoes it for code that wants more threads.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
