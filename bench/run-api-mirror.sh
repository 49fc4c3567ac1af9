#!/usr/bin/env bash
# Runs the LXD-API and mirror benchmarks (issues 3 and 4) through bench/run.sh. As root it first
# installs what they drive beyond run.sh's list (lxd, lxd-client, time, openssl) when missing.
# Usage: bash bench/run-api-mirror.sh [lxd-export|api-list|mirror|resync]...   (default: all four)
# Needs ~8 GiB free in $TMPDIR (or WHARF_BENCH_TMP) and takes about 6 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(lxd-export api-list mirror resync)
packages=(time openssl)
case " ${benches[*]} " in *" lxd-export "*) packages+=(lxd lxd-client) ;; esac
bash scripts/ensure-packages.sh "benchmark dependencies" "${packages[@]}"
exec bash bench/run.sh "${benches[@]}"
