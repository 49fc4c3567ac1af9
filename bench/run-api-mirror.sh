#!/usr/bin/env bash
# Runs the LXD-API and mirror benchmarks and prints a summary table. As root it first installs
# what they drive (nginx, wrk, squashfs-tools, xz-utils, lxd, lxd-client) when missing.
# Usage: bash bench/run-api-mirror.sh [lxd-export|api-list|mirror|resync]...   (default: all four)
# Needs ~8 GiB free in $TMPDIR (or WHARF_BENCH_TMP) and takes about 3.5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(nginx wrk curl time squashfs-tools xz-utils openssl ca-certificates)
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(lxd-export api-list mirror resync)
case " ${benches[*]} " in *" lxd-export "*) packages+=(lxd lxd-client) ;; esac
bash scripts/ensure-packages.sh "benchmark dependencies" "${packages[@]}"

node=node_modules/.bin/node
[ -x "$node" ] || { echo "Run 'npm ci' first: it installs the Node 24 runtime" >&2; exit 1; }

log=$(mktemp "${TMPDIR:-/tmp}/wharf-bench-log-XXXXXX")
trap 'rm -f "$log"' EXIT

echo "wharf API/mirror benchmarks on $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null || echo 'no git')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src has uncommitted changes)')"
started=$SECONDS
status=0
for bench in "${benches[@]}"; do
  case "$bench" in lxd-export|api-list|mirror|resync) ;; *) echo "no such benchmark: $bench" >&2; exit 2 ;; esac
  echo
  echo "### bench/$bench.ts"
  # Each benchmark is bounded; none should take more than a few minutes.
  if ! timeout --kill-after=30s 600s "$node" --disable-warning=ExperimentalWarning "bench/$bench.ts" | tee -a "$log"; then
    echo "bench/$bench.ts FAILED" >&2
    status=1
  fi
done

echo
echo "## Summary ($((SECONDS - started)) s)"
echo
printf '| benchmark | measurement | wharf | reference | ratio | target | verdict |\n| --- | --- | --- | --- | --- | --- | --- |\n'
grep '^RESULT' "$log" | while IFS=$'\t' read -r _ bench name wharf ref ratio target verdict; do
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$bench" "$name" "$wharf" "$ref" "$ratio" "$target" "$verdict"
done
exit $status
