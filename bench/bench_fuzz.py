"""Fuzz every RPC of every service at full size (issue 19): >= 500 cases per RPC, the strategies of
`tests/reliability/fuzzing.py` (generated requests, corrupt protobuf, invalid UTF-8), against the real servers on
loopback. Records, per RPC, the cases run, the status codes seen, the slowest call, and every case whose outcome
the test would refuse (a code outside the service's documented set, an INTERNAL/UNKNOWN item, a call past its
deadline), with its details. Not a speed benchmark: latencies are what a shared 2-core machine gave.

    .venv/bin/python -m bench fuzz                          # 500 cases per RPC
    POLYGLOT_FUZZ_EXAMPLES=50 .venv/bin/python -m bench fuzz   # a quick look
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parents[1]
FULL_EXAMPLES = 500
REPRODUCER_TIMEOUT_S = 30.0
GIVE_UP_AFTER_LATE = 3  # calls past their deadline, after which an RPC's remaining cases are not run
ITEM_FAILURES = {grpc.StatusCode.INTERNAL.value[0], grpc.StatusCode.UNKNOWN.value[0]}


def _server_factories(stack: contextlib.ExitStack, work: Path) -> dict:
    """Start SeaweedFS (the generator's adapters) and build the tiny model; grpc service name -> a function that
    starts that service and returns a context manager of its `Served`. Each RPC gets a fresh server, so that a
    request that hangs one (a thread that cannot be stopped) does not decide the cases of the next RPC."""
    from services.common.store import open_store
    from services.common.tiny_model import build_tiny_llama
    from tests.fixtures.generator import make_tiny_lora
    from tests.fixtures.seaweedfs import _stop, start_seaweedfs
    from tests.reliability import fuzzing

    shared = Path(os.environ.get("POLYGLOT_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
    model = build_tiny_llama(work / "tiny-llama", shared / "models" / "tokenizers" / "llama2", seed=0)
    proc, s3 = start_seaweedfs(work / "seaweedfs", "polyglot-fuzz", "s3cr3t-" + uuid.uuid4().hex)
    stack.callback(_stop, proc)
    lora = make_tiny_lora(model, work / "tiny-lora")
    open_store(fuzzing.TINY_LORA_URI, **s3.store_options()).put_dir("", lora)
    fresh = iter(range(1_000_000))
    return {
        "polyglot.v1.LidService": fuzzing.lid_server,
        "polyglot.v1.GeneratorService": lambda: _generator_process(model, work / f"generator-{next(fresh)}", s3),
        "polyglot.v1.JudgeService": lambda: fuzzing.judge_server(work / f"judge-store-{next(fresh)}"),
        "polyglot.v1.TrainerService": lambda: fuzzing.trainer_server(work / f"trainer-{next(fresh)}" / "state", model),
    }


@contextlib.contextmanager
def _generator_process(model: Path, work: Path, s3):
    """`polyglot-serve generator` as its own process: a request that hangs a thread of it (which no deadline
    stops) is killed with the process, instead of spinning in this one."""
    from services.common.client import wait_for_health
    from services.common.local import free_port
    from tests.reliability import fuzzing

    port = free_port()
    cmd = [sys.executable, "-m", "services.common.serve", "generator", "--port", str(port), "--metrics-port", "0",
           "--model", str(model), "--device", "cpu", "--dtype", "float32", "--threads", "1",
           "--max-loaded-adapters", "2", "--adapter-cache-dir", str(work / "adapter-cache"),
           "--log-level", "ERROR"]  # fmt: skip
    env = {**os.environ, **s3.env(), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    work.mkdir(parents=True)
    with open(work / "server.log", "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_for_health(f"127.0.0.1:{port}", timeout=300)
        yield fuzzing.Served(f"127.0.0.1:{port}", fuzzing.generator_seeds())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # a thread still busy with a request keeps it from exiting
            proc.kill()
            proc.wait()


def _found_before(servers: dict) -> list[dict]:
    """Each request an earlier run found refused, against a fresh server of its own (one may hang it)."""
    from tests.reliability import fuzzing

    rows = []
    for rpc in fuzzing.all_rpcs():
        for message in fuzzing.found_before().get(rpc.id, []):
            with servers[rpc.service]() as served, grpc.insecure_channel(served.address) as channel:
                outcome = fuzzing.call(channel, rpc, [message.SerializeToString()], REPRODUCER_TIMEOUT_S)
            rows.append({"rpc": rpc.id, "request": _readable(rpc, message.SerializeToString()),
                         "code": outcome.code.name, "details": outcome.details[:200],
                         "seconds": round(outcome.seconds, 2),
                         "still_refused": outcome.code not in fuzzing.ALLOWED[rpc.service]})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


class _GaveUp(Exception):
    """The server stopped answering in time: the rest of this RPC's cases would each wait their deadline."""


def _readable(rpc, message: bytes) -> str:
    """A request as protobuf text (cut to 300 characters), or why it does not decode."""
    from google.protobuf import text_format
    from google.protobuf.message import DecodeError
    from google.protobuf.message_factory import GetMessageClass

    try:
        text = text_format.MessageToString(GetMessageClass(rpc.request).FromString(message), as_one_line=True)
    except DecodeError as exc:
        text = f"(not valid protobuf: {exc})"
    return text[:300]


def _fuzz_one(rpc, served, examples: int) -> dict:
    from tests.reliability import fuzzing

    codes: collections.Counter[str] = collections.Counter()
    slowest, refused, late_calls = 0.0, [], []
    timeout = fuzzing.timeout_for(rpc)

    def record(messages: list[bytes]) -> None:
        nonlocal slowest
        outcome = fuzzing.call(channel, rpc, messages, timeout)
        codes[outcome.code.name] += 1
        slowest = max(slowest, outcome.seconds)
        why = []
        if outcome.code not in fuzzing.ALLOWED[rpc.service]:
            why.append(f"{outcome.code.name}: {outcome.details[:300]}")
        if ITEM_FAILURES & set(outcome.item_codes):
            why.append(f"item codes {sorted(set(outcome.item_codes))}")
        late = outcome.seconds > timeout + 1.0 or outcome.code == grpc.StatusCode.DEADLINE_EXCEEDED
        if outcome.seconds > timeout + 1.0:
            why.append(f"{outcome.seconds:.1f} s past a {timeout} s deadline")
        if why and len(refused) < 5:
            refused.append({"why": "; ".join(why), "request": [_readable(rpc, m) for m in messages],
                            "request_hex": [m[:200].hex() for m in messages]})  # fmt: skip
        late_calls.append(late)
        if sum(late_calls) >= GIVE_UP_AFTER_LATE:
            raise _GaveUp

    start = time.perf_counter()
    gave_up = False
    with grpc.insecure_channel(served.address, options=fuzzing.CHANNEL_OPTIONS) as channel:
        try:
            fuzzing.fuzz(rpc, examples, record, served.seeds.get(rpc.name, []), shrink=False)
        except _GaveUp:
            gave_up = True
    return {
        "cases": sum(codes.values()),
        "gave_up_after_late_calls": gave_up,
        "codes": dict(codes.most_common()),
        "max_latency_s": round(slowest, 3),
        "wall_s": round(time.perf_counter() - start, 1),
        "refused": refused,
    }


def main(out_dir: Path) -> dict:
    from tests.reliability import fuzzing

    examples = int(os.environ.get(fuzzing.EXAMPLES_ENV, FULL_EXAMPLES))
    logging.getLogger("polyglot.rpc").setLevel(logging.ERROR)  # a warning line per refused request otherwise
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as tmp, contextlib.ExitStack() as stack:
        servers = _server_factories(stack, Path(tmp))
        found = _found_before(servers)
        for rpc in fuzzing.all_rpcs():
            with servers[rpc.service]() as served:
                results[rpc.id] = _fuzz_one(rpc, served, examples)
            print(rpc.id, json.dumps({k: v for k, v in results[rpc.id].items() if k != "refused"}), flush=True)
    summary = {
        "examples_per_rpc": examples,
        "rpcs": len(results),
        "min_cases": min(r["cases"] for r in results.values()),
        "refused_cases": sum(len(r["refused"]) for r in results.values()),
        "gave_up": [name for name, r in results.items() if r["gave_up_after_late_calls"]],
        "found_before": found,
        "per_rpc": results,
    }
    (out_dir / "fuzz.json").write_text(json.dumps(summary, indent=2) + "\n")
    rows = [
        f"| {name} | {r['cases']}{' (gave up)' if r['gave_up_after_late_calls'] else ''} "
        f"| {', '.join(f'{c} {n}' for c, n in r['codes'].items())} | {r['max_latency_s']} | {len(r['refused'])} |"
        for name, r in results.items()
    ]
    refused = [f"- {name}: {case['why']}; request `{' | '.join(case['request'])}`"
               for name, r in results.items() for case in r["refused"]]  # fmt: skip
    (out_dir / "fuzz.md").write_text(
        "# Fuzzing every RPC (issue 19)\n\n"
        f"{examples} hypothesis cases asked per RPC (generated requests, corrupt protobuf, invalid UTF-8 in "
        "string fields), real services on loopback; `python -m bench fuzz` (tests/reliability/fuzzing.py).\n\n"
        "| RPC | cases | codes seen | max latency (s) | refused |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\n## Requests earlier runs found refused (`fuzzing.found_before`), each on a fresh server\n\n"
        + "| RPC | request | code | s | still refused |\n|---|---|---|---|---|\n"
        + "\n".join(
            f"| {f['rpc']} | `{f['request'][:120]}` | {f['code']}: {f['details'][:80]} | {f['seconds']} "
            f"| {f['still_refused']} |"
            for f in found
        )
        + "\n\n## Refused cases\n\n"
        + ("\n".join(refused) or "None: every code documented, no INTERNAL/UNKNOWN item, every call in time.")
        + f"\n\nEach RPC runs against a fresh server; one that answers {GIVE_UP_AFTER_LATE} calls past their deadline "
        "is given up on (its remaining cases would each wait out their deadline): `(gave up)`. Refused cases: at "
        "most 5 per RPC are listed. Latencies from a shared 2-core machine.\n"
    )
    return {k: v for k, v in summary.items() if k != "per_rpc"}
