#!/usr/bin/env bash
# Scale-out: 8 processes of the release worker drain 2,000 jobs from a SQLite file and from a
# libSQL server (sqld); every job claimed and completed exactly once. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked --quiet -p worker
WORKER_BIN="$PWD/target/release/worker" cargo bench --locked --quiet -p bench --bench scale_out
