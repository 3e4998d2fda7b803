"""lid service: accuracy on real data through the service, and throughput against in-process calls.

    python -m bench lid            # writes bench/results/lid.{json,md} and lid_accuracy.{json,md}

Accuracy: every distinct XNLI validation premise (15 languages) and every XQuAD question (12) goes
through a real `polyglot serve lid` process; each top-1 is compared with the gold language and with the
same model called in-process through the fastText binding directly (not through Polyglot's core), so
"the service loses nothing" is checked against an independent path.

Throughput: sentences of ~12, ~25 and ~60 words cut from XNLI premises, batches of 256, one client on
loopback (unary calls one at a time, and `identify_stream`), against the same model in-process on the
same sentences; short rounds interleave the modes, in alternating order, so that load from other work
on the machine hits all alike, and a ratio is the median of per-round ratios. Then the fixed round trip
of an empty call, and 32 concurrent clients. Only ratios are meant to be compared across machines.
"""

from __future__ import annotations

import collections
import json
import os
import platform
import queue
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
XQUAD_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")
# lid.176.ftz in-process on XNLI premises, as issue #3 states them; the ≥ 99.5% group is listed as 0.995.
XNLI_REFERENCE = {
    **dict.fromkeys(("en", "de", "es", "fr", "ru", "el", "ar", "th", "tr", "vi"), 0.995),
    "zh": 0.968,
    "bg": 0.977,
    "hi": 0.948,
    "ur": 0.952,
    "sw": 0.768,
}
WEAK = ("sw", "hi", "ur", "zh", "bg")
STUDY_THRESHOLD = 0.8  # the paper's data filter: keep texts identified with probability >= 0.8
# Languages written with spaces between words: sentence lengths in words are only meaningful there.
SPACED = tuple(lang for lang in XNLI_LANGUAGES if lang not in ("zh", "th"))
BATCH = 256
WORDS = (12, 25, 60)


# ---- data -------------------------------------------------------------------------------------------


def shared_dir() -> Path:
    return Path(os.environ.get("POLYGLOT_SHARED_DIR", REPO.parent / "shared"))


def xnli_premises(shared: Path, lang: str) -> list[str]:
    """Distinct XNLI validation premises of `lang`, in file order (premise<TAB>hypothesis<TAB>label)."""
    seen: dict[str, None] = {}
    with (shared / "data" / "xnli" / f"xnli_dev-{lang}.tsv").open(encoding="utf-8") as handle:
        for line in handle:
            premise = line.rstrip("\n").split("\t", 1)[0]
            if premise.strip():
                seen.setdefault(premise, None)
    return list(seen)


def xquad_questions(shared: Path, lang: str) -> list[str]:
    """XQuAD questions of `lang` (SQuAD v1.1 JSON), in file order."""
    data = json.loads((shared / "data" / "xquad" / f"xquad.{lang}.json").read_text(encoding="utf-8"))
    return [qa["question"] for article in data["data"] for par in article["paragraphs"] for qa in par["qas"]]


def sentences_of(shared: Path, words: int, count: int) -> list[str]:
    """`count` texts of exactly `words` whitespace words, cut from consecutive XNLI premises, taking the
    space-delimited languages in turn (so every size mixes 13 languages and scripts)."""
    streams = {lang: " ".join(xnli_premises(shared, lang)).split() for lang in SPACED}
    out: list[str] = []
    start = 0
    while len(out) < count:
        for lang in SPACED:
            tokens = streams[lang]
            begin = start % max(1, len(tokens) - words)
            out.append(" ".join(tokens[begin : begin + words]))
        start += words
    return out[:count]


# ---- accuracy -----------------------------------------------------------------------------------------


def _chunks(items: Sequence, size: int) -> list[Sequence]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _script_shares(text: str) -> dict[str, float]:
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return {}
    counts = collections.Counter(unicodedata.name(ch, "UNKNOWN").split(" ")[0] for ch in letters)
    return {script: n / len(letters) for script, n in counts.items()}


