"""`polyglot protocol fetch` against a real HTTP server on loopback serving fixture files in the paper
repository's layout (`<owner>/<repo>/<commit>/<path>`, raw.githubusercontent.com's), with a pin table
that pins the fixture's bytes: fetch, verify, bundle, install the bundle elsewhere, print the hashes; a
changed file on the server is refused with exit 2 and nothing installed."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.protocol import sources
from flows.protocol.paper_texts import load_paper_texts
from tests.fixtures.paper_repo import COMMIT, REPOSITORY, fixture_pins, write_paper_repo, write_pins

runner = CliRunner()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    files = write_paper_repo(root / REPOSITORY / COMMIT)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root / REPOSITORY / COMMIT, files
    finally:
        httpd.shutdown()
        httpd.server_close()


def _fetch(*args):
    return runner.invoke(app, ["protocol", "fetch", *args])


def test_fetch_verify_bundle_and_install_offline(server, tmp_path):
    base_url, _, files = server
    pins = fixture_pins(files)
    pins_file = write_pins(tmp_path / "pins.yaml", pins)
    cached, bundle = tmp_path / "cache", tmp_path / "paper.tar.gz"
    result = _fetch("--pins", str(pins_file), "--base-url", base_url, "--sources", str(cached), "--bundle", str(bundle))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(str(cached))
    assert sources.problems(cached, pins) == []
    assert load_paper_texts(cached, pins).mono_ids == (31, 7, 1204, 58)

    air_gapped = tmp_path / "cluster"
    result = _fetch("--pins", str(pins_file), "--from-bundle", str(bundle), "--sources", str(air_gapped))
    assert result.exit_code == 0, result.output
    assert {n: (air_gapped / n).read_bytes() for n in files} == files

    result = _fetch("--pins", str(pins_file), "--base-url", base_url, "--print-hashes")
    assert result.exit_code == 0, result.output
    assert f"  llm_judge.py: {pins.sha256['llm_judge.py']}\n" in result.stdout


def test_a_file_that_differs_from_its_pin_is_refused(server, tmp_path):
    base_url, served, files = server
    pins_file = write_pins(tmp_path / "pins.yaml", fixture_pins(files))
    (served / "translate_with_gpt.py").write_text("changed upstream", encoding="utf-8")
    result = _fetch("--pins", str(pins_file), "--base-url", base_url, "--sources", str(tmp_path / "cache"))
    assert result.exit_code == 2
    assert "translate_with_gpt.py: pinned" in result.output
    assert not (tmp_path / "cache").exists()


def test_a_missing_file_names_its_url(server, tmp_path):
    base_url, served, files = server
    pins_file = write_pins(tmp_path / "pins.yaml", fixture_pins(files))
    (served / "data/guanaco/ml1_ids").unlink()
    result = _fetch("--pins", str(pins_file), "--base-url", base_url, "--sources", str(tmp_path / "cache"))
    assert result.exit_code == 1
    assert f"{COMMIT}/data/guanaco/ml1_ids: HTTP 404" in result.output
