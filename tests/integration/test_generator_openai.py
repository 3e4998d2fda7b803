"""The generator's OpenAI-compatible front door, on loopback beside its gRPC port in one server process.

OpenAI's own client and lm-evaluation-harness's own `local-completions` model talk to it; what they get is
checked against the gRPC path on the same generator (Generate, Score, and lm-eval's `polyglot-grpc` model).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from tests.fixtures.generator import generator_settings

openai = pytest.importorskip("openai")


@dataclass
class FrontAndBack:
    grpc_address: str
    base_url: str  # http://127.0.0.1:PORT/v1
    model: str  # the base model's name
    generator: object


@pytest.fixture(scope="module")
def served(tiny_llama_dir, tmp_path_factory):
    """One generator process-in-a-thread: gRPC and the HTTP front door on one loop, over one tiny Llama."""
    from services.common.inprocess import serve_in_thread
    from services.generator.factory import create_generator
    from services.generator.http.serve import FrontDoor
    from services.generator.main import registrations

    generator = create_generator(generator_settings(tiny_llama_dir, "hf", tmp_path_factory.mktemp("openai-cache")))
    doors: list[FrontDoor] = []

    async def build(settings):
        doors.append(await FrontDoor.start(generator, settings, 0))  # 0: any free port
        return registrations(generator, front_door=doors[0])

    with serve_in_thread(build) as address:
        yield FrontAndBack(address, f"http://127.0.0.1:{doors[0].port}/v1", generator.engine.info.model, generator)


@pytest.fixture(scope="module")
def grpc(served):
    from services.generator.client import GeneratorClient

    with GeneratorClient(served.grpc_address, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def client(served):
    with openai.OpenAI(base_url=served.base_url, api_key="dummy", max_retries=0, timeout=120) as c:
        yield c


def test_the_openai_client_gets_the_same_completions_as_grpc(served, client, grpc):
    assert served.model in [m.id for m in client.models.list().data]

    prompts = ["The weather in Zurich is", "Der Hund"]
    got = client.completions.create(model=served.model, prompt=prompts, max_tokens=8, temperature=0, seed=3)
    want = grpc.generate_all(prompts, max_tokens=8, temperature=0.0, seed=3)
    assert [c.text for c in sorted(got.choices, key=lambda c: c.index)] == [w.text for w in want]
    assert got.usage.completion_tokens == sum(w.completion_tokens for w in want)

    chat = client.chat.completions.create(
        model=served.model, messages=[{"role": "user", "content": "Hallo!"}], max_tokens=8, temperature=0, seed=3
    )
    # The study's Guanaco layout, stopped at its role markers.
    (reply,) = grpc.generate_all(
        ["### Human: Hallo!### Assistant:"],
        max_tokens=8,
        temperature=0.0,
        seed=3,
        stop=["### Human:", "### Assistant:"],
    )
    assert chat.choices[0].message.role == "assistant"
    assert chat.choices[0].message.content == reply.text.strip()
    assert chat.choices[0].finish_reason == reply.finish_reason


def test_n_choices_sample_with_consecutive_seeds(served, client, grpc):
    got = client.completions.create(model=served.model, prompt="Es war einmal", max_tokens=6, n=2, seed=5)
    want = [grpc.generate_all(["Es war einmal"], max_tokens=6, temperature=1.0, seed=s)[0].text for s in (5, 6)]
    assert [c.text for c in sorted(got.choices, key=lambda c: c.index)] == want


def test_a_json_schema_response_format_constrains_the_chat_reply(served, client):
    schema = {"type": "object", "properties": {"a": {"type": "integer", "enum": [1, 2]}}, "required": ["a"]}
    chat = client.chat.completions.create(
        model=served.model,
        messages=[{"role": "user", "content": "Pick one."}],
        response_format={"type": "json_schema", "json_schema": {"name": "pick", "schema": schema}},
        max_tokens=24,
        temperature=0,
    )
    assert json.loads(chat.choices[0].message.content)["a"] in (1, 2)


def test_echo_logprobs_of_a_prompt_sum_to_the_grpc_score(served, client, grpc):
    """max_tokens=0 + echo scores the prompt: the continuation's tokens sum to Score's log-likelihood."""
    from services.generator.engine import encode_pair

    context, continuation = "Paris is the capital of", " France"
    ctx, cont = encode_pair(served.generator.engine.tokenizer, context, continuation)
    got = client.completions.create(model=served.model, prompt=[ctx + cont], max_tokens=0, echo=True, logprobs=1)
    lp = got.choices[0].logprobs
    assert lp.token_logprobs[0] is None and len(lp.token_logprobs) == len(ctx + cont)
    (score,) = grpc.score([(context, continuation)])
    assert math.fsum(lp.token_logprobs[len(ctx) :]) == pytest.approx(score.logprob, abs=1e-4)
    for token_lp, top in zip(lp.token_logprobs[1:], lp.top_logprobs[1:], strict=True):
        assert max(top.values()) >= token_lp  # the argmax is listed whenever it is another token


def test_base_colon_adapter_loads_the_adapter_on_first_use(served, client, grpc, tiny_lora_dir):
    uri = Path(tiny_lora_dir).resolve().as_uri()
    model = f"{served.model}:{uri}"
    got = client.completions.create(model=model, prompt="Hallo", max_tokens=6, temperature=0, seed=1)
    (want,) = grpc.generate_all(["Hallo"], max_tokens=6, temperature=0.0, seed=1, adapter=uri)
    assert got.choices[0].text == want.text
    listed = {m.id: m for m in client.models.list().data}
    assert any(m.parent == served.model and m.root == uri for m in listed.values())


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"temperature": -1}, 400, "temperature"),
        ({"prompt": [[1, 999999]]}, 400, "prompt"),
        ({"max_tokens": 0}, 400, "max_tokens"),
        ({"stream": True, "temperature": -1}, 400, "temperature"),  # refused before any event is sent
        ({"model": "no-such-model"}, 404, "model"),
        ({"model": "{base}:no-such-adapter"}, 404, "model"),
    ],
)
def test_a_bad_field_is_an_openai_error_naming_it(served, body, status, param):
    request = {"model": served.model, "prompt": "Hi", "max_tokens": 2} | body
    request["model"] = request["model"].replace("{base}", served.model)
    response = httpx.post(f"{served.base_url}/completions", json=request, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["message"]


def test_streaming_clients_get_the_same_completions_as_server_sent_events(served, client):
    prompts = ["The weather in Zurich is", "Der Hund"]
    plain = client.completions.create(model=served.model, prompt=prompts, max_tokens=8, temperature=0, seed=3)
    chunks = list(
        client.completions.create(
            model=served.model, prompt=prompts, max_tokens=8, temperature=0, seed=3, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    texts = {c.choices[0].index: c.choices[0].text for c in chunks if c.choices}
    assert texts == {c.index: c.text for c in plain.choices}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens

    messages = [{"role": "user", "content": "Hallo!"}]
    reply = client.chat.completions.create(model=served.model, messages=messages, max_tokens=8, temperature=0, seed=3)
    stream = client.chat.completions.create(
        model=served.model, messages=messages, max_tokens=8, temperature=0, seed=3, stream=True
    )
    deltas = list(stream)
    assert "".join(d.choices[0].delta.content or "" for d in deltas) == reply.choices[0].message.content
    assert deltas[0].choices[0].delta.role == "assistant"
    assert deltas[-1].choices[0].finish_reason == reply.choices[0].finish_reason
    assert all(d.usage is None for d in deltas)  # no include_usage, no usage chunk

    raw = httpx.post(
        f"{served.base_url}/completions",
        json={"model": served.model, "prompt": "Hi", "max_tokens": 2, "stream": True},
        timeout=60,
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.endswith("data: [DONE]\n\n")


def test_a_bad_chat_message_names_its_place_and_is_counted(served, client):
    from prometheus_client import REGISTRY

    def refused() -> float:
        labels = {"path": "/v1/chat/completions", "status": "400"}
        return REGISTRY.get_sample_value("polyglot_http_requests_total", labels) or 0.0

    before = refused()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=served.model, messages=[{"role": "robot", "content": "x"}])
    assert caught.value.body["param"] == "messages[0].role"
    assert refused() == before + 1


def test_the_service_entry_serves_https_with_the_grpc_tls_settings(tmp_path):
    """`build` (what `polyglot-serve generator --http-port P` runs) opens the door with the server's TLS files."""
    import ssl
    from functools import partial

    from services.common.inprocess import serve_in_thread
    from services.common.local import free_port
    from services.common.settings import ServerSettings
    from services.generator.main import build
    from services.generator.settings import GeneratorSettings
    from tests.integration.test_runtime import _self_signed

    cert, key = _self_signed(tmp_path)
    port = free_port()
    server = ServerSettings(port=0, metrics_port=0, tls_cert=cert, tls_key=key)
    with serve_in_thread(partial(build, settings=GeneratorSettings(model=None, http_port=port)), server):
        trust = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=f"https://localhost:{port}/v1", verify=trust, timeout=30) as https:
            assert https.get("/models").json() == {"object": "list", "data": []}
            refused = https.post("/completions", json={"model": "m", "prompt": "x"})  # no model configured
            assert refused.status_code == 400 and refused.json()["error"]["param"] == "model"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5)


