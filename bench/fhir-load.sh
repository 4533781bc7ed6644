#!/usr/bin/env bash
# Load benchmark of the Da Vinci endpoints: CRD `POST /cds-services/order-sign-crd` (with
# prefetch, and without it: read from a local FHIR server, `crd-fetch`) and PAS
# `POST /fhir/Claim/$submit` (new submissions and replays), against `POST /v1/requests`
# measured on the same server in the same run (see bench/README.md).
#
# For each back end (SQLite in a temp dir, PostgreSQL in a fresh database it creates and
# drops) it starts the release binary on 127.0.0.1, creates a submitter key, posts every
# body once, warms up, then measures each endpoint with oha at fixed rates (RATES, each for
# RATE_SECONDS) and in a closed loop (MAX_CONNECTIONS connections for MAX_SECONDS). Before
# and after each run another process counts the rows and audit entries a submission writes,
# so that new submissions and replays are told apart from the database, not assumed. After
# the server stops it checks the totals and `priorauth audit verify`, and writes the summary
# to stdout and bench/results-<date>-fhir.md.
#
# Every target is loopback; every run is bounded in time; the server and the database it
# started are stopped and dropped on exit, failure or interrupt.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
LIB="$BENCH/loadlib.py"

BACKENDS=${BACKENDS:-"sqlite postgres"}
ENDPOINTS=${ENDPOINTS:-"v1 crd crd-fetch pas pas-replay"}   # v1 is the baseline the others are compared with
RATES=${RATES:-"50 200 500"}          # fixed rates, requests/s
RATE_SECONDS=${RATE_SECONDS:-10}
RATE_CONNECTIONS=${RATE_CONNECTIONS:-64}   # the most requests in flight at a fixed rate
MAX_SECONDS=${MAX_SECONDS:-10}
MAX_CONNECTIONS=${MAX_CONNECTIONS:-16}     # one closed-loop run per number, e.g. "4 16"
WARMUP_SECONDS=${WARMUP_SECONDS:-3}
GENERATED=${GENERATED:-60}           # generated cases added to the example cases (/v1 bodies)
SEED=${SEED:-7}
# oha picks a line of its body file at random for each request, so a PAS run gets a file of
# fresh Bundle identifiers this many times the requests it sends (at most PAS_LINES_MAX
# lines, about 7 KB each); the few lines picked twice are replays, counted as such.
PAS_LINES_FACTOR=${PAS_LINES_FACTOR:-20}
PAS_LINES_MAX=${PAS_LINES_MAX:-100000}
LOAD_MAX=${LOAD_MAX:-1.5}            # wait for the 1-minute load average to fall below this...
LOAD_WAIT=${LOAD_WAIT:-900}          # ...for at most this many seconds (polled every 60 s)
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-postgres}
OHA_VERSION=${OHA_VERSION:-1.16.0}
SKIP_BUILD=${SKIP_BUILD:-0}          # 1: use the existing target/release/priorauth
PRIORAUTH_BIN=${PRIORAUTH_BIN:-}     # another binary to measure (implies no build)
KEEP=${KEEP:-0}                      # 1: keep the temp dir (logs, raw oha JSON)
QUIET_WAIT=${QUIET_WAIT:-30}         # before each run, wait up to this many seconds for an idle machine
TARGET_P99_MS=50                     # the aim for CRD and PAS

# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"

check_common_knobs
for n in $RATES $MAX_CONNECTIONS; do [[ $n =~ ^[0-9]+$ ]] || die "RATES, MAX_CONNECTIONS: whole numbers"; done
for e in $ENDPOINTS; do [[ $e =~ ^(v1|crd|crd-fetch|pas|pas-replay)$ ]] || die "ENDPOINTS: v1, crd, crd-fetch, pas, pas-replay"; done
for n in RATE_SECONDS RATE_CONNECTIONS MAX_SECONDS WARMUP_SECONDS GENERATED PAS_LINES_FACTOR PAS_LINES_MAX LOAD_WAIT; do
  [[ ${!n} =~ ^[0-9]+$ ]] || die "$n must be a whole number"
