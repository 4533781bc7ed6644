#!/usr/bin/env bash
# Bytes stored per request, and the latency of reading one (see bench/README.md).
#
# For each back end (SQLite in a temp dir, PostgreSQL in a fresh database it creates and
# drops) it starts the binary on 127.0.0.1, stops it and measures the empty migrated
# database; starts it again and submits REQUESTS requests of bench/load.sh's mix; stops it,
# checks that every 201 is a row, and measures the database again (in all and per table).
# Then, unless READS=0, it restarts the server on that database and measures
# `GET /v1/requests/{id}` with oha over request ids of each outcome. Writes the summary to
# stdout and bench/results-storage-<date>[-LABEL].md, with the figures in a .json beside it
# (`bench/storagelib.py compare BEFORE.json AFTER.json` sets two runs side by side).
#
# Every target is loopback; every run is bounded in time; the server and the database it
# started are stopped and dropped on exit, failure or interrupt.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
LIB="$BENCH/loadlib.py"
STORAGE="$BENCH/storagelib.py"

BACKENDS=${BACKENDS:-"sqlite postgres"}
REQUESTS=${REQUESTS:-100000}         # requests submitted per back end (the mix's bodies included)
CONNECTIONS=${CONNECTIONS:-16}       # the submissions: a closed loop with this many connections
READS=${READS:-1}                    # 0: sizes only
READ_IDS=${READ_IDS:-12}             # request ids read per outcome
READ_RATE=${READ_RATE:-200}          # reads/s of the fixed-rate runs
READ_SECONDS=${READ_SECONDS:-20}     # the fixed-rate run over all the ids
READ_KIND_SECONDS=${READ_KIND_SECONDS:-10}   # then one per outcome (0: none)
READ_MAX_SECONDS=${READ_MAX_SECONDS:-10}     # the closed loop over all the ids
READ_CONNECTIONS=${READ_CONNECTIONS:-4}
READ_SETUP_SQL=${READ_SETUP_SQL:-}   # SQL run on the database after the reads, then the reads again
                                     # (marked "+ setup"): a schema change measured without a rebuild
WARMUP_SECONDS=${WARMUP_SECONDS:-3}
GENERATED=${GENERATED:-60}           # generated cases added to the example cases
SEED=${SEED:-7}
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-postgres}
OHA_VERSION=${OHA_VERSION:-1.16.0}
SKIP_BUILD=${SKIP_BUILD:-0}          # 1: use the existing target/release/priorauth
PRIORAUTH_BIN=${PRIORAUTH_BIN:-}     # another binary to measure (implies no build)
LABEL=${LABEL:-}                     # in the results file's name and the comparison, e.g. before
KEEP=${KEEP:-0}                      # 1: keep the temp dir (databases, logs, raw oha JSON)
QUIET_WAIT=${QUIET_WAIT:-60}         # before each oha run, wait up to this many seconds for an idle machine

# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"

check_common_knobs
for n in REQUESTS CONNECTIONS READ_IDS READ_RATE READ_SECONDS READ_KIND_SECONDS READ_MAX_SECONDS READ_CONNECTIONS WARMUP_SECONDS GENERATED; do
  [[ ${!n} =~ ^[0-9]+$ ]] || die "$n must be a whole number"
done
[[ $LABEL =~ ^[A-Za-z0-9_-]*$ ]] || die "LABEL: letters, digits, - and _ only"
(( REQUESTS <= 1000000 && CONNECTIONS > 0 )) || die "REQUESTS: at most 1,000,000; CONNECTIONS at least 1"
(( READ_SECONDS <= 120 && READ_KIND_SECONDS <= 120 && READ_MAX_SECONDS <= 120 && WARMUP_SECONDS <= 30 )) \
  || die "runs are bounded: at most 120 s each"
(( READ_RATE > 0 && READ_CONNECTIONS > 0 && READ_IDS > 0 )) || die "READ_RATE, READ_CONNECTIONS and READ_IDS must be positive"

install_tools
WORK=$(mktemp -d /tmp/priorauth-storage.XXXXXX)
install_traps
prepare_binary

SIZES="$WORK/sizes.jsonl"
PHASES="$WORK/phases.jsonl"
: >"$SIZES"
: >"$PHASES"
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== bodies" >&2
python3 "$LIB" bodies --binary "$BIN" --cases-dir "$ROOT/tests/cases" --generated "$GENERATED" --seed "$SEED" \
  --out "$WORK/candidates.jsonl" >/dev/null