def _why(text: str, lang: str, label: str, prob: float) -> list[str]:
    """Heuristic causes of one miss, for the report (not a classifier)."""
    from services.common.languages import get
    from services.lid.text import count_tokens

    reasons = []
    shares = _script_shares(text)
    latin = shares.get("LATIN", 0.0)
    if get(lang).script != "Latn" and latin >= 0.5:
        reasons.append("romanised")  # written in Latin script although the language is not
    elif get(lang).script != "Latn" and latin > 0:
        reasons.append("mixed-script")
    if count_tokens(text) < 8:
        reasons.append("short")
    if prob < 0.5:
        reasons.append("low-confidence")
    if lang == "zh" and label == "ja":
        reasons.append("han-only→ja")
    if lang == "bg" and label in ("ru", "mk", "sr"):
        reasons.append("related-cyrillic")
    return reasons or ["other"]


def accuracy_report(
    identify: Callable[[list[str]], list], model_path: Path, shared: Path, *, batch: int = 1024
) -> dict:
    """Per dataset and language: top-1 accuracy through `identify` (a client's), agreement with the
    same model called in-process through the fastText binding, and the misses of the weak languages."""
    import fasttext

    reference = fasttext.load_model(str(model_path))
    sets = {
        "xnli": (XNLI_LANGUAGES, xnli_premises),
        "xquad": (XQUAD_LANGUAGES, xquad_questions),
    }
    report: dict = {"model": str(model_path), "datasets": {}, "items": 0, "service_equals_inprocess": 0}
    for name, (languages, load) in sets.items():
        per_lang = {}
        for lang in languages:
            texts = load(shared, lang)
            results = [r for chunk in _chunks(texts, batch) for r in identify(list(chunk))]
            correct = equal = confident = confident_correct = 0
            max_prob_diff = 0.0
            misses = []
            for text, result in zip(texts, results, strict=True):
                labels, probs = reference.predict(text.replace("\n", " "), k=1)
                top = result.predictions[0]
                equal += top.raw_label == labels[0]
                max_prob_diff = max(max_prob_diff, abs(top.probability - min(probs[0], 1.0)))
                if top.probability >= STUDY_THRESHOLD:
                    confident += 1
                    confident_correct += top.language == lang
                if top.language == lang:
                    correct += 1
                else:
                    label = top.language or top.raw_label.removeprefix("__label__")
                    misses.append(
                        {
                            "text": text,
                            "predicted": label,
                            "probability": round(top.probability, 3),
                            "why": _why(text, lang, label, top.probability),
                        }
                    )
            entry = {
                "n": len(texts),
                "correct": correct,
                "accuracy": correct / len(texts),
                "service_equals_inprocess": equal,
                "max_probability_diff": max_prob_diff,
                # What the study's confidence filter would keep, and how clean that is.
                "kept_at_threshold": confident / len(texts),
                "accuracy_of_kept": confident_correct / confident if confident else None,
                "confusions": dict(collections.Counter(m["predicted"] for m in misses).most_common(5)),
            }
            if name == "xnli" and lang in WEAK:
                entry["why"] = dict(collections.Counter(w for m in misses for w in m["why"]).most_common())
                entry["examples"] = misses[:6]
            per_lang[lang] = entry
            report["items"] += len(texts)
            report["service_equals_inprocess"] += equal
        report["datasets"][name] = per_lang
    report["all_equal"] = report["items"] == report["service_equals_inprocess"]
    return report


