"""How the embedded models run: one thread count for every runtime, and ONNX Runtime sessions set up alike."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def math_threads() -> int:
    """Threads each model call may use: torch's setting when torch is loaded, else the CPUs this process may use."""
    if "torch" in sys.modules:  # keep the cores the voice (CTranslate2) and hub models use in step with torch
        return int(sys.modules["torch"].get_num_threads())
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def onnx_session(path: Path) -> Any:
    """An ONNX Runtime CPU session whose threads do not spin between calls (the next encoder gets the cores)."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # see multimodal/__init__.py
    import onnxruntime as ort

    ort.disable_telemetry_events()
    options = ort.SessionOptions()
    options.intra_op_num_threads = math_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
