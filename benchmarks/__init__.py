"""Benchmarks: learning (MMLU and demo-oracle replays), decision overhead, latency and AWS cost.

Run from the repository root (`.venv/bin/python -m benchmarks.<name>`); the Lambda layer's
package is put on the import path here, as the functions' runtime does with layers.
"""

import sys
from pathlib import Path

_LAYER = str(Path(__file__).resolve().parents[1] / "layers" / "router_core")
if _LAYER not in sys.path:
    sys.path.insert(0, _LAYER)
