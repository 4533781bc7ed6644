#!/usr/bin/env bash
# Soak of `priorauth serve` (see bench/README.md): one hour's traffic, bounded in time.
#
# An hour at HOUR_RATE requests/s (default 50: 180,000 requests) is sent at RATE/s (default
# 300: 10 minutes) to `POST /v1/requests` with oha, while reviewers read `GET /v1/queue` at
# QUEUE_RATE/s. The server's VmRSS, open file descriptors and threads, and the database's
# size, are sampled every INTERVAL seconds into a CSV; the verdict compares the first and
# the last quarter of the samples. Every 201 is checked as a row and the audit chain is
# verified afterwards. Writes bench/results-soak-<date>.md and one CSV per back end.
#
# Every target is loopback; every run is bounded in time; the server and the database it
# started are stopped and dropped on exit, failure or interrupt.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
LIB="$BENCH/loadlib.py"
SOAK="$BENCH/soaklib.py"

BACKENDS=${BACKENDS:-"sqlite postgres"}
HOUR_RATE=${HOUR_RATE:-50}           # the hour's traffic: requests/s
RATE=${RATE:-300}                    # sent at this rate
QUEUE_RATE=${QUEUE_RATE:-2}          # GET /v1/queue per second meanwhile (0: none)
CONNECTIONS=${CONNECTIONS:-64}
INTERVAL=${INTERVAL:-5}              # seconds between samples
WARMUP_SECONDS=${WARMUP_SECONDS:-10}
GENERATED=${GENERATED:-60}
SEED=${SEED:-7}
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-postgres}
OHA_VERSION=${OHA_VERSION:-1.16.0}
SKIP_BUILD=${SKIP_BUILD:-0}
PRIORAUTH_BIN=${PRIORAUTH_BIN:-}
KEEP=${KEEP:-0}

die() { echo "soak.sh: $*" >&2; exit 1; }

case "$PG_HOST" in
  127.*|localhost) ;;
  *) die "PG_HOST must be a loopback address, not $PG_HOST" ;;
esac
for n in HOUR_RATE RATE QUEUE_RATE CONNECTIONS INTERVAL WARMUP_SECONDS GENERATED; do
  [[ ${!n} =~ ^[0-9]+$ ]] || die "$n must be a whole number"
done
(( RATE > 0 && HOUR_RATE > 0 && INTERVAL > 0 )) || die "RATE, HOUR_RATE and INTERVAL must be positive"
REQUESTS=$(( HOUR_RATE * 3600 ))
RUN_SECONDS=$(( (REQUESTS + RATE - 1) / RATE ))
(( RUN_SECONDS <= 3600 && WARMUP_SECONDS <= 60 )) || die "bounded: at most an hour of sending per back end"

# ---- tools ----
export PATH="$HOME/.cargo/bin:$PATH"
command -v python3 >/dev/null || die "python3 is needed"
command -v curl >/dev/null || die "curl is needed"
if ! command -v oha >/dev/null; then
  echo "== installing oha $OHA_VERSION (cargo install, a few minutes)" >&2
  cargo install oha --locked --version "$OHA_VERSION" >&2
fi
if [[ " $BACKENDS " == *" postgres "* ]] && ! command -v psql >/dev/null; then
  echo "== installing postgresql-client" >&2
  apt-get install -y -q postgresql-client >&2 || { apt-get update -q >&2 && apt-get install -y -q postgresql-client >&2; }
fi
if [[ -n $PRIORAUTH_BIN ]]; then
  [[ -x $PRIORAUTH_BIN ]] || die "PRIORAUTH_BIN is not an executable: $PRIORAUTH_BIN"
elif [[ $SKIP_BUILD != 1 ]]; then
  echo "== cargo build --release" >&2
  (cd "$ROOT" && cargo build --release --quiet)
fi
PRIORAUTH_BIN=${PRIORAUTH_BIN:-$ROOT/target/release/priorauth}
[[ -x $PRIORAUTH_BIN ]] || die "no $PRIORAUTH_BIN"

WORK=$(mktemp -d /tmp/priorauth-soak.XXXXXX)
BIN="$WORK/priorauth"
cp "$PRIORAUTH_BIN" "$BIN"

SERVER_PID=""
SAMPLER_PID=""
QUEUE_PID=""
PG_DB=""
CHILD_PID=""

# In the background and waited for, so that a signal to this script is handled at once.
run() {
  "$@" &
  CHILD_PID=$!
  local code=0
  wait "$CHILD_PID" || code=$?
  CHILD_PID=""
  return "$code"
}