POSTED=$(wc -l <"$WORK/candidates.jsonl")
(( REQUESTS >= POSTED )) || die "REQUESTS must be at least the $POSTED bodies of the mix"

# The database of the back end, for storagelib.py and loadlib.py counts.
db_args() {
  if [[ $BACKEND == sqlite ]]; then
    DB_ARGS=(--sqlite "$DB_FILE")
  else
    DB_ARGS=(--psql "psql -h $PG_HOST -p $PG_PORT -U $PG_USER -d $PG_DB")
  fi
}

# GET /v1/requests/{id} over the URLs of one file (oha picks one at random per request).
# READ_MARK is added to each run's name.
measure_reads() {
  local mode=$1 target=$2 seconds=$3 urls=$4; shift 4
  mode="${mode%, *}${READ_MARK:-}, ${mode##*, }"
  measure_oha "$mode" "$target" $((seconds + 30)) -w -H "Authorization: Bearer $KEY" -z "${seconds}s" "$@" \
    --urls-from-file "$urls" >&2
}

read_backend() {
  local READ_MARK=$1 check=$2
  start_server
  python3 "$STORAGE" pick-ids "${DB_ARGS[@]}" --per-outcome "$READ_IDS" --base "$BASE_URL" --out-dir "$WORK" \
    >"$WORK/ids-$BACKEND.json"
  echo "   ids: $(python3 -c 'import json,sys; print({k: len(v) for k, v in json.load(open(sys.argv[1])).items()})' "$WORK/ids-$BACKEND.json")" >&2
  python3 "$STORAGE" check-reads --base "$BASE_URL" --key "$KEY" --ids "$WORK/ids-$BACKEND.json" >"$WORK/$check"
  echo "   each read once: $(cat "$WORK/$check")" >&2

  # Every answer 200 is a `request.read` audit entry; no request is added.
  local COUNT_CMD="" OK_STATUS=200 ENDPOINT="GET /v1/requests/{id}" ENDPOINT_TAG=read
  local COUNTS_CMD
  COUNTS_CMD="python3 '$LIB' counts ${DB_ARGS[0]} '${DB_ARGS[1]}'"
  OUT_FILE="$WORK/read-warmup.jsonl"
  measure_reads "warm-up, all" 0 "$WARMUP_SECONDS" "$WORK/urls-all.txt" -c "$READ_CONNECTIONS"
  OUT_FILE="$PHASES"
  measure_reads "fixed $READ_RATE/s, all" "$READ_RATE" "$READ_SECONDS" "$WORK/urls-all.txt" \
    -q "$READ_RATE" --latency-correction -c 16
  measure_reads "closed loop $READ_CONNECTIONS conn, all" 0 "$READ_MAX_SECONDS" "$WORK/urls-all.txt" -c "$READ_CONNECTIONS"
  if (( READ_KIND_SECONDS > 0 )); then
    local outcome
    for outcome in approve review deny incomplete; do
      [[ -s $WORK/urls-$outcome.txt ]] || continue
      measure_reads "fixed $READ_RATE/s, $outcome" "$READ_RATE" "$READ_KIND_SECONDS" "$WORK/urls-$outcome.txt" \
        -q "$READ_RATE" --latency-correction -c 16
    done
  fi
  stop_server
}

