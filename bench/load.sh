#!/usr/bin/env bash
# Load benchmark of `POST /v1/requests` (see bench/README.md).
#
# For each back end (SQLite in a temp dir, PostgreSQL in a fresh database it creates and
# drops) it starts the release binary on 127.0.0.1, creates a submitter key, warms up, then
# measures with oha: a fixed rate (RATE req/s for RATE_SECONDS) and the maximum throughput
# (closed loop, MAX_CONNECTIONS connections for MAX_SECONDS). It checks that the rows in
# `requests` match the 201 answers, verifies the audit chain, times `priorauth evaluate
# --batch` on the same cases, and writes the summary to stdout and bench/results-<date>.md.
#
# Every target is loopback; every run is bounded in time; the server and the database it
# started are stopped and dropped on exit, failure or interrupt.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
LIB="$BENCH/loadlib.py"

BACKENDS=${BACKENDS:-"sqlite postgres"}
RATE=${RATE:-1000}                   # requests/s of the fixed-rate run (the aim's rate)
EXTRA_RATES=${EXTRA_RATES:-}         # more fixed rates to run first, e.g. "400 700": where the knee is
RATE_SECONDS=${RATE_SECONDS:-20}
RATE_CONNECTIONS=${RATE_CONNECTIONS:-64}   # the most requests in flight at the fixed rate
MAX_SECONDS=${MAX_SECONDS:-15}
MAX_CONNECTIONS=${MAX_CONNECTIONS:-32}     # one closed-loop run per number, e.g. "4 32"
WARMUP_SECONDS=${WARMUP_SECONDS:-3}
GENERATED=${GENERATED:-60}           # generated cases added to the example cases
SEED=${SEED:-7}
BATCH_LINES=${BATCH_LINES:-50000}
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-postgres}
OHA_VERSION=${OHA_VERSION:-1.16.0}
SKIP_BUILD=${SKIP_BUILD:-0}          # 1: use the existing target/release/priorauth
PRIORAUTH_BIN=${PRIORAUTH_BIN:-}     # another binary to measure (implies no build), e.g. to compare a change
KEEP=${KEEP:-0}                      # 1: keep the temp dir (logs, raw oha JSON)
QUIET_WAIT=${QUIET_WAIT:-60}         # before each run, wait up to this many seconds for an idle machine
TARGET_P99_MS=20

# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"

check_common_knobs
for n in $EXTRA_RATES; do [[ $n =~ ^[0-9]+$ ]] || die "EXTRA_RATES: whole numbers"; done
for n in $MAX_CONNECTIONS; do [[ $n =~ ^[0-9]+$ ]] || die "MAX_CONNECTIONS: whole numbers"; done
for n in RATE RATE_SECONDS RATE_CONNECTIONS MAX_SECONDS WARMUP_SECONDS GENERATED BATCH_LINES; do
  [[ ${!n} =~ ^[0-9]+$ ]] || die "$n must be a whole number"
done
(( RATE_SECONDS <= 120 && MAX_SECONDS <= 120 && WARMUP_SECONDS <= 30 )) || die "runs are bounded: at most 120 s each"

install_tools
WORK=$(mktemp -d /tmp/priorauth-load.XXXXXX)
install_traps
prepare_binary

PHASES="$WORK/phases.jsonl"
CHECKS="$WORK/checks.jsonl"
: >"$PHASES"
: >"$CHECKS"
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== bodies" >&2
python3 "$LIB" bodies --binary "$BIN" --cases-dir "$ROOT/tests/cases" --generated "$GENERATED" --seed "$SEED" \
  --out "$WORK/candidates.jsonl" >/dev/null

