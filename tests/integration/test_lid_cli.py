"""`polyglot-serve lid` as a real process: embedded default, explicit path, env, and start-up failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.lid.client import LidClient
from services.lid.core import embedded_model_path
from tests.fixtures.lid import serve, stop, wait_until_serving


def model_info_of(*args: str, env: dict[str, str] | None = None):
    proc, address = serve(*args, env=env)
    try:
        wait_until_serving(proc, address)
        with LidClient(address, timeout=30) as client:
            return client.model_info(), client.identify(["Guten Morgen, wie geht es Ihnen?"])[0]
    finally:
        assert stop(proc) == 0


def fails_at_start(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc, _ = serve(*args, env=env)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr


@pytest.mark.slow
def test_no_model_configured_serves_the_embedded_lid176():
    info, result = model_info_of(env={"POLYGLOT_LID_MODEL": ""})
    assert info.path == str(embedded_model_path()) and info.label_scheme == "lid176" and info.num_labels == 176
    assert result.language == "de"


@pytest.mark.slow
def test_explicit_model_path_and_limits(shared_dir):
    path = shared_dir / "models" / "lid" / "lid.176.ftz"
    info, result = model_info_of("--model", str(path), "--max-batch", "64", "--max-text-bytes", "2048")
    assert (info.path, info.max_batch_size, info.max_text_bytes) == (str(path), 64, 2048)
    assert result.language == "de"


@pytest.mark.slow
def test_model_from_the_environment(tiny_openlid_model):
    info, result = model_info_of(env={"POLYGLOT_LID_MODEL": str(tiny_openlid_model)})
    assert (info.path, info.label_scheme, info.num_labels) == (str(tiny_openlid_model), "openlid", 201)
    assert result.predictions == ()  # the tiny model knows none of these words


@pytest.mark.slow
def test_missing_model_fails_at_start_naming_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "lid201-model.bin"
    code, stderr = fails_at_start("--model", str(missing))
    assert code == 1
    assert str(missing) in stderr and "does not exist" in stderr and "Traceback" not in stderr


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["truncated", "text", "empty"])
def test_corrupt_model_fails_at_start_naming_the_path(tmp_path: Path, kind):
    data = {
        "truncated": embedded_model_path().read_bytes()[:20_000],  # fastText alone would hang on this one
        "text": b"<html>404 not found</html>\n",
        "empty": b"",
    }[kind]
    corrupt = tmp_path / f"{kind}.ftz"
    corrupt.write_bytes(data)
    code, stderr = fails_at_start("--model", str(corrupt))
    assert code == 1
    assert str(corrupt) in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_bad_setting_in_the_environment_exits_2():
    code, stderr = fails_at_start(env={"POLYGLOT_LID_MAX_BATCH": "many"})
    assert code == 2 and "POLYGLOT_LID_MAX_BATCH" in stderr and "Traceback" not in stderr
