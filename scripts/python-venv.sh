#!/usr/bin/env bash
# The Python virtual environment of the interop tests (Confluent's Python client against a
# Cairn node): created once at $CAIRN_PY_VENV (default /var/tmp/cairn-py-venv) with pinned
# packages from PyPI, reused while the pins match. Prints the environment's python.
set -euo pipefail
venv="${CAIRN_PY_VENV:-/var/tmp/cairn-py-venv}"
pins="confluent-kafka[avro,schemaregistry]==2.16.2"
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.cairn-pins" 2>/dev/null)" != "$pins" ]]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$pins" >&2
  echo "$pins" > "$venv/.cairn-pins"
fi
echo "$venv/bin/python"
