"""The generator service end to end through gRPC on the tiny Llama (random weights, real Llama 2 tokenizer).

Every test runs per backend: `hf` here, `vllm` in `.venv-vllm` (`make test-vllm`). Outputs of a random
model are noise; the tests check mechanics (seeds, scoring arithmetic, adapters, prefixes, stops, errors).
"""

from __future__ import annotations

import concurrent.futures as cf

import pytest

from services.common.errors import InvalidArgument, NotFound, ResourceExhausted
from services.generator.client import GeneratorClient

PROMPTS = ["### Human: Hello, who are you?\n### Assistant:", "The capital of France is", "Once upon a time"]
GREEDY = dict(temperature=0.0)


def _texts(results):
    return [r.text for r in sorted(results, key=lambda r: r.index)]


def test_list_models_reports_base_and_adapter_bound(generator_client, generator_service):
    reply = generator_client.list_models()
    base = reply.models[0]
    assert (base.kind, base.backend, base.max_context) == ("base", generator_service.backend, 2048)
    assert reply.max_loaded_adapters == 2


def test_results_stream_with_index(generator_client):
    results = list(generator_client.generate(PROMPTS, max_tokens=4, seed=0, request_id="req-7"))
    assert sorted(r.index for r in results) == [0, 1, 2]
    for r in results:
        assert r.error is None
        assert r.finish_reason in ("stop", "length")
        assert 0 < r.completion_tokens <= 4
        assert r.prompt_tokens > 0


def test_same_seed_and_params_give_identical_text(generator_client):
    first = _texts(generator_client.generate_all(PROMPTS, preset="chat", seed=42, max_tokens=12))
    again = _texts(generator_client.generate_all(PROMPTS, preset="chat", seed=42, max_tokens=12))
    other = _texts(generator_client.generate_all(PROMPTS, preset="chat", seed=723, max_tokens=12))
    assert first == again
    assert first != other  # 3 prompts × 12 tokens sampled at temperature 0.8: a collision would be a bug


def test_a_prompt_samples_the_same_alone_or_in_a_batch(generator_client):
    """Seeds are per prompt, so a completion does not depend on which other prompts share its batch."""
    together = _texts(generator_client.generate_all(PROMPTS, preset="chat", seed=0, max_tokens=10))
    alone = [_texts(generator_client.generate_all([p], preset="chat", seed=0, max_tokens=10))[0] for p in PROMPTS]
    assert together == alone


def test_chat_preset_is_the_papers_decoding(generator_client):
    result = generator_client.generate_all(["Hi"], preset="chat", seed=0, max_tokens=3)[0]
    assert result.error is None
    with pytest.raises(InvalidArgument, match="preset"):
        generator_client.generate_all(["Hi"], preset="creative")


def test_score_matches_a_direct_transformers_forward_pass(generator_client, generator_service):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(generator_service.model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(generator_service.model_dir), dtype=torch.float32).eval()
    pairs = [
        ("The capital of France is", " Paris"),
        ("Question: 2+2=", "4. Answer: yes"),
        ("Hello ", "world"),  # the trailing space moves to the continuation, as in lm-eval
        ("Привет, как", " дела?"),
        ("", "Hello world"),  # empty context: conditioned on BOS alone
    ]

    def direct(context: str, continuation: str) -> tuple[float, bool]:
        if context:
            n_spaces = len(context) - len(context.rstrip())
            if n_spaces:
                context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
            whole = tok(context + continuation)["input_ids"]
            n_ctx = len(tok(context)["input_ids"])
        else:
            whole = [tok.bos_token_id, *tok(continuation, add_special_tokens=False)["input_ids"]]
            n_ctx = 1
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([whole])).logits[0].float(), -1)
        target = torch.tensor(whole[n_ctx:])
        rows = logprobs[n_ctx - 1 : len(whole) - 1]
        return float(rows.gather(-1, target[:, None]).sum()), bool((rows.argmax(-1) == target).all())

    results = generator_client.score(pairs)
    for (context, continuation), result in zip(pairs, results, strict=True):
        expected, greedy = direct(context, continuation)
        assert result.error is None
        assert result.logprob == pytest.approx(expected, abs=1e-4), (context, continuation)
        assert result.is_greedy == greedy

    # A continuation that is the model's own greedy choice is reported as greedy.
    ctx_ids = tok("The weather today")["input_ids"]
    with torch.no_grad():
        best = int(model(torch.tensor([ctx_ids])).logits[0, -1].argmax())
    whole_text = tok.decode(ctx_ids + [best], skip_special_tokens=True)
    context = tok.decode(ctx_ids, skip_special_tokens=True)
    assert tok(whole_text)["input_ids"][len(ctx_ids) :] == [best], "pick a context whose greedy token round-trips"
    (result,) = generator_client.score([(context, whole_text[len(context) :])])
    assert result.is_greedy and result.num_tokens == 1


