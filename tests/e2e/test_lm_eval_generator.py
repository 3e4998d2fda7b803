"""lm-evaluation-harness end to end against the generator service, offline, on local YAML tasks.

The same tasks run through lm-eval's own `hf` model on the same weights: per-sample log-likelihoods must
agree to 1e-4 and greedy generations must be the same text, so a Polyglot-served model can be trusted
with any lm-eval task.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

lm_eval = pytest.importorskip("lm_eval")

NLI = [
    ("The cat sleeps on the sofa.", "An animal is resting.", 0),
    ("It is raining in Oslo.", "The streets of Oslo are dry.", 2),
    ("She bought three apples.", "She likes fruit.", 1),
    ("The train left at noon.", "The train departed at 12:00.", 0),
    ("Der Hund bellt laut.", "Der Hund schläft.", 2),
    ("Il pleut à Paris.", "Paris a de la pluie.", 0),
]
QA = [
    ("What is the capital of France?", "Paris"),
    ("How many legs does a spider have?", "eight"),
    ("Wie heißt die Hauptstadt von Deutschland?", "Berlin"),
    ("What colour is the sky?", "blue"),
]


def write_tasks(root: Path) -> list[str]:
    (root / "nli.jsonl").write_text(
        "".join(json.dumps({"premise": p, "hypothesis": h, "label": y}) + "\n" for p, h, y in NLI)
    )
    (root / "qa.jsonl").write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in QA))
    (root / "polyglot_tiny_nli.yaml").write_text(
        f"""task: polyglot_tiny_nli
dataset_path: json
dataset_kwargs:
  data_files:
    test: {root / "nli.jsonl"}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{premise}}}} Question: {{{{hypothesis}}}} True, Neither or False? Answer:"
doc_to_choice: ["True", "Neither", "False"]
doc_to_target: label
metric_list:
  - metric: acc
"""
    )
    (root / "polyglot_tiny_qa.yaml").write_text(
        f"""task: polyglot_tiny_qa
dataset_path: json
dataset_kwargs:
  data_files:
    test: {root / "qa.jsonl"}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
"""
    )
    return ["polyglot_tiny_nli", "polyglot_tiny_qa"]


def evaluate(model: str, model_args: str, tasks: list[str], include: Path) -> dict:
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=tasks,
        task_manager=TaskManager(include_path=str(include)),
        log_samples=True,
        batch_size=4,
        device="cpu",
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        fewshot_random_seed=0,
    )


@pytest.mark.slow
def test_lm_eval_tasks_through_the_service_match_lm_evals_own_hf_model(generator_service, tmp_path):
    if generator_service.backend != "hf":
        pytest.skip("lm-eval lives in the main venv; the vllm variant runs in .venv-vllm without it")
    import services.generator.lm_eval_adapter  # noqa: F401  (registers polyglot-grpc)

    tasks = write_tasks(tmp_path)
    ours = evaluate("polyglot-grpc", f"address={generator_service.address}", tasks, tmp_path)
    reference = evaluate("hf", f"pretrained={generator_service.model_dir},dtype=float32", tasks, tmp_path)

    assert ours["results"]["polyglot_tiny_nli"]["acc,none"] == reference["results"]["polyglot_tiny_nli"]["acc,none"]
    ours_nli = sorted(ours["samples"]["polyglot_tiny_nli"], key=lambda s: s["doc_id"])
    ref_nli = sorted(reference["samples"]["polyglot_tiny_nli"], key=lambda s: s["doc_id"])
    assert len(ours_nli) == len(NLI)
    for a, b in zip(ours_nli, ref_nli, strict=True):
        for (ll_a, greedy_a), (ll_b, greedy_b) in zip(
            (r[0] for r in a["resps"]), (r[0] for r in b["resps"]), strict=True
        ):
            assert float(ll_a) == pytest.approx(float(ll_b), abs=1e-4)
            assert bool(greedy_a) == bool(greedy_b)

    ours_qa = sorted(ours["samples"]["polyglot_tiny_qa"], key=lambda s: s["doc_id"])
    ref_qa = sorted(reference["samples"]["polyglot_tiny_qa"], key=lambda s: s["doc_id"])
    assert len(ours_qa) == len(QA)
    for a, b in zip(ours_qa, ref_qa, strict=True):
        # SentencePiece: lm-eval decodes the new tokens alone and drops their leading space; we keep it.
        assert a["resps"][0][0].strip() == b["resps"][0][0].strip()
    assert ours["results"]["polyglot_tiny_qa"]["exact_match,none"] == reference["results"]["polyglot_tiny_qa"][
        "exact_match,none"
    ]


def test_rolling_loglikelihood_is_refused_with_a_clear_message(generator_service):
    from services.generator.lm_eval_adapter import PolyglotGrpcLM

    lm = PolyglotGrpcLM(address=generator_service.address)
    with pytest.raises(NotImplementedError, match="loglikelihood_rolling"):
        lm.loglikelihood_rolling([])


@pytest.mark.slow
def test_polyglot_lm_eval_runs_lm_evals_own_cli_with_the_polyglot_model(generator_service, tmp_path):
    """From the shell, as a user would: lm-eval's CLI, through `polyglot lm-eval`, finds `polyglot-grpc`."""
    import subprocess
    import sys

    if generator_service.backend != "hf":
        pytest.skip("lm-eval lives in the main venv; the vllm variant runs in .venv-vllm without it")
    tasks = write_tasks(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "lm-eval", "run", "--model", "polyglot-grpc",
         "--model_args", f"address={generator_service.address}", "--tasks", tasks[0],
         "--include_path", str(tmp_path), "--output_path", str(tmp_path / "out"), "--batch_size", "4"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (results,) = (tmp_path / "out").rglob("results_*.json")
    accuracy = json.loads(results.read_text())["results"][tasks[0]]["acc,none"]
    assert 0.0 <= accuracy <= 1.0
