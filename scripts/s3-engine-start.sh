#!/usr/bin/env bash
# The S3-compatible engine the tests of the S3 blob driver run against (the team's tested recipe,
# shared/s3-engine/README.md, kept here so a clean clone has it): scripts/test.sh starts it.
#
# start-s3.sh — install and start a REAL S3-compatible object store for CI:
# a single-node OpenStack Swift ("Swift All In One") from Debian packages,
# with the s3api middleware and tempauth, storage on plain directories.
#
#   sudo ./start-s3.sh            # (root needed only for apt-get install)
#   S3_PORT=9000 ./start-s3.sh    # other port
#   ./stop-s3.sh                  # stop exactly the PIDs recorded by this script
#
# Endpoint    : http://127.0.0.1:$S3_PORT   (path-style only; no virtual-host buckets)
# Region      : us-east-1
# Access key  : test:tester        (tempauth "account:user")
# Secret key  : testing
#
# Everything lives under $S3_BASE (default /tmp/s3probe): etc/ (configs, rings),
# data/ (object/container/account storage), log/ (one log per process), pids.
# Only 127.0.0.1 is bound. Tested on Debian 12 (bookworm), swift 2.30.1.
set -euo pipefail

S3_BASE=${S3_BASE:-/tmp/s3probe}
S3_HOST=127.0.0.1
S3_PORT=${S3_PORT:-8080}                      # proxy (S3 + Swift API)
SWIFT_OBJECT_PORT=${SWIFT_OBJECT_PORT:-6200}
SWIFT_CONTAINER_PORT=${SWIFT_CONTAINER_PORT:-6201}
SWIFT_ACCOUNT_PORT=${SWIFT_ACCOUNT_PORT:-6202}
MEMCACHED_PORT=${MEMCACHED_PORT:-11211}
S3_ACCESS_KEY_ACCOUNT=test
S3_ACCESS_KEY_USER=tester
S3_SECRET_KEY=testing
S3_KEEP_DATA=${S3_KEEP_DATA:-0}               # 1 = keep objects from a previous run
S3_START_TIMEOUT=${S3_START_TIMEOUT:-60}      # seconds to wait for the S3 endpoint
SWIFT_LOG_LEVEL=${SWIFT_LOG_LEVEL:-INFO}      # DEBUG shows s3api signature details
export S3_CONDITIONAL_PUT=${S3_CONDITIONAL_PUT:-0}  # 1 = patch s3api to honour PUT If-None-Match: * (README)
PY=/usr/bin/python3                           # Debian's python (has python3-swift), not pyenv/venv

