"""lid service: the `lcb` check's throughput, and a reflection-only client's, each against in-process.

    python -m bench lid_lcb        # writes bench/results/lid_lcb.{json,md}

`lcb`: CheckLanguage with `metric="lcb"` (jieba, MeCab, fastText per kept line, the English word list)
on the Language Confusion Benchmark's monolingual prompts (6 sources, 15 languages, from
../shared/data/lcb) as the texts to check, batches of 256, through a real `polyglot-serve lid`
process, against `LanguageIdentifier.check_language(..., metric="lcb")` in this process. Kept lines
per second: unary calls one at a time (`check_language`), and the README's throughput path,
`check_language_batches` (two calls in flight).

`reflection`: a client built only from the server's reflection (no project stubs; grpcurl's way, as
`tests/integration/test_readme_grpcurl.py` does), unary `Identify` with `strings`, the default
(nested) response, batches of 256 XNLI premises, reading each text's top language; against fastText's
own `model.predict(text)` in this process on the same texts.

Both against two servers: `--workers 1` (one serving process: what each call costs) and `--workers 2`
(the serving process and one forked child compute halves of each batch: services/lid/README.md's setting
for a service with 2 cores, as here).

Rounds are short and alternate the order of the modes; a ratio is the median of per-round ratios
(bootstrap 95% interval beside it), so load from other work on the machine hits both sides alike. Only
ratios are meant to be compared across machines.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench.bench_lid import XNLI_LANGUAGES, ServerProcess, _cpu_seconds, median_ci, shared_dir, xnli_premises

BATCH = 256
TARGET_LCB = 0.9
TARGET_REFLECTION = 0.85


def lcb_items(shared: Path) -> list[tuple[str, str]]:
    """(prompt, its language) of every monolingual LCB prompt, sources interleaved."""
    items: list[tuple[str, str]] = []
    for path in sorted((shared / "data" / "lcb" / "test_sets" / "monolingual").glob("*/*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            items += [(row["prompt"], row["language"]) for row in csv.DictReader(handle)]
    return items


def rounds_of(
    modes: dict[str, Callable[[], int]], rounds: int, server_pid: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Units per second of each mode per round (each call returns its unit count), ABC / CBA order; and
    CPU seconds per unit of each mode, this process plus the server's (what the ratio would be with a
    core for each process, whatever else the machine is doing)."""
    for fn in modes.values():  # warm up: tokenizer dictionaries, channel, server
        fn()
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    cpu: dict[str, float] = dict.fromkeys(modes, 0.0)
    units_done: dict[str, int] = dict.fromkeys(modes, 0)
    order = list(modes.items())
    for r in range(rounds):
        for mode, fn in order if r % 2 == 0 else order[::-1]:
            cpu_start = time.process_time() + _cpu_seconds(server_pid)
            start = time.perf_counter()
            units = fn()
            rates[mode].append(units / (time.perf_counter() - start))
            cpu[mode] += time.process_time() + _cpu_seconds(server_pid) - cpu_start
            units_done[mode] += units
    return rates, {mode: cpu[mode] / units_done[mode] for mode in modes}


def summarise(rates: dict[str, list[float]], cpu: dict[str, float], base: str) -> dict:
    out: dict = {
        mode: {
            "median_per_s": statistics.median(v),
            "cpu_us_per_unit": 1e6 * cpu[mode],
            "all_per_s": [round(x) for x in v],
        }
        for mode, v in rates.items()
    }
    for mode, values in rates.items():
        if mode != base:
            per_round = [a / b for a, b in zip(values, rates[base], strict=True)]
            out[f"ratio_{mode}"] = statistics.median(per_round)
            out[f"ci95_{mode}"] = median_ci(per_round)
            out[f"cpu_ratio_{mode}"] = cpu[base] / cpu[mode]
    return out


def lcb_throughput(address: str, pid: int, items: list[tuple[str, str]], words: Path, rounds: int) -> dict:
    from services.lid.client import LidClient
    from services.lid.core import LanguageIdentifier

    identifier = LanguageIdentifier(word_list=words)
    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    kept = sum(c.lines_checked for b in batches for c in identifier.check_language(b, metric="lcb"))

    with LidClient(address, timeout=600) as client:

        def inprocess() -> int:
            for batch in batches:
                identifier.check_language(batch, metric="lcb")
            return kept

        def unary() -> int:
            for batch in batches:
                client.check_language(batch, metric="lcb")
            return kept

        def pipelined() -> int:
            for _ in client.check_language_batches(batches, metric="lcb", in_flight=2):
                pass
            return kept

        remote = [c for b in batches for c in client.check_language(b, metric="lcb")]
        local = [c for b in batches for c in identifier.check_language(b, metric="lcb")]
        same = [(r.line_pass, r.word_pass, r.lines) for r in remote] == [
            (loc.line_pass, loc.word_pass, loc.lines) for loc in local
        ]
        modes = {"inprocess": inprocess, "service_unary": unary, "service_batches": pipelined}
        rates, cpu = rounds_of(modes, rounds, pid)
    out = summarise(rates, cpu, "inprocess")
    out.update(replies=len(items), kept_lines=kept, batch=BATCH, rounds=rounds, service_equals_inprocess=same)
    return out


