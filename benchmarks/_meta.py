"""What every benchmark's JSON records about the run: when, where, how loaded, how long."""

from __future__ import annotations

import os
import platform
import time
from datetime import UTC, datetime
from typing import Any


def run_meta(started: float) -> dict[str, Any]:
    """`started` is the run's `time.perf_counter()` at its start."""
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "elapsed_seconds": round(time.perf_counter() - started, 1),
    }
