"""Row 8: a failed LoadAdapter left its name half-registered, so later loads of that name failed until a
restart; and names derived from URIs were predictable (`uri-` + a hash of the URI string), so a study's
adapter could be poisoned in advance. Reproduced before the fix against the real generator (tiny Llama, hf):
loading an adapter whose weights do not fit the model (rank 8 weights, `r: 4` in its config) under a name
failed, as it should, but PEFT had already registered the name, so loading a good adapter under it failed
too; and `LoadAdapter(name="uri-<sha256(study URI)[:16]>", uri=<that misfit>)` made every later Generate
with the study's URI fail.

Remedies: the hf backend loads an adapter all or nothing (`HFBackend._load` undoes PEFT's half on failure)
and the adapter cache records a name only after the engine took it; an adapter asked for by URI is named
`uri-<content hash>` after what the URI holds, and `LoadAdapter` refuses names starting with `uri-`
(INVALID_ARGUMENT naming `name`), so no caller can claim a study's name for other content.

    .venv/bin/python -m pytest tests/reliability/test_row08_adapter_registration.py -q
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil

import pytest

from services.common import errors
from services.common.store import open_store
from services.generator.client import GeneratorClient

BUCKET = "s3://polyglot-generator-tests/models"
PROMPT = ["### Human: Say hello.\n### Assistant:"]


@pytest.fixture(scope="module")
def misfit_uri(tiny_lora_dir, s3_server, tmp_path_factory) -> str:
    """An adapter of rank 8 whose config says rank 4: PEFT registers it, then cannot load its weights."""
    path = tmp_path_factory.mktemp("misfit") / "adapter"
    shutil.copytree(tiny_lora_dir, path)
    config = json.loads((path / "adapter_config.json").read_text())
    (path / "adapter_config.json").write_text(json.dumps({**config, "r": 4}))
    uri = f"{BUCKET}/row08-misfit/adapter"
    open_store(uri, **s3_server.store_options()).put_dir("", path)
    return uri


@pytest.fixture
def client(generator_service):
    with GeneratorClient(generator_service.address, timeout=120) as client:
        yield client


def _generates(client, adapter: str) -> bool:
    try:
        [completion] = client.generate_all(PROMPT, adapter=adapter, max_tokens=2, temperature=0.0)
    except errors.PolyglotError:
        return False
    return completion.error is None


def test_a_failed_load_leaves_the_name_free_for_a_retry(client, misfit_uri, tiny_lora_uri, generator_service):
    if generator_service.backend != "hf":
        pytest.skip("the rollback under test is the hf backend's (PEFT)")
    client.load_adapter("row08-warm", tiny_lora_uri)  # the engine already serves an adapter, as in production
    try:
        with pytest.raises(errors.FailedPrecondition):
            client.load_adapter("row08-retry", misfit_uri)
        assert "row08-retry" not in {m.name for m in client.list_models().models}
        entry = client.load_adapter("row08-retry", tiny_lora_uri)  # the corrected upload, same name
        assert entry.name == "row08-retry" and _generates(client, "row08-retry")
    finally:
        for name in ("row08-retry", "row08-warm"):
            with contextlib.suppress(errors.NotFound):
                client.unload_adapter(name)


def test_a_studys_adapter_uri_cannot_be_poisoned_by_registering_its_name_first(
    client, misfit_uri, tiny_lora_dir, tiny_lora_uri, s3_server
):
    study_uri = f"{BUCKET}/row08-study/adapter"  # not loaded yet, as when a study starts
    open_store(study_uri, **s3_server.store_options()).put_dir("", tiny_lora_dir)
    client.load_adapter("row08-warm", tiny_lora_uri)
    try:
        predictable = "uri-" + hashlib.sha256(study_uri.encode()).hexdigest()[:16]  # the old naming rule
        with pytest.raises(errors.PolyglotError):
            client.load_adapter(predictable, misfit_uri)
        with pytest.raises(errors.InvalidArgument) as info:  # the prefix is reserved now, whatever follows it
            client.load_adapter("uri-" + "0" * 32, misfit_uri)
        assert str(info.value).startswith("name: ")
        assert _generates(client, study_uri)
    finally:
        client.unload_adapter("row08-warm")