stop_pid() { # pid: SIGTERM, then SIGKILL after 10 s
  local pid=$1
  [[ -n $pid ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

drop_pg() {
  [[ -n $PG_DB ]] || return 0
  dropdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" --if-exists --force "$PG_DB" 2>/dev/null \
    || echo "soak.sh: could not drop database $PG_DB" >&2
  PG_DB=""
}

cleanup() {
  local code=$?
  if [[ -n $CHILD_PID ]]; then
    pkill -INT -P "$CHILD_PID" 2>/dev/null || true
    kill -INT "$CHILD_PID" 2>/dev/null || true
    wait "$CHILD_PID" 2>/dev/null || true
  fi
  stop_pid "$QUEUE_PID"
  stop_pid "$SAMPLER_PID"
  stop_pid "$SERVER_PID"
  drop_pg
  if [[ $code -ne 0 ]]; then
    for log in "$WORK"/server-*.log; do
      [[ -s $log ]] && { echo "--- last lines of $log" >&2; tail -n 20 "$log" >&2; }
    done
  fi
  if [[ $KEEP == 1 || $code -ne 0 ]]; then
    echo "soak.sh: files kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

DATE=$(date +%Y-%m-%d)
RESULTS="$BENCH/results-soak-$DATE.md"
n=2
while [[ -e $RESULTS ]]; do RESULTS="$BENCH/results-soak-$DATE-$n.md"; n=$((n + 1)); done
STEM=${RESULTS%.md}
PHASES="$WORK/phases.jsonl"
CHECKS="$WORK/checks.jsonl"
: >"$PHASES"
: >"$CHECKS"
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== bodies" >&2
python3 "$LIB" bodies --binary "$BIN" --cases-dir "$ROOT/tests/cases" --generated "$GENERATED" --seed "$SEED" \
  --out "$WORK/candidates.jsonl" >/dev/null

soak_backend() {
  BACKEND=$1
  local url db_file="" count_cmd psql=""
  case "$BACKEND" in
    sqlite)
      db_file="$WORK/priorauth.sqlite"
      url="sqlite://$db_file?mode=rwc"
      count_cmd="python3 '$LIB' count-sqlite '$db_file'"
      ;;
    postgres)
      PG_DB="priorauth_soak_$$_$(date +%s)"
      createdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$PG_DB"
      url="postgres://$PG_USER@$PG_HOST:$PG_PORT/$PG_DB"
      psql="psql -h $PG_HOST -p $PG_PORT -U $PG_USER -d postgres"
      count_cmd="psql -h '$PG_HOST' -p '$PG_PORT' -U '$PG_USER' -d '$PG_DB' -qAtc 'SELECT count(*) FROM requests'"
      ;;
    *) die "unknown back end $BACKEND (sqlite or postgres)" ;;
  esac
  export DATABASE_URL="$url"
  echo "== $BACKEND: $REQUESTS requests at $RATE/s (about $RUN_SECONDS s)" >&2

  local key reviewer port base
  key=$("$BIN" keys create --organization soak --role submitter --name soak | sed -n 's/^key: //p')
  reviewer=$("$BIN" keys create --organization payer --role reviewer --name "Soak Reviewer" --credentials "MD" | sed -n 's/^key: //p')
  [[ -n $key && -n $reviewer ]] || die "no key created"
  port=$(python3 "$LIB" freeport)
  base="http://127.0.0.1:$port"
  (cd "$WORK" && PRIORAUTH_RATE_PER_KEY=0 PRIORAUTH_RATE_PER_ORGANIZATION=0 PRIORAUTH_IN_FLIGHT_PER_ORGANIZATION=0 PRIORAUTH_FHIR_KB_PER_ORGANIZATION=0 exec "$BIN" serve --listen "127.0.0.1:$port") >"$WORK/server-$BACKEND.log" 2>&1 &
  SERVER_PID=$!
  local ready=0
  for _ in $(seq 1 100); do
    if curl -sf "$base/readyz" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited at start"
    sleep 0.1
  done
  [[ $ready == 1 ]] || die "the server did not become ready in 10 s"

  local mix accepted
  mix=$(python3 "$LIB" accept --url "$base/v1/requests" --key "$key" --candidates "$WORK/candidates.jsonl" \
    --bodies "$WORK/bodies-$BACKEND.jsonl" --cases "$WORK/cases-$BACKEND.jsonl")
  echo "   mix: $mix" >&2
  accepted=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["created"])' "$mix")
  (( accepted > 0 )) || die "no body was answered 201"

  echo "   warm-up: $WARMUP_SECONDS s at $RATE/s" >&2
  run python3 "$LIB" measure --backend "$BACKEND" --mode warm-up --target "$RATE" --server-pid "$SERVER_PID" \
    --pg-db "$PG_DB" --psql "$psql" --count-cmd "$count_cmd" --raw "$WORK/oha-$BACKEND-warmup.json" --out "$WORK/warmup.jsonl" -- \
    timeout --signal=INT --kill-after=10 $((WARMUP_SECONDS + 30)) \
    oha --no-tui --output-format json -t 15s -w -m POST -T application/json -H "Authorization: Bearer $key" \
      -Z "$WORK/bodies-$BACKEND.jsonl" -z "${WARMUP_SECONDS}s" -q "$RATE" -c "$CONNECTIONS" "$base/v1/requests" >&2

  local samples="$STEM-$BACKEND.csv"
  python3 "$SOAK" sample --pid "$SERVER_PID" --interval "$INTERVAL" --sqlite "$db_file" --pg-db "$PG_DB" \
    --psql "$psql" --out "$samples" &
  SAMPLER_PID=$!
  if (( QUEUE_RATE > 0 )); then
    timeout --signal=INT --kill-after=10 $((RUN_SECONDS + 60)) \
      oha --no-tui --output-format json -t 15s -w -H "Authorization: Bearer $reviewer" \
        -z "${RUN_SECONDS}s" -q "$QUEUE_RATE" -c 2 "$base/v1/queue" >"$WORK/oha-$BACKEND-queue.json" 2>/dev/null &
    QUEUE_PID=$!
  fi
  run python3 "$LIB" measure --backend "$BACKEND" --mode "soak $RATE/s" --target "$RATE" --server-pid "$SERVER_PID" \
    --pg-db "$PG_DB" --psql "$psql" --count-cmd "$count_cmd" --raw "$WORK/oha-$BACKEND-soak.json" --out "$PHASES" -- \
    timeout --signal=INT --kill-after=10 $((RUN_SECONDS * 2 + 60)) \
    oha --no-tui --output-format json -t 15s -w -m POST -T application/json -H "Authorization: Bearer $key" \
      -Z "$WORK/bodies-$BACKEND.jsonl" -n "$REQUESTS" -q "$RATE" --latency-correction -c "$CONNECTIONS" \
      "$base/v1/requests" >&2
  kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited during the run (its log: $WORK/server-$BACKEND.log)"
  # Samples end with the load, before its connections close.
  stop_pid "$SAMPLER_PID"
  SAMPLER_PID=""
  local queue='{}'
  if [[ -n $QUEUE_PID ]]; then
    wait "$QUEUE_PID" || true
    QUEUE_PID=""
    queue=$(python3 "$SOAK" oha-statuses "$WORK/oha-$BACKEND-queue.json")
  fi
  stop_pid "$SERVER_PID"
  SERVER_PID=""

  local rows answered audit audit_code=0
  rows=$(sh -c "$count_cmd" | tail -n 1)
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
  audit=$(timeout 600 "$BIN" audit verify 2>&1) || audit_code=$?
  python3 -c 'import json, sys; print(json.dumps({"backend": sys.argv[1], "rows": int(sys.argv[2]), "created": int(sys.argv[3]), "audit_ok": sys.argv[4] == "0", "audit": " ".join(sys.argv[5].split()), "csv": sys.argv[6], "queue": json.loads(sys.argv[7])}))' \
    "$BACKEND" "$rows" "$answered" "$audit_code" "$audit" "$samples" "$queue" >>"$CHECKS"
  echo "   total: $rows rows in requests for $answered answers 201; audit verify (exit $audit_code): $audit" >&2
  python3 "$SOAK" verdict --backend "$BACKEND" "$samples" >&2
  drop_pg
  unset DATABASE_URL
}

