"""`make bench`: run every benchmark module `bench/bench_*.py` (or those named) and write results under bench/.

Each module defines `main(out_dir: Path) -> dict` that measures a ratio against a baseline run in the same
process (never an absolute time), writes `<out_dir>/<name>.json` (and a short `.md`), and returns the summary.

    python -m bench                 # all
    python -m bench lid generator   # bench_lid.py and bench_generator.py only
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    for name in names:
        print(f"== bench {name}", flush=True)
        summary = importlib.import_module(f"bench.bench_{name}").main(out_dir)
        print(json.dumps(summary, indent=2, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
