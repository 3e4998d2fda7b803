"""The OpenAI front door's pure parts: request shapes, error params, and the chat layout."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.data import guanaco
from services.generator.http.chat import guanaco_prompt
from services.generator.http.errors import loc_param, openai_param
from services.generator.http.schema import ChatRequest, CompletionRequest


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("hi", ["hi"]),
        (["a", "b"], ["a", "b"]),
        ([1, 2, 3], [[1, 2, 3]]),
        ([[1, 2], [3]], [[1, 2], [3]]),
    ],
)
def test_every_openai_prompt_shape_becomes_a_list_of_prompts(prompt, expected):
    assert CompletionRequest(model="m", prompt=prompt).prompts() == expected


def test_only_the_fields_a_client_set_override_the_sampling_defaults():
    request = CompletionRequest(model="m", prompt="x", temperature=0, stop="\n", seed=4, user="u", echo_back=1)
    assert request.overrides(request.max_tokens) == {"temperature": 0.0, "seed": 4, "max_tokens": 16, "stop": ["\n"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"suffix": "end"}, "suffix"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"logprobs": 5}, "logprobs"),
        ({"prompt": [-1]}, "prompt"),
    ],
)
def test_what_the_server_cannot_honour_is_refused_by_name(body, field):
    with pytest.raises(ValidationError) as caught:
        CompletionRequest.model_validate({"model": "m", "prompt": "x"} | body)
    assert loc_param(("body", *caught.value.errors()[0]["loc"])) == field


def test_chat_logprobs_are_refused():
    with pytest.raises(ValidationError, match="not supported"):
        ChatRequest(model="m", messages=[{"role": "user", "content": "x"}], logprobs=True)


@pytest.mark.parametrize(
    ("field", "kwargs", "param"),
    [
        ("sampling.temperature", {}, "temperature"),
        ("prompts[2]", {}, "prompt[2]"),
        ("prompts[0]", {"single_prompt": True}, "prompt"),
        ("prompts[0]", {"chat": True}, "messages"),
        ("adapter", {}, "model"),
        ("uri", {}, "model"),
        ("max_tokens", {}, "max_tokens"),
        (None, {}, None),
    ],
)
def test_core_fields_are_named_as_the_openai_request_names_them(field, kwargs, param):
    assert openai_param(field, **kwargs) == param


@pytest.mark.parametrize(
    ("loc", "param"),
    [
        (("body", "temperature"), "temperature"),
        (("body", "messages", 0, "content"), "messages[0].content"),
        (("body", "prompt", "list[int]", 0), "prompt"),
        (("body", 12), None),  # a JSON syntax error's position
    ],
)
def test_validation_locations_become_params(loc, param):
    assert loc_param(loc) == param


def test_one_user_message_is_the_papers_prompt_template():
    assert guanaco_prompt([("user", "  Wie geht's? ")]) == guanaco.prompt("Wie geht's?")


def test_a_conversation_is_the_studys_guanaco_layout_ending_in_an_open_assistant_turn():
    messages = [("system", "Be brief."), ("user", "Hallo!"), ("assistant", "Hi."), ("user", "Und jetzt?")]
    expected = guanaco.format_turns(
        [
            guanaco.Turn("human", "Be brief.\n\nHallo!"),
            guanaco.Turn("assistant", "Hi."),
            guanaco.Turn("human", "Und jetzt?"),
            guanaco.Turn("assistant", ""),
        ]
    )
    assert guanaco_prompt(messages) == expected
