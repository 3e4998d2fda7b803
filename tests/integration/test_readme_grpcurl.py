"""Each service README's grpcurl call works as printed, against the real service on loopback.

grpcurl has no Debian package (and the PyPI wrapper downloads its binary at run time), so the test plays
grpcurl: a client that knows none of the project's stubs learns the method from the server's reflection
and sends the README's JSON as written (`json_format` reads proto and JSON field names, as grpcurl does).
"""

from __future__ import annotations

import re
import shlex
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from services.common.catalog import SERVICES
from tests.fixtures.generator import generator_settings
from tests.fixtures.judge import running_judge

ROOT = Path(__file__).resolve().parents[2]


def readme_call(service: str) -> tuple[str, str, str]:
    """(JSON request, address, method) of the one bash block in the service's README that is a grpcurl call
    with `-d`, split into words the way bash does (the JSON may span lines inside its quotes)."""
    text = (ROOT / "services" / service / "README.md").read_text(encoding="utf-8")
    calls = re.findall(r"^```bash\n(grpcurl -plaintext -d .*?)^```", text, re.M | re.S)
    assert len(calls) == 1, f"{service}/README.md: {len(calls)} grpcurl calls with -d"
    words = shlex.split(calls[0])
    assert len(words) == 6, f"{service}/README.md: expected grpcurl -plaintext -d DATA ADDRESS METHOD, got {words}"
    return words[3], words[4], words[5]


def call_like_grpcurl(address: str, method: str, data: str) -> dict:
    """The reply to `grpcurl -plaintext -d DATA ADDRESS METHOD`, as JSON, through reflection only."""
    service_name, method_name = method.split("/")
    with grpc.insecure_channel(address) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        found = pool.FindServiceByName(service_name).FindMethodByName(method_name)
        request_class = message_factory.GetMessageClass(found.input_type)
        reply_class = message_factory.GetMessageClass(found.output_type)
        call = channel.unary_unary(
            f"/{service_name}/{method_name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=reply_class.FromString,
        )
        reply = call(json_format.Parse(data, request_class()), timeout=60)
    return json_format.MessageToDict(reply)


def serving(service: str, request: pytest.FixtureRequest, tmp_path: Path) -> AbstractContextManager[str]:
    """The real service on a free loopback port (the generator on the tiny Llama, the judge on a scripted API)."""
    if service == "lid":
        return nullcontext(request.getfixturevalue("lid_service"))
    if service == "judge":
        make = request.getfixturevalue("judge_settings_factory")
        return running_judge(make(request.getfixturevalue("openai_server").base_url))
    if service == "trainer":
        return request.getfixturevalue("trainer_service")()
    from services.common.inprocess import serve_in_thread
    from services.generator.factory import create_generator
    from services.generator.main import registrations

    settings = generator_settings(request.getfixturevalue("tiny_llama_dir"), "hf", tmp_path / "adapters")
    return serve_in_thread(registrations(create_generator(settings)))


def check_reply(service: str, reply: dict) -> None:
    """What each README says the call answers."""
    if service == "lid":
        assert reply["results"][0]["predictions"][0]["language"] == "de"
    elif service == "generator":
        assert reply["models"][0]["kind"] == "base"
    elif service == "judge":
        result = reply["results"][0]
        assert (result["outcome"], result["score"]) == ("GRADE_OUTCOME_LANGUAGE_MISMATCH", 1)
        assert "language gate" in result["note"]
    else:
        assert "jobs" not in reply  # a fresh trainer has none


@pytest.mark.parametrize("service", list(SERVICES))
def test_the_readme_grpcurl_call_works_as_printed(service, request, tmp_path):
    data, address, method = readme_call(service)
    assert address == f"127.0.0.1:{SERVICES[service].port}"  # the default port of `polyglot-serve`
    with serving(service, request, tmp_path) as served:
        check_reply(service, call_like_grpcurl(served, method, data))