ETC=$S3_BASE/etc
DATA=$S3_BASE/data
LOG=$S3_BASE/log
BIN=$S3_BASE/bin
PIDS=$S3_BASE/pids
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
t0=${EPOCHREALTIME/./}
say() { local ms=$(( (${EPOCHREALTIME/./} - t0) / 1000 )); printf '[start-s3 %3d.%01ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"; }

# ---------------------------------------------------------------- 0. previous run
if [[ -s $PIDS ]]; then
  say "found $PIDS from a previous run; stopping it first"
  if [[ -x $HERE/s3-engine-stop.sh ]]; then S3_BASE=$S3_BASE "$HERE/s3-engine-stop.sh"; else
    while read -r _ pid; do kill "$pid" 2>/dev/null || true; done < "$PIDS"; sleep 1; rm -f "$PIDS"; fi
fi

# ---------------------------------------------------------------- 1. packages
PKGS=(swift swift-proxy swift-object swift-container swift-account memcached)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=; [[ $EUID -ne 0 ]] && SUDO=sudo
  say "installing: ${missing[*]}"
  # Keep the packages' own init/systemd units from starting swift-* and memcached
  # on their default ports during install (they would clash with ours). If a
  # policy-rc.d already exists (Docker images ship one that says 101) keep it.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT          # removed again even if apt fails
  fi
  mkdir -p "$LOG"
  if ! { $SUDO apt-get update -qq || true
         $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
       } > "$LOG/apt.log" 2>&1; then
    tail -30 "$LOG/apt.log" >&2; echo "start-s3: apt-get install failed (full log: $LOG/apt.log)" >&2; exit 1
  fi
  if [[ $(trap -p EXIT) ]]; then $SUDO rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
fi
say "swift $(dpkg-query -W -f='${Version}' python3-swift), memcached $(dpkg-query -W -f='${Version}' memcached)"

# ---------------------------------------------------------------- 2. ports free?
for port in "$S3_PORT" "$SWIFT_OBJECT_PORT" "$SWIFT_CONTAINER_PORT" "$SWIFT_ACCOUNT_PORT" "$MEMCACHED_PORT"; do
  if ! $PY -c "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('$S3_HOST', $port))" 2>/dev/null; then
    echo "start-s3: port $S3_HOST:$port is already in use (set S3_PORT / SWIFT_*_PORT / MEMCACHED_PORT)" >&2; exit 1
  fi
done

# ---------------------------------------------------------------- 3. dirs + configs
mkdir -p "$ETC" "$LOG" "$BIN"
if [[ $S3_KEEP_DATA != 1 ]]; then rm -rf "$DATA"; fi
mkdir -p "$DATA/d1"                               # the one "device"; mount_check = false

cat > "$ETC/swift.conf" <<EOF
[swift-hash]
swift_hash_path_prefix = s3probe-prefix
swift_hash_path_suffix = s3probe-suffix

[storage-policy:0]
name = Policy-0
default = yes

[swift-constraints]
EOF

common_default() {  # $1 = bind port
  cat <<EOF
[DEFAULT]
bind_ip = $S3_HOST
bind_port = $1
workers = 0
user = $(id -un)
swift_dir = $ETC
devices = $DATA
mount_check = false
disable_fallocate = true
log_level = $SWIFT_LOG_LEVEL
EOF
}

{ common_default "$SWIFT_ACCOUNT_PORT"; cat <<EOF

[pipeline:main]
pipeline = healthcheck account-server

[app:account-server]
use = egg:swift#account

[filter:healthcheck]
use = egg:swift#healthcheck
EOF
} > "$ETC/account-server.conf"

{ common_default "$SWIFT_CONTAINER_PORT"; cat <<EOF

[pipeline:main]
pipeline = healthcheck container-server

[app:container-server]
use = egg:swift#container

[filter:healthcheck]
use = egg:swift#healthcheck
EOF
} > "$ETC/container-server.conf"

{ common_default "$SWIFT_OBJECT_PORT"; cat <<EOF

[pipeline:main]
pipeline = healthcheck object-server

[app:object-server]
use = egg:swift#object

[filter:healthcheck]
use = egg:swift#healthcheck
EOF
} > "$ETC/object-server.conf"

{ common_default "$S3_PORT"; cat <<EOF

[pipeline:main]
# s3api must come before tempauth; slo after it (multipart uploads are SLOs).
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
node_timeout = 60
conn_timeout = 5

[filter:s3api]
use = egg:swift#s3api
location = us-east-1
# path-style only (SDK: forcePathStyle: true)
dns_compliant_bucket_names = true
max_upload_part_num = 10000

[filter:tempauth]
use = egg:swift#tempauth
user_${S3_ACCESS_KEY_ACCOUNT}_${S3_ACCESS_KEY_USER} = ${S3_SECRET_KEY} .admin
user_admin_admin = admin .admin .reseller_admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MEMCACHED_PORT

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
max_manifest_segments = 10000
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
allow_object_versioning = true
[filter:symlink]
use = egg:swift#symlink
EOF
} > "$ETC/proxy-server.conf"

# Launcher: run a swift WSGI server in the foreground (workers = 0 -> no fork, so
# the recorded PID is the server), reading swift.conf from $ETC instead of
# /etc/swift, logging to stderr instead of syslog (there is no syslogd here).
cat > "$BIN/swift-run.py" <<'EOF'
import logging, os, sys
conf_path, section, swift_dir = sys.argv[1:4]
from swift.common import utils

class _NoSyslog(logging.Handler):           # drop the syslog handler swift always adds
    def __init__(self, *a, **kw): logging.Handler.__init__(self)
    def emit(self, record): pass
utils.ThreadSafeSysLogHandler = _NoSyslog
utils.set_swift_dir(swift_dir)               # hash prefix/suffix from <swift_dir>/swift.conf
from swift.common import storage_policy
storage_policy.reload_storage_policies()     # storage policies from the same file

if section == 'proxy-server' and os.environ.get('S3_CONDITIONAL_PUT') == '1':
    # Opt-in patch: s3api 2.30 answers 501 NotImplemented to every conditional
    # PUT. Let "If-None-Match: *" through to Swift, whose object server natively
    # answers 412 when the object exists (s3api maps that to PreconditionFailed).
    from swift.common.middleware.s3api.s3request import S3Request
    _orig_validate = S3Request._validate_headers
    def _validate_headers(self):
        inm = self.environ.get('HTTP_IF_NONE_MATCH')
        if self.method == 'PUT' and inm is not None and inm.strip() == '*':
            del self.environ['HTTP_IF_NONE_MATCH']
            try:
                return _orig_validate(self)
            finally:
                self.environ['HTTP_IF_NONE_MATCH'] = inm
        return _orig_validate(self)
    S3Request._validate_headers = _validate_headers

from swift.common.wsgi import run_wsgi
sys.exit(run_wsgi(conf_path, section, verbose=True))   # verbose: log to stderr
EOF

# ---------------------------------------------------------------- 4. rings (1 replica, 1 device)
# Same as, per ring:  swift-ring-builder X.builder create 8 1 1
#                     swift-ring-builder X.builder add r1z1-127.0.0.1:PORT/d1 1
#                     swift-ring-builder X.builder rebalance
# but in one python process (the 9 CLI calls take ~9 s on 2 cores; this takes ~1 s).
rm -rf "$ETC"/*.builder "$ETC"/*.ring.gz "$ETC/backups"
"$PY" - "$ETC" "$S3_HOST" "$SWIFT_OBJECT_PORT" "$SWIFT_CONTAINER_PORT" "$SWIFT_ACCOUNT_PORT" <<'EOF_PY'
import sys
from swift.common.ring import RingBuilder
etc, host = sys.argv[1], sys.argv[2]
for kind, port in zip(('object', 'container', 'account'), map(int, sys.argv[3:6])):
    b = RingBuilder(8, 1, 1)          # 2^8 partitions, 1 replica, min_part_hours 1
    b.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': host, 'port': port, 'device': 'd1',
               'weight': 1, 'replication_ip': host, 'replication_port': port, 'meta': ''})
    b.rebalance()
    b.save(f'{etc}/{kind}.builder')
    b.get_ring().save(f'{etc}/{kind}.ring.gz')
EOF_PY
say "configs and rings written to $ETC"

# ---------------------------------------------------------------- 5. start processes
: > "$PIDS"
start() {  # name, command...
  local name=$1; shift
  setsid "$@" > "$LOG/$name.log" 2>&1 < /dev/null &
  echo "$name $!" >> "$PIDS"
}
memcached_user=(); [[ $EUID -eq 0 ]] && memcached_user=(-u root)
start memcached memcached -l "$S3_HOST" -p "$MEMCACHED_PORT" -U 0 -m 64 "${memcached_user[@]}"
for srv in account container object proxy; do
  start "$srv-server" "$PY" "$BIN/swift-run.py" "$ETC/$srv-server.conf" "$srv-server" "$ETC"
done
say "started: $(tr '\n' ' ' < "$PIDS")"

# ---------------------------------------------------------------- 6. wait for the S3 endpoint
# A SigV2-signed "ListBuckets" must return 200: this exercises proxy -> s3api ->
# tempauth -> account server, i.e. the real path an SDK call takes.
cat > "$BIN/s3-ping.py" <<'EOF'
import base64, hmac, hashlib, sys, urllib.request, email.utils
url, access, secret = sys.argv[1:4]
date = email.utils.formatdate(usegmt=True)
sig = base64.b64encode(hmac.new(secret.encode(), f"GET\n\n\n{date}\n/".encode(), hashlib.sha1).digest()).decode()
req = urllib.request.Request(url + "/", headers={"Date": date, "Authorization": f"AWS {access}:{sig}"})
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        sys.exit(0 if r.status == 200 and b"ListAllMyBucketsResult" in r.read() else 1)
except Exception as e:
    print(e, file=sys.stderr); sys.exit(1)
EOF
stop_all() {  # on failure: stop what we started (logs stay in $LOG)
  if [[ -x $HERE/s3-engine-stop.sh ]]; then S3_BASE=$S3_BASE "$HERE/s3-engine-stop.sh" >&2; else
    while read -r _ pid; do kill "$pid" 2>/dev/null || true; done < "$PIDS"; rm -f "$PIDS"; fi
}
deadline=$(( $(date +%s) + S3_START_TIMEOUT ))
until "$PY" "$BIN/s3-ping.py" "http://$S3_HOST:$S3_PORT" "$S3_ACCESS_KEY_ACCOUNT:$S3_ACCESS_KEY_USER" "$S3_SECRET_KEY" 2>/dev/null; do
  while read -r name pid; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "start-s3: $name (pid $pid) died; last lines of $LOG/$name.log:" >&2
      tail -20 "$LOG/$name.log" >&2; stop_all; exit 1
    fi
  done < "$PIDS"
  if (( $(date +%s) > deadline )); then
    echo "start-s3: S3 endpoint not answering after ${S3_START_TIMEOUT}s; logs in $LOG" >&2; stop_all; exit 1
  fi
  sleep 0.3
done
say "S3 endpoint ready: http://$S3_HOST:$S3_PORT  access key '$S3_ACCESS_KEY_ACCOUNT:$S3_ACCESS_KEY_USER'  secret '$S3_SECRET_KEY'  region us-east-1"
cat > "$S3_BASE/env" <<EOF
S3_ENDPOINT=http://$S3_HOST:$S3_PORT
S3_REGION=us-east-1
S3_ACCESS_KEY_ID=$S3_ACCESS_KEY_ACCOUNT:$S3_ACCESS_KEY_USER
S3_SECRET_ACCESS_KEY=$S3_SECRET_KEY
S3_FORCE_PATH_STYLE=true
EOF