done
[[ $LOAD_MAX =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "LOAD_MAX must be a number"
(( RATE_SECONDS <= 120 && MAX_SECONDS <= 120 && WARMUP_SECONDS <= 30 && LOAD_WAIT <= 3600 )) || die "runs are bounded: at most 120 s each"

install_tools
WORK=$(mktemp -d /tmp/priorauth-fhir-load.XXXXXX)
install_traps
prepare_binary
# The PAS body files are large and short-lived: in memory when /dev/shm is there, so that
# writing them does not leave dirty pages to be flushed during the next measurement.
LINES_DIR="$WORK"
if [[ -d /dev/shm && -w /dev/shm ]]; then
  LINES_DIR=$(mktemp -d /dev/shm/priorauth-fhir-load.XXXXXX)
  SCRATCH_DIR=$LINES_DIR
fi

PHASES="$WORK/phases.jsonl"
WARMUPS="$WORK/warmup.jsonl"
CHECKS="$WORK/checks.jsonl"
: >"$PHASES"
: >"$WARMUPS"
: >"$CHECKS"

echo "== bodies" >&2
python3 "$LIB" bodies --binary "$BIN" --cases-dir "$ROOT/tests/cases" --generated "$GENERATED" --seed "$SEED" \
  --out "$WORK/v1-candidates.jsonl" >/dev/null
# The EHR's FHIR server that the hooks without prefetch (crd-fetch) are read from.
CHART_PORT=$(python3 "$LIB" freeport)
CHART_TOKEN="chart-$$-$RANDOM"
python3 "$LIB" fhir-bodies --pas-cases "$ROOT/tests/fhir/cases" --crd-out "$WORK/crd-candidates.jsonl" \
  --crd-fetch-out "$WORK/crd-fetch-candidates.jsonl" --chart-base "http://127.0.0.1:$CHART_PORT/fhir" \
  --chart-token "$CHART_TOKEN" --pas-out "$WORK/pas-candidates.jsonl" >/dev/null
if [[ $SKIP_BUILD != 1 || ! -x $ROOT/bench/chart-server/target/release/chart-server ]]; then
  echo "== cargo build --release (bench/chart-server)" >&2
  cargo build --release --quiet --manifest-path "$ROOT/bench/chart-server/Cargo.toml"
fi
"$ROOT/bench/chart-server/target/release/chart-server" "$WORK/crd-candidates.jsonl" "$CHART_PORT" "$CHART_TOKEN" \
  >"$WORK/chart-server.log" 2>&1 &
HELPER_PID=$!
for _ in $(seq 1 50); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$CHART_PORT/fhir/Patient/x") == 401 ]] && break
  kill -0 "$HELPER_PID" 2>/dev/null || die "the chart server exited at start"
  sleep 0.1
done

# The machine is shared: wait for the others' builds and tests to calm down, and say how
# busy it was.
LOAD_FIRST=$(cut -d' ' -f1-3 /proc/loadavg)
BUSIEST=$(ps -eo pcpu=,comm= --sort=-pcpu | head -n 5 | awk '{printf "%s%s %s%%", (NR>1?", ":""), $2, $1}')
waited=0
while :; do
  load=$(cut -d' ' -f1 /proc/loadavg)
  if awk -v a="$load" -v b="$LOAD_MAX" 'BEGIN { exit !(a < b) }'; then break; fi
  if (( waited >= LOAD_WAIT )); then
    echo "   load average still $load after ${waited} s: measuring anyway" >&2
    break
  fi
  echo "   load average (1 min) $load, not under $LOAD_MAX: waiting 60 s" >&2
  run sleep 60
  waited=$((waited + 60))
done
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== load average $LOAD_START after waiting ${waited} s (it was $LOAD_FIRST)" >&2

# Sets URL, BODIES, OK_STATUS, ENDPOINT and ENDPOINT_TAG for endpoint $1.
use_endpoint() {
  ENDPOINT_TAG=$1
  case "$1" in
    v1) URL="$BASE_URL/v1/requests"; BODIES="$WORK/v1-$BACKEND.jsonl"; OK_STATUS=201; ENDPOINT="/v1/requests" ;;
    crd) URL="$BASE_URL/cds-services/order-sign-crd"; BODIES="$WORK/crd-$BACKEND.jsonl"; OK_STATUS=200; ENDPOINT="CRD order-sign" ;;
    crd-fetch) URL="$BASE_URL/cds-services/order-sign-crd"; BODIES="$WORK/crd-fetch-$BACKEND.jsonl"; OK_STATUS=200; ENDPOINT="CRD order-sign, chart read" ;;
    pas) URL="$BASE_URL/fhir/Claim/\$submit"; BODIES="$LINES_DIR/pas-lines.jsonl"; OK_STATUS=200; ENDPOINT="PAS \$submit, new" ;;
    pas-replay) URL="$BASE_URL/fhir/Claim/\$submit"; BODIES="$WORK/pas-replays-$BACKEND.jsonl"; OK_STATUS=200; ENDPOINT="PAS \$submit, replay" ;;
  esac
}

