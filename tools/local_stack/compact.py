"""`python -m tools.local_stack.compact STATE_DIR THROUGH`: fold journal segments into the snapshot.

Run by the stack in a separate process (at low priority) so the serving process never holds
its store to save it: loads `STATE_DIR/state.json` into a private moto, replays the journal
segments after it up to number THROUGH, and writes the new snapshot atomically. Prints one JSON
line of counts. Exit 1 (the old snapshot and the segments untouched) on any failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m tools.local_stack.compact STATE_DIR THROUGH_SEGMENT", file=sys.stderr)
        return 2
    with contextlib.suppress(OSError):
        os.nice(10)  # the serving process comes first
    from tools.local_stack.persistence import compact_offline

    started = time.perf_counter()
    try:
        counts = compact_offline(Path(argv[0]), int(argv[1]))
    except Exception as exc:
        print(f"compaction failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    counts["seconds"] = round(time.perf_counter() - started, 3)
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