for backend in $BACKENDS; do
  soak_backend "$backend"
done

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=false
[[ -n $(git -C "$ROOT" status --porcelain -- crates config policies Cargo.lock 2>/dev/null) ]] && DIRTY=true
COMMAND="bench/soak.sh"
for n in KEEP SKIP_BUILD PRIORAUTH_BIN SEED GENERATED WARMUP_SECONDS INTERVAL CONNECTIONS QUEUE_RATE RATE HOUR_RATE BACKENDS; do
  if printenv "$n" >/dev/null; then COMMAND="$n='${!n}' $COMMAND"; fi
done
cat >"$WORK/meta.json" <<EOF
{"date": "$(date -u '+%Y-%m-%d %H:%M UTC')", "command": "$COMMAND", "commit": "$COMMIT", "dirty": $DIRTY,
 "cpus": $(nproc), "loadavg": "$LOADAVG", "tool": "$(oha --version | head -n 1)",
 "hour_rate": $HOUR_RATE, "rate": $RATE, "requests": $REQUESTS, "queue_rate": $QUEUE_RATE, "interval": $INTERVAL,
 "checks": [$(paste -sd, "$CHECKS")]}
EOF
python3 "$SOAK" report --meta "$WORK/meta.json" --phases "$PHASES" --out "$RESULTS"
echo "(written to ${RESULTS#"$ROOT"/} and ${STEM#"$ROOT"/}-*.csv)"
