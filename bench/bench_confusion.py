"""`polyglot confusion` on 1,000 replies built from the Language Confusion Benchmark's own prompts (real text
in 15 languages; some replies get a line of another language, some are wholly in another language, some
are empty), in-process lid.176 with the benchmark's word list.

The acceptance figure is the command's wall time on 1,000 records (target: under 30 s on 2 cores); as a ratio
it is set against the same process start doing nothing but `polyglot --help`, measured in the same run, so a
busy machine moves both.

    .venv/bin/python -m bench confusion      # writes bench/results/confusion.{json,md}
"""

from __future__ import annotations

import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("POLYGLOT_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
LCB = SHARED / "data" / "lcb"
ROUNDS = 3


def build_records(n: int, seed: int = 0) -> list[dict]:
    """`n` (prompt, reply, language, source) records from LCB's monolingual prompts: a prompt's text is the
    reply; 20% gain a line from another language, 10% are another language's text, 2% are empty."""
    rng = random.Random(seed)
    texts: dict[str, list[tuple[str, str]]] = {}
    for path in sorted((LCB / "test_sets" / "monolingual").glob("*/*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            rows = [r["prompt"].strip() for r in csv.DictReader(handle) if r["prompt"].strip()]
        texts.setdefault(path.stem, []).extend((path.parent.name, text) for text in rows)
    codes = sorted(texts)
    records = []
    for i in range(n):
        language = codes[i % len(codes)]
        source, reply = rng.choice(texts[language])
        other = rng.choice([c for c in codes if c != language])
        roll = rng.random()
        if roll < 0.2:
            reply = f"{reply}\n{rng.choice(texts[other])[1]}"
        elif roll < 0.3:
            reply = rng.choice(texts[other])[1]
        elif roll < 0.32:
            reply = ""
        records.append({"id": f"r{i:04d}", "prompt": "", "reply": reply, "language": language, "source": source})
    return records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    return time.perf_counter() - started, result


def main(out_dir: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        file = write_jsonl(Path(tmp) / "replies.jsonl", build_records(1000))
        cli = [sys.executable, "-m", "flows.cli"]
        confusion = [*cli, "confusion", str(file), "--words", str(LCB / "words"), "--out", f"{tmp}/out"]
        baseline, runs = [], []
        for _ in range(ROUNDS):  # alternating, so a load spike hits both
            baseline.append(_timed([*cli, "--help"])[0])
            seconds, result = _timed(confusion)
            if result.returncode != 0:
                raise RuntimeError(result.stderr[-2000:])
            runs.append(seconds)
        written = sum(1 for _ in open(f"{tmp}/out/records.jsonl", encoding="utf-8"))
    summary = {
        "records": 1000,
        "records_written": written,
        "confusion_seconds_median": round(statistics.median(runs), 2),
        "confusion_seconds": [round(s, 2) for s in runs],
        "cli_start_seconds_median": round(statistics.median(baseline), 2),
        "ratio_to_cli_start": round(statistics.median(runs) / statistics.median(baseline), 2),
        "cpus": os.cpu_count(),
    }
    (out_dir / "confusion.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / "confusion.md").write_text(
        "# polyglot confusion, 1,000 records (in-process lid.176, word list)\n\n"
        f"- wall time, median of {ROUNDS}: {summary['confusion_seconds_median']} s (target: < 30 s on 2 cores)\n"
        f"- `polyglot --help` in the same run: {summary['cli_start_seconds_median']} s; "
        f"ratio {summary['ratio_to_cli_start']}\n"
        f"- records written: {written} of 1000\n"
    )
    return summary