def test_adapter_loaded_by_s3_uri_changes_outputs(generator_client, tiny_lora_uri):
    prompt = ["The capital of France is"]
    base = _texts(generator_client.generate_all(prompt, max_tokens=12, **GREEDY))
    info = generator_client.load_adapter("tiny-lora", tiny_lora_uri)
    assert (info.name, info.kind, info.uri) == ("tiny-lora", "adapter", tiny_lora_uri)
    assert "tiny-lora" in [m.name for m in generator_client.list_models().models]
    tuned = _texts(generator_client.generate_all(prompt, max_tokens=12, adapter="tiny-lora", **GREEDY))
    assert tuned != base
    # The base model is untouched by the loaded adapter, and the adapter can be named by its URI too.
    assert _texts(generator_client.generate_all(prompt, max_tokens=12, **GREEDY)) == base
    by_uri = _texts(generator_client.generate_all(prompt, max_tokens=12, adapter=tiny_lora_uri, **GREEDY))
    assert by_uri == tuned
    base_score, tuned_score = (
        generator_client.score([("The capital of France is", " Paris")], adapter=a)[0].logprob
        for a in ("", "tiny-lora")
    )
    assert abs(base_score - tuned_score) > 1e-3
    generator_client.unload_adapter("tiny-lora")
    with pytest.raises(NotFound, match="adapter"):
        generator_client.generate_all(prompt, max_tokens=2, adapter="tiny-lora")


def test_loaded_adapters_are_bounded_least_recently_used_first(generator_client, tiny_lora_uri):
    for name in ("lru-a", "lru-b", "lru-c"):
        generator_client.load_adapter(name, tiny_lora_uri)
    names = {m.name for m in generator_client.list_models().models if m.kind == "adapter"}
    assert {"lru-b", "lru-c"} <= names and "lru-a" not in names and len(names) <= 2
    for name in names:
        generator_client.unload_adapter(name)


def test_forced_response_prefix_is_continued_and_not_returned(generator_client):
    prompt, prefix = "### Human: Name a colour.\n### Assistant:", " The answer is"
    forced = generator_client.generate_all([prompt], max_tokens=8, response_prefix=prefix, **GREEDY)[0]
    plain = generator_client.generate_all([prompt + prefix], max_tokens=8, **GREEDY)[0]
    assert forced.text == plain.text
    assert not forced.text.startswith(prefix)
    assert forced.prompt_tokens == plain.prompt_tokens


def test_stop_strings_cut_the_completion(generator_client):
    prompt = ["Once upon a time"]
    full = generator_client.generate_all(prompt, max_tokens=24, **GREEDY)[0]
    assert full.finish_reason == "length" and full.completion_tokens == 24
    words = full.text.split()
    stop = next(w for w in words[3:] if len(w) >= 3 and full.text.index(w) > 0)
    stopped = generator_client.generate_all(prompt, max_tokens=24, stop=[stop], **GREEDY)[0]
    assert stopped.text == full.text[: full.text.index(stop)]
    assert stopped.finish_reason == "stop"
    assert stopped.completion_tokens < 24


def test_completions_stream_back_as_each_finishes(generator_client):
    """A prompt that stops early is streamed before a longer one of the same request."""
    long_prompt, short_prompt = "Once upon a time", "The capital of France is"
    full_long, full_short = (
        generator_client.generate_all([p], max_tokens=24, **GREEDY)[0].text for p in (long_prompt, short_prompt)
    )
    early = [w for w in full_short.split()[1:4] if len(w) >= 3 and w not in full_long]
    if not early:
        pytest.skip("no word early in one greedy completion that the other lacks")
    stream = generator_client.generate([long_prompt, short_prompt], max_tokens=24, stop=[early[0]], **GREEDY)
    order = [r.index for r in stream]
    assert order == [1, 0]