run_backend() {
  open_backend "$1"
  db_args
  echo "== $BACKEND" >&2
  # The empty database: migrated by the server's start, with one key.
  start_server
  stop_server
  python3 "$STORAGE" size "${DB_ARGS[@]}" >"$WORK/empty-$BACKEND.json"

  start_server
  URL="$BASE_URL/v1/requests"
  BODIES="$WORK/bodies-$BACKEND.jsonl"
  local mix accepted
  mix=$(python3 "$LIB" accept --url "$URL" --key "$KEY" --candidates "$WORK/candidates.jsonl" \
    --bodies "$BODIES" --cases "$WORK/cases-$BACKEND.jsonl")
  echo "   mix: $mix" >&2
  accepted=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["created"])' "$mix")
  (( accepted > 0 )) || die "no body was answered 201"
  local n=$((REQUESTS - POSTED))
  echo "   submitting $n more ($CONNECTIONS connections)" >&2
  OUT_FILE="$WORK/submit-$BACKEND.jsonl"
  # Bounded: at least 50 requests/s, or oha is stopped.
  measure_oha "submit" 0 $((120 + n / 50)) -m POST -T application/json -H "Authorization: Bearer $KEY" \
    -Z "$BODIES" -n "$n" -c "$CONNECTIONS" "$URL" >&2
  stop_server

  # After the server has stopped: every 201 is a row, the audit chain holds, and the size.
  local rows created audit audit_code=0
  rows=$(sh -c "$COUNT_CMD" | tail -n 1)
  created=$(( accepted + $(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])["ok"])' "$OUT_FILE") ))
  audit=$(timeout 600 "$BIN" audit verify 2>&1) || audit_code=$?
  echo "   $rows rows in requests for $created answers 201; audit verify (exit $audit_code): $audit" >&2
  python3 "$STORAGE" size "${DB_ARGS[@]}" >"$WORK/full-$BACKEND.json"

  if [[ $READS == 1 ]]; then
    read_backend "" "read-check-$BACKEND.json"
    if [[ -n $READ_SETUP_SQL ]]; then
      echo "   setup: $READ_SETUP_SQL" >&2
      python3 "$STORAGE" exec "${DB_ARGS[@]}" "$READ_SETUP_SQL"
      read_backend " + setup" "read-check-setup-$BACKEND.json"
    fi
  fi
  python3 - "$BACKEND" "$rows" "$created" "$audit_code" "$audit" "$mix" "$WORK" >>"$SIZES" <<'EOF'
import json, os, sys
backend, rows, created, code, audit, mix, work = sys.argv[1:8]
load = lambda name: json.load(open(os.path.join(work, name))) if os.path.exists(os.path.join(work, name)) else None
print(json.dumps({
    "backend": backend, "rows": int(rows), "created": int(created), "audit_ok": code == "0",
    "audit": " ".join(audit.split()), "mix": json.loads(mix),
    "empty": load(f"empty-{backend}.json"), "full": load(f"full-{backend}.json"),
    "submit": json.loads(open(os.path.join(work, f"submit-{backend}.jsonl")).readlines()[-1]),
    "read_ids": load(f"ids-{backend}.json"), "read_check": load(f"read-check-{backend}.json"),
    "read_check_setup": load(f"read-check-setup-{backend}.json"),
}))
EOF
  (( rows == created )) || echo "   MISMATCH: $rows rows for $created answers 201" >&2
  drop_pg
  unset DATABASE_URL
}

for backend in $BACKENDS; do
  run_backend "$backend"
done

BINARY="release build of this tree"
[[ -n $PRIORAUTH_BIN ]] && BINARY="\`$PRIORAUTH_BIN\`"
describe_run storage.sh QUIET_WAIT KEEP LABEL READ_SETUP_SQL PRIORAUTH_BIN SKIP_BUILD SEED GENERATED WARMUP_SECONDS READ_CONNECTIONS READ_MAX_SECONDS READ_KIND_SECONDS READ_SECONDS READ_RATE READ_IDS READS CONNECTIONS REQUESTS BACKENDS
python3 - "$WORK/meta.json" "$READ_SETUP_SQL" <<EOF
import json, sys
json.dump({"date": "$(date -u '+%Y-%m-%d %H:%M UTC')", "command": """$COMMAND""", "commit": "$COMMIT", "dirty": $([[ $DIRTY == true ]] && echo True || echo False),
  "binary": """$BINARY""", "label": "$LABEL", "cpus": $(nproc), "loadavg": "$LOADAVG", "tool": "$(oha --version | head -n 1)",
  "requests": $REQUESTS, "connections": $CONNECTIONS, "read_ids": $READ_IDS, "read_rate": $READ_RATE, "read_seconds": $READ_SECONDS,
  "read_kind_seconds": $READ_KIND_SECONDS, "read_max_seconds": $READ_MAX_SECONDS, "read_connections": $READ_CONNECTIONS,
  "warmup_seconds": $WARMUP_SECONDS, "read_setup_sql": sys.argv[2]}, open(sys.argv[1], "w"))
EOF

STEM="$BENCH/results-storage-$(date +%Y-%m-%d)${LABEL:+-$LABEL}"
n=2
RESULTS="$STEM"
while [[ -e $RESULTS.md ]]; do RESULTS="$STEM-$n"; n=$((n + 1)); done
python3 "$STORAGE" bundle --meta "$WORK/meta.json" --sizes "$SIZES" --phases "$PHASES" --out "$RESULTS.json"
python3 "$STORAGE" report --meta "$WORK/meta.json" --sizes "$SIZES" --phases "$PHASES" --out "$RESULTS.md"
echo "(written to ${RESULTS#"$ROOT"/}.md and .json)"
