#!/usr/bin/env bash
# Runs the boto3 interop suite against the local Bedrock Runtime server.
#
#   tests/interop/run.sh [extra pytest args...]
#
# Needs only python3 with pip. The server binary is $BEDROCK_BATCH_BIN, by default
# target/debug/bedrock-batch (build it first); the virtualenv is
# ${INTEROP_VENV:-.venv-interop}, created on first use. Relative paths are taken from the
# repo root, whatever directory the script is started from.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"

venv="${INTEROP_VENV:-.venv-interop}"
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    if ! python3 -m venv "$venv"; then
        # Debian-style pythons without ensurepip (no python3-venv package): reuse the
        # system pip, which installs into the venv it runs from.
        echo "run.sh: python3 -m venv failed; retrying with the system pip" >&2
        python3 -m venv --clear --without-pip --system-site-packages "$venv"
    fi
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/interop/requirements.txt
exec "$venv/bin/python" -m pytest -q tests/interop "$@"