# ---- throughput ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A real `polyglot-serve lid` child on loopback (its own process, so its own GIL and core)."""

    def __init__(self, *args: str):
        self.address = f"127.0.0.1:{_free_port()}"
        cmd = [sys.executable, "-m", "services.common.serve", "lid", "--port", self.address.rsplit(":", 1)[1]]
        env = {**os.environ, "POLYGLOT_LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen([*cmd, "--metrics-port", "0", *args], cwd=REPO, env=env)

    def __enter__(self) -> ServerProcess:
        from services.common.client import wait_for_health

        wait_for_health(self.address, timeout=60)
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of another process and its live children (lid's `--workers`; Linux /proc;
    clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu_seconds(int(child)) for child in children)


class OpenStream:
    """One `identify_stream` kept open across rounds, fed through a queue: a pipeline's long-lived
    stream, so a round measures pipelined batches rather than the set-up of a new stream."""

    def __init__(self, client):
        self._queue: queue.Queue = queue.Queue()
        self._responses = client.identify_stream(iter(self._queue.get, None))

    def identify(self, batches: Sequence[Sequence[str]]) -> list:
        for batch in batches:
            self._queue.put(batch)
        return [next(self._responses) for _ in batches]

    def close(self) -> None:
        self._queue.put(None)
        for _ in self._responses:
            pass


def median_ci(values: Sequence[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap confidence interval of the median."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def throughput(
    client, identifier, sentences: list[str], rounds: int, server_pid: int | None = None, batch: int = BATCH
) -> dict:
    """Sentences/s: raw binding loop, Polyglot core in-process, service unary, service stream.

    Each round runs every mode on the same `sentences` (a few batches), in alternating order. Speed on a
    shared VM swings by ±50% within a second, so rounds are short and many, and a ratio is the median of
    per-round ratios, with a bootstrap 95% interval. CPU seconds per sentence (bench process plus server
    process) show the service's cost independently of the wall clock.
    """
    predict = identifier._model.predict  # the binding's own Python API: the plainest in-process use
    batches = [sentences[i : i + batch] for i in range(0, len(sentences), batch)]
    n = len(sentences)
    stream = OpenStream(client)
    modes: dict[str, Callable[[], object]] = {
        "inprocess_binding": lambda: [predict(s) for s in sentences],
        "inprocess_core": lambda: [identifier.identify(b) for b in batches],
        "service_unary": lambda: [client.identify(b) for b in batches],
        "service_stream": lambda: stream.identify(batches),
    }
    for fn in modes.values():  # warm up: caches, channel, server threads
        fn()
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    cpu: dict[str, float] = dict.fromkeys(modes, 0.0)
    order = list(modes.items())
    for r in range(rounds):
        # Alternate the order (ABCD, DCBA, ...) so that a drift in machine speed within a round does not
        # always favour the same mode.
        for mode, fn in order if r % 2 == 0 else order[::-1]:
            cpu_start = time.process_time() + (_cpu_seconds(server_pid) if server_pid else 0.0)
            start = time.perf_counter()
            fn()
            rates[mode].append(n / (time.perf_counter() - start))
            cpu[mode] += time.process_time() + (_cpu_seconds(server_pid) if server_pid else 0.0) - cpu_start
    stream.close()
    out: dict = {"sentences_per_round": n, "batch": batch, "rounds": rounds}
    for mode, values in rates.items():
        out[mode] = {
            "median_per_s": statistics.median(values),
            "all_per_s": [round(v) for v in values],
            "cpu_us_per_sentence": 1e6 * cpu[mode] / (n * rounds),
        }
    for service in ("service_unary", "service_stream"):
        for base in ("inprocess_binding", "inprocess_core"):
            per_round = [s / b for s, b in zip(rates[service], rates[base], strict=True)]
            out[f"ratio_{service}_vs_{base}"] = statistics.median(per_round)
            out[f"ci95_{service}_vs_{base}"] = median_ci(per_round)
            # The same ratio from CPU time: what the throughput ratio would be on a core of its own.
            out[f"cpu_ratio_{service}_vs_{base}"] = cpu[base] / cpu[service] if cpu[service] else None
    return out


def round_trip_ms(client, calls: int = 400) -> dict:
    """Median and best wall time of an empty `Identify` call: the fixed cost every unary call pays."""
    for _ in range(50):
        client.identify([])
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        client.identify([])
        times.append(time.perf_counter() - start)
    return {"calls": calls, "p50_ms": 1000 * statistics.median(times), "min_ms": 1000 * min(times)}


def concurrent_clients(address: str, sentences: list[str], clients: int = 32, calls: int = 6) -> dict:
    """`clients` threads, each with its own channel, each sending `calls` batches of 256."""
    from services.lid.client import LidClient

    batches = [sentences[i : i + BATCH] for i in range(0, len(sentences), BATCH)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def worker(w: int) -> None:
        with LidClient(address, timeout=120) as client:
            client.identify(batches[0][:4])  # connect before the clock starts
            barrier.wait()
            for c in range(calls):
                batch = batches[(w * calls + c) % len(batches)]
                start = time.perf_counter()
                try:
                    results = client.identify(batch)
                    bad = [r.error for r in results if r.error]
                    if bad or len(results) != len(batch):
                        raise RuntimeError(f"{len(bad)} item errors")
                except Exception as exc:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                with lock:
                    latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    done = len(latencies) * BATCH
    return {
        "clients": clients,
        "calls_per_client": calls,
        "batch": BATCH,
        "sentences": done,
        "sentences_per_s": done / wall,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None,
        "errors": len(errors),
        "error_examples": errors[:3],
    }


# ---- reports ------------------------------------------------------------------------------------------


def _pct(entry: dict | None) -> str:
    return f"{entry['accuracy']:.2%}" if entry else "—"


def _accuracy_md(acc: dict) -> str:
    xnli, xquad = acc["datasets"]["xnli"], acc["datasets"]["xquad"]
    lines = [
        "# lid service: accuracy through the service (lid.176.ftz, embedded default)",
        "",
        f"{acc['items']} texts through a real `polyglot serve lid` process; service top-1 equals the same model's "
        f"in-process top-1 (fastText binding called directly) on **{acc['service_equals_inprocess']} / "
        f"{acc['items']}** (all equal: {acc['all_equal']}).",
        "",
        "| lang | XNLI premises | top-1 acc. | reference (issue #3) | kept at p ≥ 0.8 | acc. of kept "
        "| XQuAD questions | top-1 acc. | top confusions (XNLI) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for lang in sorted(set(xnli) | set(xquad)):
        x, q = xnli.get(lang), xquad.get(lang)
        ref = XNLI_REFERENCE.get(lang)
        ref_text = "—" if ref is None else ("≥ 99.5%" if ref == 0.995 else f"{ref:.1%}")
        confusions = ", ".join(f"{k} {v}" for k, v in x["confusions"].items()) if x else ""
        kept = f"{x['kept_at_threshold']:.1%}" if x else "—"
        kept_acc = f"{x['accuracy_of_kept']:.2%}" if x and x["accuracy_of_kept"] is not None else "—"
        lines.append(
            f"| {lang} | {x['n'] if x else '—'} | {_pct(x)} | {ref_text} | {kept} | {kept_acc} | "
            f"{q['n'] if q else '—'} | {_pct(q)} | {confusions} |"
        )
    lines += ["", "## Why the weak languages miss (XNLI premises)", ""]
    lines.append(
        "Heuristic tags per miss (a miss can carry several): "
        + "; ".join(
            f"**{lang}** {', '.join(f'{k} {v}' for k, v in xnli[lang].get('why', {}).items())}" for lang in WEAK
        )
        + "."
    )
    lines += ["", WEAK_NOTES, "", "### Examples of misses", ""]
    for lang in WEAK:
        for m in xnli[lang].get("examples", [])[:4]:
            text = m["text"] if len(m["text"]) < 110 else m["text"][:107] + "..."
            lines.append(f"- {lang} → {m['predicted']} ({m['probability']:.2f}; {', '.join(m['why'])}): {text}")
    return "\n".join(lines) + "\n"


WEAK_NOTES = """\
Read with the tags above (lid.176.ftz, XNLI validation premises; the figures are deterministic):

- **sw** (76.8%, 193 misses): lid.176 is weak on Swahili. 188 of the misses have top probability
  under 0.5 (typically 0.1-0.3), spread over unrelated Latin-script languages (en 41, eo 37, eu 14,
  id 13, es 13, it 12); about half are short (< 8 words). The model has little Swahili, so nothing
  scores high, right or wrong: the study's 0.8 filter drops every miss but also almost all of the
  correct Swahili (see "kept at p ≥ 0.8"). For Swahili use OpenLID (`swh_Latn`, F1 0.93 on
  FLORES-200) with `--model`.
- **hi** (94.8%, 43 misses) and **ur** (95.2%, 40 misses): the misses are *romanised* Hindi/Urdu
  (42 of 43 for hi, 31 of 40 for ur): XNLI's translators typed part of the set in Latin script
  ("kya aap jangal shivir karte hai?"). lid.176 knows Hindi only in Devanagari and Urdu only in Arabic
  script, so these go to en, nl, fi, af... at low confidence. The remaining Urdu misses are
  native-script sentences labelled Western Punjabi (`pnb`, 9), which shares script and much vocabulary.
  Romanised Hindi/Urdu needs a model trained on romanised text (lid.176 and OpenLID have no such labels).
- **zh** (96.8%, 27 misses): Han-only sentences without kana go to Japanese (16, some with high
  confidence, 0.8-0.99: lid.176 sees kanji), a few to Cantonese (`yue`); others embed Latin-script names or
  titles. XQuAD questions are shorter and fare worse (94.3%: ja 38, de 7, wuu 6): expect a few percent
  of short Simplified Chinese texts to come back `ja`.
- **bg** (97.7%, 19 misses): all go to the closest Cyrillic languages, Russian (13), Macedonian (4)
  and Serbian (2), at 0.4-0.87 confidence, 8 of them short; a 0.8 threshold removes all but one.
- XQuAD **ro** (97.6%) loses short questions to its Romance neighbours (it, fr, es).
- What a user should know: accuracy on one short line or on transliterated text is well below that on
  paragraphs. The probability separates right from wrong well (see "acc. of kept"), but a fixed 0.8
  cut also throws away much correct text in languages the model knows poorly (Swahili most of all):
  check "kept at p ≥ 0.8" before filtering a language with lid.176. For Swahili, romanised Hindi/Urdu
  or Bokmål vs Danish prefer OpenLID or GlotLID (`polyglot serve lid --model ...`), as the paper did."""


def _with_ci(r: dict, key: str) -> str:
    low, high = r[f"ci95_{key}"]
    return f"{r[f'ratio_{key}']:.2f} ({low:.2f}–{high:.2f})"


def _ratio_row(words: int, r: dict) -> str:
    rate = [f"{r[m]['median_per_s']:,.0f}" for m in MODES]
    cpu = [f"{r[m]['cpu_us_per_sentence']:.1f}" for m in MODES]
    ratios = [_with_ci(r, f"{s}_vs_{b}") for s in SERVICE_MODES for b in BASELINES]
    cpu_ratios = [f"{r[f'cpu_ratio_{s}_vs_inprocess_core']:.2f}" for s in SERVICE_MODES]
    return f"| {words} | " + " | ".join(rate + ratios + cpu + cpu_ratios) + " |"


MODES = ("inprocess_binding", "inprocess_core", "service_unary", "service_stream")
SERVICE_MODES = ("service_unary", "service_stream")
BASELINES = ("inprocess_core", "inprocess_binding")


def _throughput_md(result: dict) -> str:
    first = next(iter(result["single_client"].values()))
    lines = [
        "# lid service: throughput (lid.176.ftz; batches of 256; one client; loopback)",
        "",
        f"Machine: {result['machine']}. Server: a `polyglot serve lid` child process; client and in-process "
        "baselines run in the benchmark process. Each size runs "
        f"{first['rounds']} short rounds of {first['sentences_per_round']} sentences, every mode once per round in "
        "alternating order (this VM's speed swings by ±50% within a second). Rates are medians over rounds; "
        "ratios are medians of per-round ratios, with a bootstrap 95% interval in brackets.",
        "",
        "- `core` = `LanguageIdentifier.identify(batch)` in-process: same model, same validation, same "
        "dataclasses out as the service's client returns (the like-for-like baseline);",
        "- `binding` = fastText's own `model.predict(text)` in a loop (no validation, tuples out: the floor);",
        "- `unary` = `LidClient.identify(batch)`, one call at a time; `stream` = `LidClient.identify_stream`, "
        "one stream kept open across rounds (as a pipeline would), a round's batches pipelined through it;",
        "- CPU µs/sentence adds the server process's CPU to the benchmark process's; CPU ratio = core's CPU "
        "per sentence ÷ the service's: the throughput ratio each would reach on a core of its own, which "
        "holds up when other work shares the machine (wall-clock ratios then swing both ways: a process "
        "that sleeps on a socket, as client and server do, is favoured by the scheduler when it wakes).",
        "",
        "| words | binding /s | core /s | unary /s | stream /s | unary ÷ core | unary ÷ binding "
        "| stream ÷ core | stream ÷ binding | CPU µs binding | CPU µs core | CPU µs unary | CPU µs stream "
        "| CPU ratio unary | CPU ratio stream |",
        "|---:|" + "---:|" * 14,
    ]
    lines += [_ratio_row(int(words), r) for words, r in result["single_client"].items()]
    big = result["single_client_12_words_batches_of_1024"]
    lines += [
        "",
        "Same with batches of 1024 (12 words; not part of the goal, it shows the share of per-call cost): "
        f"unary ÷ core {_with_ci(big, 'service_unary_vs_inprocess_core')}, stream ÷ core "
        f"{_with_ci(big, 'service_stream_vs_inprocess_core')}; CPU ratios "
        f"{big['cpu_ratio_service_unary_vs_inprocess_core']:.2f} and "
        f"{big['cpu_ratio_service_stream_vs_inprocess_core']:.2f}.",
    ]
    c = result["concurrent"]
    rt = result["round_trip"]
    lines += [
        "",
        f"**{c['clients']} concurrent clients** (each its own channel; {c['calls_per_client']} calls of "
        f"{c['batch']} ~25-word sentences each): {c['sentences_per_s']:,.0f} sentences/s, p50 {c['p50_ms']:.0f} ms, "
        f"p99 {c['p99_ms']:.0f} ms per call, errors {c['errors']}.",
        "",
        "Goal, service ≥ 0.90 × in-process, one client, batches of 256 (stream ÷ core at every size: "
        "`identify_stream`, the path for bulk work, which keeps the next batch on the wire while the "
        f"server predicts): by wall clock **{'met' if result['goal_met'] else 'not met'}**, by CPU time "
        f"**{'met' if result['goal_met_by_cpu'] else 'not met'}** ({result['goal_note']}).",
        "",
        f"Unary calls one at a time pay a fixed round trip per call: an empty `Identify` takes "
        f"{rt['p50_ms']:.2f} ms (median; best {rt['min_ms']:.2f} ms) on this machine, client and server "
        f"in Python gRPC, against {1000 * BATCH / first['inprocess_core']['median_per_s']:.1f} ms to identify "
        "a batch of 256 12-word sentences in-process (median): a caller with many batches should stream "
        "them, or send bigger batches.",
    ]
    return "\n".join(lines) + "\n"


def main(out_dir: Path, *, rounds: int = 150, per_size: int = 4 * BATCH) -> dict:
    from services.lid.client import LidClient
    from services.lid.core import LanguageIdentifier

    shared = shared_dir()
    identifier = LanguageIdentifier()
    load = os.getloadavg()
    with ServerProcess() as server, LidClient(server.address, timeout=600) as client:
        acc = accuracy_report(client.identify, identifier.path, shared)
        single = {}
        for words in WORDS:
            sentences = sentences_of(shared, words, per_size)
            single[words] = throughput(client, identifier, sentences, rounds, server.proc.pid)
        # Not part of the goal: how much of the 12-word gap is per-call cost (it shrinks with bigger batches).
        big_batches = throughput(
            client, identifier, sentences_of(shared, 12, 4 * per_size), max(3, rounds // 2), server.proc.pid, 1024
        )
        trip = round_trip_ms(client)
        concurrent = concurrent_clients(server.address, sentences_of(shared, 25, 32 * 6 * BATCH // 4))
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, shared: 1-min load average "
        f"{load[0]:.1f} at start, {os.getloadavg()[0]:.1f} at the end"
    )
    lowest = {
        f"{s}_vs_{b}": min(r[f"ratio_{s}_vs_{b}"] for r in single.values()) for s in SERVICE_MODES for b in BASELINES
    }
    lowest_cpu = {s: min(r[f"cpu_ratio_{s}_vs_inprocess_core"] for r in single.values()) for s in SERVICE_MODES}
    result = {
        "machine": machine,
        "python": platform.python_version(),
        "single_client": single,
        "concurrent": concurrent,
        "round_trip": trip,
        "single_client_12_words_batches_of_1024": big_batches,
        "goal_met": lowest["service_stream_vs_inprocess_core"] >= 0.90,
        "goal_met_by_cpu": lowest_cpu["service_stream"] >= 0.90,
        "goal_note": "lowest wall-clock ratios over sizes: "
        + ", ".join(f"{k} {v:.3f}" for k, v in lowest.items())
        + "; lowest CPU ratios vs core: "
        + ", ".join(f"{k} {v:.3f}" for k, v in lowest_cpu.items()),
        "accuracy_summary": {
            "items": acc["items"],
            "service_equals_inprocess": acc["service_equals_inprocess"],
            "xnli": {k: round(v["accuracy"], 4) for k, v in acc["datasets"]["xnli"].items()},
            "xquad": {k: round(v["accuracy"], 4) for k, v in acc["datasets"]["xquad"].items()},
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "lid_accuracy.json").write_text(json.dumps(acc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "lid_accuracy.md").write_text(_accuracy_md(acc), encoding="utf-8")
    (out_dir / "lid.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "lid.md").write_text(_throughput_md(result), encoding="utf-8")
    return {k: result[k] for k in ("goal_met", "goal_met_by_cpu", "goal_note", "concurrent", "round_trip")} | {
        "ratios": {w: {k: round(v, 3) for k, v in r.items() if k.startswith("ratio_")} for w, r in single.items()}
    }
