#!/usr/bin/env bash
# Compiles src/ to JavaScript in dist/, which bin/wharf runs: Node starts plain JavaScript several
# times faster than TypeScript, whose types it would strip at every start. `npm ci` runs this
# through the `prepare` script; run it again (`npm run build`) after changing src/. Until then
# bin/wharf runs the sources, so an outdated dist/ never runs.
set -euo pipefail
cd "$(dirname "$0")/.."

node=node_modules/.bin/node
tsc=node_modules/typescript/bin/tsc
if [ ! -x "$node" ] || [ ! -f "$tsc" ]; then
  echo "build: the Node 24 runtime or TypeScript is not installed (npm ci); wharf will run from its sources" >&2
  exit 0
fi

# One build at a time (several people may share a checkout): the lock is on this script itself.
exec 9<"$0"
flock 9

# Compile into a new directory and swap it in whole, so that bin/wharf never sees a half-written
# build. The stamp is written before compiling: a source saved during the build is newer than it,
# which makes bin/wharf fall back to the sources until the next build.
out=$(mktemp -d "$PWD/.dist-XXXXXX")
old=$out.old
trap 'rm -rf "$out" "$old"' EXIT
chmod 755 "$out"
touch "$out/.build-stamp"
"$node" "$tsc" -p tsconfig.build.json --outDir "$out"
if [ -d dist ]; then mv -T dist "$old"; fi
mv -T "$out" dist
