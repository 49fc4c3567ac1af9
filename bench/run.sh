#!/usr/bin/env bash
# Runs every benchmark in bench/ and prints a summary table. As root it first installs what the
# benchmarks drive (nginx, wrk, curl, squashfs-tools, xz-utils, zstd, Incus) when missing.
# Usage: bash bench/run.sh [import|download|images-json|publish-latency|rss|cli-startup|handshakes|import-kinds|edge|catalogue|counting|replicas-change|s3-import|s3-download|replicas-capacity|images-json-floor|channels|deltas|push|registry|registry-cache]...   (default: all)
# Needs ~3 GiB free in $TMPDIR (or WHARF_BENCH_TMP) and takes about 4 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(postgresql haproxy nginx wrk curl squashfs-tools xz-utils zstd xdelta3 ca-certificates openssl libmaxmind-db-writer-perl chromium)
bash scripts/ensure-packages.sh "benchmark dependencies" "${packages[@]}"
# The Incus daemon is the reference of benchmark 8 (import per rootfs form).
bash scripts/ensure-packages.sh --backports "the Incus daemon" incus incus-client

node=node_modules/.bin/node
[ -x "$node" ] || { echo "Run 'npm ci' first: it installs the Node 24 runtime" >&2; exit 1; }

# Every benchmark runs wharf as users do: from the compiled build, made current here.
bash scripts/build.sh >/dev/null

benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(import download images-json publish-latency rss cli-startup handshakes import-kinds edge catalogue counting replicas-change s3-import s3-download replicas-capacity images-json-floor channels deltas push registry registry-cache)

# The 1 GiB image is built once and shared by the benchmarks that need it.
fixtures=$(mktemp -d "${WHARF_BENCH_TMP:-${TMPDIR:-/tmp}}/wharf-bench-fixtures-XXXXXX")
log=$(mktemp "${TMPDIR:-/tmp}/wharf-bench-log-XXXXXX")
trap 'rm -rf "$fixtures" "$log"' EXIT
export WHARF_BENCH_FIXTURES=$fixtures

echo "wharf benchmarks on $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null || echo 'no git')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src has uncommitted changes)')"
started=$SECONDS
case " ${benches[*]} " in
  *" import "*|*" download "*|*" rss "*|*" s3-import "*|*" s3-download "*) "$node" --disable-warning=ExperimentalWarning bench/fixture.ts "$fixtures" ;;
esac

status=0
for bench in "${benches[@]}"; do
  [ -f "bench/$bench.ts" ] || { echo "no such benchmark: $bench" >&2; exit 2; }
  echo
  echo "### bench/$bench.ts"
  # Each benchmark is bounded: none should take more than a few minutes.
  if ! timeout --kill-after=10s 600s "$node" --disable-warning=ExperimentalWarning "bench/$bench.ts" | tee -a "$log"; then
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