run_backend() {
  open_backend "$1"
  echo "== $BACKEND" >&2
  start_server
  URL="$BASE_URL/v1/requests"
  BODIES="$WORK/bodies-$BACKEND.jsonl"

  # Each candidate once (drops any the service would refuse), then a short closed-loop run.
  local mix
  mix=$(python3 "$LIB" accept --url "$URL" --key "$KEY" --candidates "$WORK/candidates.jsonl" \
    --bodies "$BODIES" --cases "$WORK/cases.jsonl")
  [[ -s $WORK/mix.json ]] || echo "$mix" >"$WORK/mix.json"
  echo "   mix: $mix" >&2
  local accepted
  accepted=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["created"])' "$mix")
  (( accepted > 0 )) || die "no body was answered 201"

  OUT_FILE="$WORK/warmup.jsonl"
  measure "warm-up" 0 "$WARMUP_SECONDS" -c 8 >&2
  OUT_FILE="$PHASES"
  for rate in $EXTRA_RATES $RATE; do
    measure "fixed $rate/s" "$rate" "$RATE_SECONDS" -q "$rate" --latency-correction -c "$RATE_CONNECTIONS" >&2
  done
  for connections in $MAX_CONNECTIONS; do
    measure "max, $connections conn" 0 "$MAX_SECONDS" -c "$connections" >&2
  done

  stop_server
  # After the server has stopped: every 201 answered is a row on disk.
  local rows answered audit
  rows=$(sh -c "$COUNT_CMD" | tail -n 1)
  answered=$(python3 - "$accepted" "$WORK/warmup.jsonl" "$PHASES" "$BACKEND" <<'EOF'
import json, sys
total = int(sys.argv[1])
for path in sys.argv[2:4]:
    for line in open(path):
        p = json.loads(line)
        if p["backend"] == sys.argv[4]:
            total += p["ok"]
print(total)
EOF
)
  local audit_code=0
  audit=$(timeout 300 "$BIN" audit verify 2>&1) || audit_code=$?
  python3 -c 'import json, sys; print(json.dumps({"backend": sys.argv[1], "rows": int(sys.argv[2]), "created": int(sys.argv[3]), "audit_ok": sys.argv[4] == "0", "audit": " ".join(sys.argv[5].split())}))' \
    "$BACKEND" "$rows" "$answered" "$audit_code" "$audit" >>"$CHECKS"
  echo "   total: $rows rows in requests for $answered answers 201; audit verify (exit $audit_code): $audit" >&2
  drop_pg
  unset DATABASE_URL
}

for backend in $BACKENDS; do
  run_backend "$backend"
done

echo "== evaluate --batch" >&2
python3 "$LIB" batch-input --cases "$WORK/cases.jsonl" --lines "$BATCH_LINES" --out "$WORK/batch.jsonl"
run python3 "$LIB" time --repeat 3 --lines "$BATCH_LINES" \
  "timeout 300 '$BIN' evaluate --batch '$WORK/batch.jsonl' --policy masshealth-all-single-agent >/dev/null" >"$WORK/batch_one.json"
run python3 "$LIB" time --repeat 3 --lines "$BATCH_LINES" \
  "timeout 300 '$BIN' evaluate --batch '$WORK/batch.jsonl' >/dev/null" >"$WORK/batch_all.json"
python3 "$LIB" fsync "$WORK" >"$WORK/fsync.json"

describe_run load.sh QUIET_WAIT PRIORAUTH_BIN KEEP SKIP_BUILD BATCH_LINES SEED GENERATED WARMUP_SECONDS MAX_CONNECTIONS MAX_SECONDS RATE_CONNECTIONS RATE_SECONDS EXTRA_RATES RATE BACKENDS
cat >"$WORK/meta.json" <<EOF
{"date": "$(date -u '+%Y-%m-%d %H:%M UTC')", "command": "$COMMAND", "commit": "$COMMIT", "dirty": $DIRTY,
 "cpus": $(nproc), "loadavg": "$LOADAVG", "tool": "$(oha --version | head -n 1)",
 "rate": $RATE, "target_p99_ms": $TARGET_P99_MS,
 "mix": $(cat "$WORK/mix.json"), "fsync": $(cat "$WORK/fsync.json"),
 "batch_one_policy": $(cat "$WORK/batch_one.json"), "batch_all_policies": $(cat "$WORK/batch_all.json"),
 "checks": [$(paste -sd, "$CHECKS")]}
EOF

RESULTS="$BENCH/results-$(date +%Y-%m-%d).md"
n=2
while [[ -e $RESULTS ]]; do RESULTS="$BENCH/results-$(date +%Y-%m-%d)-$n.md"; n=$((n + 1)); done
python3 "$LIB" report --meta "$WORK/meta.json" --phases "$PHASES" --out "$RESULTS"
echo "(written to ${RESULTS#"$ROOT"/})"
