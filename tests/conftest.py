"""Suite-wide setup: nothing leaves the machine, shared data is found, fixtures are plugged in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No phone-home from anything a test starts (see ../shared/dependencies.md).
for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)

pytest_plugins = [
    "tests.fixtures.seaweedfs",
    "tests.fixtures.models",
    "tests.fixtures.lid",
    "tests.fixtures.generator",
    "tests.fixtures.judge",
    "tests.fixtures.trainer",
]

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = Path(os.environ.get("POLYGLOT_SHARED_DIR", REPO_ROOT.parent / "shared"))
    if not (path / "README.md").exists():
        pytest.fail(f"../shared not found at {path}; set POLYGLOT_SHARED_DIR")
    return path