# Fresh PAS identifiers for about $1 requests.
pas_lines() {
  local lines=$(($1 * PAS_LINES_FACTOR))
  (( lines < 2000 )) && lines=2000
  (( lines > PAS_LINES_MAX )) && lines=$PAS_LINES_MAX
  python3 "$LIB" fhir-lines --templates "$WORK/pas-templates-$BACKEND.jsonl" --count "$lines" \
    --out "$LINES_DIR/pas-lines.jsonl" >/dev/null
}

# One run of endpoint $1: mode, target rate, seconds, expected requests, then oha options.
measure_endpoint() {
  local endpoint=$1 mode=$2 target=$3 seconds=$4 expected=$5; shift 5
  use_endpoint "$endpoint"
  [[ $endpoint == pas ]] && pas_lines "$expected"
  measure "$mode" "$target" "$seconds" "$@" >&2
  rm -f "$LINES_DIR/pas-lines.jsonl"
}

run_backend() {
  open_backend "$1"
  echo "== $BACKEND (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  start_server
  COUNT_CMD=""
  if [[ $BACKEND == sqlite ]]; then
    COUNTS_CMD="python3 '$LIB' counts --sqlite '$DB_FILE'"
  else
    COUNTS_CMD="python3 '$LIB' counts --psql 'psql -h $PG_HOST -p $PG_PORT -U $PG_USER -d $PG_DB'"
  fi

  # Each body once: drops any the service refuses; the PAS Bundles posted here are the
  # replay set.
  local v1_mix fhir_mix
  v1_mix=$(python3 "$LIB" accept --url "$BASE_URL/v1/requests" --key "$KEY" --candidates "$WORK/v1-candidates.jsonl" \
    --bodies "$WORK/v1-$BACKEND.jsonl" --cases "$WORK/cases.jsonl")
  fhir_mix=$(python3 "$LIB" fhir-accept --base "$BASE_URL" --key "$KEY" \
    --crd-candidates "$WORK/crd-candidates.jsonl" --crd-bodies "$WORK/crd-$BACKEND.jsonl" \
    --crd-fetch-candidates "$WORK/crd-fetch-candidates.jsonl" --crd-fetch-bodies "$WORK/crd-fetch-$BACKEND.jsonl" \
    --pas-candidates "$WORK/pas-candidates.jsonl" --pas-replays "$WORK/pas-replays-$BACKEND.jsonl" \
    --pas-templates "$WORK/pas-templates-$BACKEND.jsonl")
  echo "   /v1 mix: $v1_mix" >&2
  echo "   FHIR mix: $fhir_mix" >&2
  [[ -s $WORK/mix.json ]] || echo "{\"v1\": $v1_mix, \"fhir\": $fhir_mix}" >"$WORK/mix.json"
  for f in v1 crd crd-fetch pas-replays pas-templates; do
    [[ -s $WORK/$f-$BACKEND.jsonl ]] || die "no $f body was accepted"
  done
  local before
  before=$(sh -c "$COUNTS_CMD")

  OUT_FILE="$WARMUPS"
  for endpoint in $ENDPOINTS; do
    measure_endpoint "$endpoint" "warm-up" 0 "$WARMUP_SECONDS" 2000 -c 8
  done
  OUT_FILE="$PHASES"
  for rate in $RATES; do
    for endpoint in $ENDPOINTS; do
      measure_endpoint "$endpoint" "fixed $rate/s" "$rate" "$RATE_SECONDS" $((rate * RATE_SECONDS)) \
        -q "$rate" --latency-correction -c "$RATE_CONNECTIONS"
    done
  done
  for connections in $MAX_CONNECTIONS; do
    for endpoint in $ENDPOINTS; do
      measure_endpoint "$endpoint" "closed, $connections conn" 0 "$MAX_SECONDS" "$PAS_LINES_MAX" -c "$connections"
    done
  done

  stop_server
  # After the server has stopped: the totals against every answer of this back end.
  local after audit audit_code=0
  after=$(sh -c "$COUNTS_CMD")
  audit=$(timeout 300 "$BIN" audit verify 2>&1) || audit_code=$?
  python3 - "$BACKEND" "$before" "$after" "$audit_code" "$audit" "$WARMUPS" "$PHASES" >>"$CHECKS" <<'EOF'
import json, sys
backend, before, after, code, audit, *paths = sys.argv[1:]
runs = [p for path in paths for line in open(path) if line.strip() for p in [json.loads(line)] if p["backend"] == backend]
print(json.dumps({"backend": backend, "before": json.loads(before), "after": json.loads(after), "audit_ok": code == "0",
                  "audit": " ".join(audit.split()), "runs": [{"endpoint": p["endpoint"], "mode": p["mode"], "ok": p["ok"], "counts_delta": p["counts_delta"]} for p in runs]}))
EOF
  echo "   audit verify (exit $audit_code): $audit" >&2
  drop_pg
  unset DATABASE_URL
}

