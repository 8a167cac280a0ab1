#!/usr/bin/env bash
# Property tests at depth: every `props_*` test of the workspace with CASES cases each
# (default 1,000,000; CI runs 2,000). Random and mutated goal states, scenarios and --set
# overrides, REST bodies and run folders: none may panic, hang or answer a 5xx.
#   scripts/props.sh              # a million cases per property
#   CASES=10000 scripts/props.sh  # quicker
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${CASES:-1000000}"
echo "props: ${cases} cases per property" >&2
start=$(date +%s)
PROPTEST_CASES="$cases" cargo test --release --workspace --no-fail-fast -- props_ --test-threads 2
echo "props: done in $(( $(date +%s) - start )) s" >&2
