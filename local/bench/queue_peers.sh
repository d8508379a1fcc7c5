#!/usr/bin/env bash
# Our queue against litequeue and persist-queue on one workload (local/bench/queue_peers.py).
# usage: local/bench/queue_peers.sh [--jobs N]   (default 20,000)
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! cmp -s local/bench/requirements-peers.txt .venv/requirements-peers.txt; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r local/bench/requirements-peers.txt
    cp local/bench/requirements-peers.txt .venv/requirements-peers.txt
fi
.venv/bin/python local/bench/queue_peers.py "$@"