def reflection_throughput(address: str, pid: int, texts: list[str], rounds: int) -> dict:
    import fasttext
    import grpc
    from google.protobuf import descriptor_pool, message_factory
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    from services.lid.core import embedded_model_path

    model = fasttext.load_model(str(embedded_model_path()))
    batches = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]
    with grpc.insecure_channel(address) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        method = pool.FindServiceByName("polyglot.v1.LidService").FindMethodByName("Identify")
        request_class = message_factory.GetMessageClass(method.input_type)
        reply_class = message_factory.GetMessageClass(method.output_type)
        identify = channel.unary_unary(
            "/polyglot.v1.LidService/Identify",
            request_serializer=request_class.SerializeToString,
            response_deserializer=reply_class.FromString,
        )

        def fasttext_predict() -> int:
            for text in texts:
                model.predict(text)
            return len(texts)

        def reflection_unary() -> int:
            for batch in batches:
                reply = identify(request_class(strings=batch), timeout=60)
                [result.predictions[0].language for result in reply.results]
            return len(texts)

        got = [r.predictions[0].raw_label for b in batches for r in identify(request_class(strings=b)).results]
        same = got == [model.predict(t)[0][0] for t in texts]
        modes = {"fasttext_predict": fasttext_predict, "reflection_unary": reflection_unary}
        rates, cpu = rounds_of(modes, rounds, pid)
    out = summarise(rates, cpu, "fasttext_predict")
    out.update(texts=len(texts), batch=BATCH, rounds=rounds, same_labels=same)
    return out


WORKERS = (1, 2)  # one serving process (the per-call cost shows); and the README's setting on 2 cores


def _md(result: dict) -> str:
    def row(name: str, section: dict, mode: str, target: float) -> str:
        low, high = section[f"ci95_{mode}"]
        ratio, cpu_ratio = section[f"ratio_{mode}"], section[f"cpu_ratio_{mode}"]
        verdict = "meets" if ratio >= target else "misses"
        return f"| {name} | {ratio:.2f} | {low:.2f}–{high:.2f} | {cpu_ratio:.2f} | ≥ {target} ({verdict}) |"

    lines = [
        "# lid: `lcb` checks and reflection-only clients against in-process",
        "",
        f"`python -m bench lid_lcb`, {result['machine']}. Wall: median of per-round throughput ratios, 95% "
        "bootstrap interval. CPU: in-process CPU time per unit over client + server CPU time per unit (all the "
        "server's processes; the wall ratio with a core per process). `--workers 2`: the service forks one child "
        "and the two processes compute halves of each batch of 256 at once (what services/lid/README.md "
        "recommends: workers = the cores the service may use, 2 here); `--workers 1`: one serving process, "
        "where the per-call cost of gRPC shows. The in-process side uses one core either way.",
        "",
        "| server | path | ratio (wall) | 95% CI | ratio (CPU) | target (wall) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    paths = (
        ("CheckLanguage lcb, `check_language_batches` (2 in flight) vs in-process", "lcb", "service_batches",
         TARGET_LCB),
        ("CheckLanguage lcb, `check_language` one call at a time vs in-process", "lcb", "service_unary", TARGET_LCB),
        ("reflection-only client, unary Identify, nested reply vs fastText `predict`", "reflection",
         "reflection_unary", TARGET_REFLECTION),
    )  # fmt: skip
    for workers in WORKERS:
        for name, section, mode, target in paths:
            lines.append(f"| `--workers {workers}` " + row(name, result[f"workers_{workers}"][section], mode, target))
    first = result[f"workers_{WORKERS[0]}"]
    lcb, refl = first["lcb"], first["reflection"]
    same = all(result[f"workers_{w}"]["lcb"]["service_equals_inprocess"] for w in WORKERS)
    same_labels = all(result[f"workers_{w}"]["reflection"]["same_labels"] for w in WORKERS)
    lines += [
        "",
        f"- lcb: {lcb['replies']} LCB monolingual prompts checked as replies, {lcb['kept_lines']} kept lines, "
        f"batches of {lcb['batch']}, {lcb['rounds']} rounds; in-process {lcb['inprocess']['median_per_s']:.0f} "
        f"lines/s. Service results equal in-process (both servers): {same}.",
        f"- reflection: {refl['texts']} XNLI premises, batches of {refl['batch']}, {refl['rounds']} rounds; "
        f"fastText `predict` {refl['fasttext_predict']['median_per_s']:.0f} texts/s. Same top labels (both "
        f"servers): {same_labels}.",
        "",
    ]
    return "\n".join(lines)


def main(out_dir: Path, *, rounds: int = 15) -> dict:
    shared = shared_dir()
    words = shared / "data" / "lcb" / "words"
    texts = [p for lang in XNLI_LANGUAGES for p in xnli_premises(shared, lang)[:120]]
    result: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"}
    for workers in WORKERS:
        with ServerProcess("--word-list", str(words), "--workers", str(workers)) as server:
            pid = server.proc.pid
            result[f"workers_{workers}"] = {
                "lcb": lcb_throughput(server.address, pid, lcb_items(shared), words, rounds),
                "reflection": reflection_throughput(server.address, pid, texts, rounds * 4),
            }
    (out_dir / "lid_lcb.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out_dir / "lid_lcb.md").write_text(_md(result), encoding="utf-8")
    return {
        f"{name}_workers_{w}": result[f"workers_{w}"][section][key]
        for w in WORKERS
        for name, section, key in (
            ("lcb_ratio_batches", "lcb", "ratio_service_batches"),
            ("lcb_ratio_unary", "lcb", "ratio_service_unary"),
            ("reflection_ratio", "reflection", "ratio_reflection_unary"),
        )
    }
