#!/usr/bin/env bash
# The whole test suite. As root on a fresh Debian machine it first installs what the tests
# drive: the real LXD and Incus clients and daemons, and the tools that build fixture images.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(postgresql haproxy lxd-client lxd squashfs-tools qemu-utils busybox-static xz-utils zstd bzip2 lz4 xdelta3 skopeo umoci podman buildah docker-registry ca-certificates openssl nginx gnupg libmaxmind-db-writer-perl chromium firefox-esr bash-completion zsh fish)
bash scripts/ensure-packages.sh "test dependencies" "${packages[@]}"
# The real Incus 6.0 LTS client and daemon, from bookworm-backports.
bash scripts/ensure-packages.sh --backports "Incus" incus incus-client

node=node_modules/.bin/node
[ -x "$node" ] || { echo "Run 'npm ci' first: it installs the Node 24 runtime" >&2; exit 1; }

echo "Type check"
"$node" node_modules/typescript/bin/tsc --noEmit -p .

# The tests run ./bin/wharf as users do: from the compiled build, made current here (npm ci
# built it too). Tests that import src/ run the sources, which the build is compiled from; if a
# source changes during the run, bin/wharf runs the sources too (it never runs a stale build).
echo "Build"
bash scripts/build.sh

# Interop tests share one machine-wide LXD setup (CA store), so files run one at a time. A test
# that hangs fails after 10 minutes with its name (the longest take about one), instead of
# holding the whole run until CI gives up on it.
exec "$node" --disable-warning=ExperimentalWarning --test --test-concurrency=1 --test-timeout=600000 --test-reporter=spec \
  'test/unit/**/*.test.ts' 'test/conformance/**/*.test.ts' 'test/integration/**/*.test.ts' 'test/browser/**/*.test.ts' 'test/interop/**/*.test.ts'