def test_callers_authenticate_with_the_grpc_ports_bearer_tokens(tmp_path):
    """The OpenAI client's api_key is the bearer token; without one, or with a wrong one, HTTP 401."""
    from functools import partial

    from services.common.inprocess import serve_in_thread
    from services.common.local import free_port
    from services.common.settings import ServerSettings
    from services.generator.main import build
    from services.generator.settings import GeneratorSettings

    (tmp_path / "callers").write_text("study: s3cret-token-for-the-study\n")
    port = free_port()
    server = ServerSettings(port=0, metrics_port=0, callers=tmp_path / "callers")
    with serve_in_thread(partial(build, settings=GeneratorSettings(model=None, http_port=port)), server):
        base_url = f"http://127.0.0.1:{port}/v1"
        for headers in ({}, {"authorization": "Bearer wrong"}):
            refused = httpx.get(f"{base_url}/models", headers=headers, timeout=30)
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthenticated"
        with openai.OpenAI(base_url=base_url, api_key="s3cret-token-for-the-study", max_retries=0) as client:
            assert client.models.list().data == []


# -- lm-evaluation-harness: local-completions against polyglot-grpc on the same generator -------------------


def write_tasks(root: Path, xnli_dir: Path) -> list[str]:
    """An XNLI-style log-likelihood task over a few real XNLI pairs, and a short generation task."""
    rows = []
    for lang in ("en", "de", "fr"):
        for line in (xnli_dir / f"xnli_dev-{lang}.tsv").read_text().splitlines()[:2]:
            premise, hypothesis, label = line.split("\t")
            rows.append(
                {
                    "premise": premise,
                    "hypothesis": hypothesis,
                    "label": ["entailment", "neutral", "contradiction"].index(label),
                }
            )
    (root / "nli.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    (root / "qa.jsonl").write_text("".join(json.dumps({"q": q}) + "\n" for q in ("Wie heißt du?", "Where is Rome?")))
    (root / "openai_xnli.yaml").write_text(
        f"""task: openai_xnli
dataset_path: json
dataset_kwargs:
  data_files:
    test: {root / "nli.jsonl"}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{premise}}}}, right?"
doc_to_choice: "{{{{['Yes, ' + hypothesis, 'Also, ' + hypothesis, 'No, ' + hypothesis]}}}}"
doc_to_target: label
metric_list:
  - metric: acc
"""
    )
    (root / "openai_qa.yaml").write_text(
        f"""task: openai_qa
dataset_path: json
dataset_kwargs:
  data_files:
    test: {root / "qa.jsonl"}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{q}}}}\\nAnswer:"
doc_to_target: "x"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 6
  do_sample: false
metric_list:
  - metric: exact_match
"""
    )
    return ["openai_xnli", "openai_qa"]


def evaluate(model: str, model_args: str, tasks: list[str], include: Path) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    # Only the tasks written here: indexing lm-eval's thousands of built-in tasks takes most of a run.
    tasks_here = TaskManager(include_path=str(include), include_defaults=False)
    return lm_eval.simple_evaluate(
        model=model, model_args=model_args, tasks=tasks, task_manager=tasks_here,
        log_samples=True, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
    )  # fmt: skip


@pytest.mark.slow
def test_lm_evals_local_completions_matches_the_grpc_adapter(served, shared_dir, llama2_tokenizer_dir, tmp_path):
    """lm-eval runs both tasks over HTTP; the gRPC adapter (`polyglot-grpc`) answers the very same requests."""
    pytest.importorskip("lm_eval")
    from services.generator.lm_eval_adapter import PolyglotGrpcLM

    tasks = write_tasks(tmp_path, shared_dir / "data" / "xnli")
    # add_bos_token: Llama's prompts start with BOS, as the generator (and lm-eval's hf model) encode them.
    http_args = (
        f"model={served.model},base_url={served.base_url}/completions,tokenizer_backend=huggingface,"
        f"tokenizer={llama2_tokenizer_dir},add_bos_token=True,num_concurrent=4,max_retries=1,seed=0"
    )
    over_http = evaluate("local-completions", http_args, tasks, tmp_path)
    grpc_lm = PolyglotGrpcLM(address=served.grpc_address)

    def requests(task):
        samples = sorted(over_http["samples"][task], key=lambda s: s["doc_id"])
        return samples, [SimpleNamespace(args=tuple(args)) for s in samples for args in s["arguments"]]

    nli, nli_requests = requests("openai_xnli")
    assert len(nli) == 6 and len(nli_requests) == 18
    http_scores = [resp[0] for s in nli for resp in s["resps"]]
    for (ll_http, greedy_http), (ll_grpc, greedy_grpc) in zip(
        http_scores, grpc_lm.loglikelihood(nli_requests, disable_tqdm=True), strict=True
    ):
        assert float(ll_http) == pytest.approx(ll_grpc, abs=1e-4)
        assert bool(greedy_http) == greedy_grpc

    qa, qa_requests = requests("openai_qa")
    assert [s["resps"][0][0] for s in qa] == grpc_lm.generate_until(qa_requests, disable_tqdm=True)
