"""The OpenLID digest is pinned once (flows/config/lid.py) and the paper profile and the gpu overlay agree."""

from __future__ import annotations

from pathlib import Path

import yaml

from flows.config import parse_config
from flows.config.lid import OPENLID_SHA256, OPENLID_URL, download_command

ROOT = Path(__file__).resolve().parents[3]
MINIMAL = "name: pin\nbase_models: [{name: m, model: o/m}]\nevaluation: {tasks: {xnli: }}\nprotocol: {profile: paper}\n"


def test_paper_profile_pins_the_digest_of_the_file_the_download_command_fetches() -> None:
    lid = parse_config(MINIMAL).lid
    assert lid.model == "openlid" and lid.sha256 == OPENLID_SHA256
    assert OPENLID_URL in download_command(Path("/x/lid201-model.bin"))


def test_gpu_overlay_fetches_and_pins_the_same_file() -> None:
    patch = yaml.safe_load((ROOT / "deploy/k8s/overlays/gpu/openlid.yaml").read_text(encoding="utf-8"))
    (init,) = patch["spec"]["template"]["spec"]["initContainers"]
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env == {"OPENLID_URL": OPENLID_URL, "OPENLID_SHA256": OPENLID_SHA256}


def test_a_file_with_another_digest_fails_preflight_naming_both(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("POLYGLOT_OPENLID_MODEL", str(tmp_path / "lid201-model.bin"))
    (tmp_path / "lid201-model.bin").write_bytes(b"not openlid")
    message = parse_config(MINIMAL).lid.missing_model() or ""
    assert OPENLID_SHA256 in message and str(tmp_path / "lid201-model.bin") in message