for backend in $BACKENDS; do
  run_backend "$backend"
done

describe_run fhir-load.sh QUIET_WAIT PRIORAUTH_BIN KEEP SKIP_BUILD LOAD_WAIT LOAD_MAX PAS_LINES_MAX PAS_LINES_FACTOR SEED GENERATED WARMUP_SECONDS MAX_CONNECTIONS MAX_SECONDS RATE_CONNECTIONS RATE_SECONDS RATES ENDPOINTS BACKENDS
python3 - "$WORK/meta.json" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$COMMAND" "$COMMIT" "$DIRTY" "$(nproc)" \
  "$LOAD_FIRST" "$LOAD_START" "$waited" "$LOAD_MAX" "$BUSIEST" "$(oha --version | head -n 1)" "$TARGET_P99_MS" \
  "$PAS_LINES_FACTOR" "$PAS_LINES_MAX" "$WORK/mix.json" "$CHECKS" <<'EOF'
import json, sys
(out, date, command, commit, dirty, cpus, load_first, load_start, waited, load_max, busiest, tool, target,
 factor, most, mix, checks) = sys.argv[1:]
meta = {"date": date, "command": command, "commit": commit, "dirty": dirty == "true", "cpus": int(cpus),
        "load_first": load_first, "load_start": load_start, "load_waited_s": int(waited), "load_max": float(load_max),
        "busiest_at_start": busiest, "tool": tool, "target_p99_ms": float(target),
        "pas_lines_factor": int(factor), "pas_lines_max": int(most),
        "mix": json.load(open(mix)), "checks": [json.loads(line) for line in open(checks) if line.strip()]}
with open(out, "w", encoding="utf-8") as f:
    json.dump(meta, f)
EOF

RESULTS="$BENCH/results-$(date +%Y-%m-%d)-fhir.md"
n=2
while [[ -e $RESULTS ]]; do RESULTS="$BENCH/results-$(date +%Y-%m-%d)-fhir-$n.md"; n=$((n + 1)); done
python3 "$LIB" fhir-report --meta "$WORK/meta.json" --phases "$PHASES" --out "$RESULTS"
echo "(written to ${RESULTS#"$ROOT"/})"