def test_long_prompts_are_cut_from_the_left(generator_client):
    long_prompt = "one two three four five " * 600  # about 3,000 tokens, the context is 2,048
    result = generator_client.generate_all([long_prompt], max_tokens=8, **GREEDY)[0]
    assert result.error is None
    assert result.truncated_tokens > 0
    assert result.prompt_tokens + 8 == 2048
    assert result.prompt_tokens + result.truncated_tokens > 2048


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(max_tokens=0), "sampling.max_tokens"),
        (dict(max_tokens=-3), "sampling.max_tokens"),
        (dict(max_tokens=2048), "sampling.max_tokens"),  # beyond the context: no room for the prompt
        (dict(top_p=0.0), "sampling.top_p"),
        (dict(top_p=1.5), "sampling.top_p"),
        (dict(temperature=-1.0), "sampling.temperature"),
        (dict(stop=[""]), "sampling.stop[0]"),
    ],
)
def test_bad_sampling_is_invalid_argument_naming_the_field(generator_client, kwargs, field):
    with pytest.raises(InvalidArgument) as err:
        generator_client.generate_all(["Hi"], **kwargs)
    assert err.value.grpc_code.name == "INVALID_ARGUMENT"
    assert field in str(err.value)


def test_empty_inputs_and_unknown_adapter(generator_client):
    with pytest.raises(InvalidArgument, match="prompts"):
        generator_client.generate_all([], max_tokens=2)
    with pytest.raises(InvalidArgument, match="items"):
        generator_client.score([])
    with pytest.raises(NotFound, match="adapter") as err:
        generator_client.generate_all(["Hi"], max_tokens=2, adapter="no-such-adapter")
    assert err.value.grpc_code.name == "NOT_FOUND"
    with pytest.raises(NotFound, match="uri"):
        generator_client.load_adapter("ghost", "s3://polyglot-generator-tests/models/ghost/adapter")
    # One bad item is reported on that item; its neighbours are served.
    results = generator_client.generate_all(["Hi", "", "Hello"], max_tokens=2, **GREEDY)
    assert [r.error and r.error.code for r in results] == [None, "INVALID_ARGUMENT", None]
    assert results[1].error.field == "prompts[1]"
    scores = generator_client.score([("Hi", " there"), ("Hi", "")])
    assert scores[0].error is None and scores[1].error.field == "items[1].continuation"


def test_too_large_request_is_resource_exhausted_while_others_are_served(
    generator_client, generator_service, tight_batch_budget
):
    huge = "word " * 1300  # + 300 new tokens exceeds the 1,536-token batch budget
    with GeneratorClient(generator_service.address) as other, cf.ThreadPoolExecutor(2) as pool:
        big = pool.submit(generator_client.generate_all, [huge], max_tokens=300, **GREEDY)
        small = pool.submit(other.generate_all, ["Hello"], max_tokens=4, **GREEDY)
        with pytest.raises(ResourceExhausted) as err:
            big.result()
        assert err.value.grpc_code.name == "RESOURCE_EXHAUSTED"
        assert small.result()[0].error is None
    assert other_request_still_served(generator_service.address)


def other_request_still_served(address: str) -> bool:
    with GeneratorClient(address) as client:
        return client.generate_all(["Still there?"], max_tokens=2, **GREEDY)[0].error is None


def test_concurrent_clients_share_batches(generator_service):
    """Dynamic batching (hf): requests that arrive together run in fewer model calls than requests."""
    if generator_service.backend != "hf":
        pytest.skip("vLLM batches continuously by itself")
    worker = generator_service.generator.engine.worker
    before = worker.batches_run

    def one(i: int) -> str:
        with GeneratorClient(generator_service.address) as client:
            return client.generate_all([f"Prompt number {i}"], max_tokens=6, seed=i, preset="chat")[0].text

    with cf.ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(one, range(8)))
    assert len(texts) == 8
    assert worker.batches_run - before < 8


def test_adapter_named_by_a_uri_with_dots_loads(generator_client, tiny_lora_dir, tmp_path):
    # PEFT module names may not contain dots; URIs (and .polyglot/ paths) do. Found by the smoke study.
    from services.common.store import open_store

    store = open_store((tmp_path / ".polyglot" / "artifacts.v1").as_uri())
    store.put_dir("models/tiny.lora/adapter", tiny_lora_dir)
    uri = store.uri("models/tiny.lora/adapter")
    assert "." in uri
    texts = _texts(generator_client.generate_all(["Hello"], max_tokens=4, adapter=uri, **GREEDY))
    assert len(texts) == 1
    with pytest.raises(InvalidArgument, match="name"):
        generator_client.load_adapter("has.dot", uri)
