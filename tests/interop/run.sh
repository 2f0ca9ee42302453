#!/usr/bin/env bash
# Runs the boto3 interop suite against the local Bedrock Runtime server.
#
#   tests/interop/run.sh [pytest args...]
#
# Needs only python3 (with venv and pip). The server binary is $BEDROCK_BATCH_BIN, by
# default target/debug/bedrock-batch (build it first); the virtualenv is
# ${INTEROP_VENV:-.venv-interop}, created on first use. Run from anywhere: paths are
# resolved from the repo root.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"

venv="${INTEROP_VENV:-.venv-interop}"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/interop/requirements.txt
exec "$venv/bin/python" -m pytest -q tests/interop "$@"
