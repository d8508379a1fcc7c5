#!/usr/bin/env bash
# Cold start of every function beside a hello-world lambda_http binary, all built with the
# release profile that ships (LTO, one codegen unit, stripped). Prints a Markdown table.
# usage: local/bench/cold_start.sh [--runs N]   (N runs per binary, default 15)
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "building the release binaries (LTO: several minutes on 2 cores)"
# The default members (Cargo.toml), as `sam build` builds them: no local tooling's features.
cargo build --release --bins --locked --quiet
cargo bench --locked --quiet -p bench --bench cold_start -- "$@"
