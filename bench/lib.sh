# shellcheck shell=bash disable=SC2153  # BACKENDS and the other knobs are set by the sourcing script
# Shared by bench/load.sh, bench/fhir-load.sh and bench/storage.sh (sourced, not run): tools,
# the binary under test, the back ends, the server, one measured oha run, and the cleanup trap.
#
# The sourcing script sets ROOT, BENCH and LIB, and its knobs (BACKENDS, PG_*, OHA_VERSION,
# SKIP_BUILD, PRIORAUTH_BIN, KEEP, QUIET_WAIT) before calling these functions.

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# Loopback only, whole numbers only.
check_common_knobs() {
  case "$PG_HOST" in
    127.*|localhost) ;;
    *) die "PG_HOST must be a loopback address, not $PG_HOST" ;;
  esac
  [[ $QUIET_WAIT =~ ^[0-9]+$ ]] || die "QUIET_WAIT must be a whole number"
}

install_tools() {
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
}

# Builds (unless told not to) and copies the binary to WORK, so a rebuild during the run
# does not change the binary under test. Sets BIN.
prepare_binary() {
  if [[ -n $PRIORAUTH_BIN ]]; then
    [[ -x $PRIORAUTH_BIN ]] || die "PRIORAUTH_BIN is not an executable: $PRIORAUTH_BIN"
  elif [[ $SKIP_BUILD != 1 ]]; then
    echo "== cargo build --release" >&2
    (cd "$ROOT" && cargo build --release --quiet -p priorauth-cli)
  fi
  local bin=${PRIORAUTH_BIN:-$ROOT/target/release/priorauth}
  [[ -x $bin ]] || die "no $bin"
  BIN="$WORK/priorauth"
  cp "$bin" "$BIN"
}

SERVER_PID=""
PG_DB=""
CHILD_PID=""

# Runs a command in the background and waits for it, so that a signal to this script is
# handled at once (bash runs traps only between foreground commands) and the trap can end it.
run() {
  "$@" &
  CHILD_PID=$!
  local code=0
  wait "$CHILD_PID" || code=$?
  CHILD_PID=""
  return "$code"
}

stop_server() {
  [[ -n $SERVER_PID ]] || return 0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

drop_pg() {
  [[ -n $PG_DB ]] || return 0
  dropdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" --if-exists --force "$PG_DB" 2>/dev/null \
    || psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -qAtc "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 \
    || echo "$(basename "$0"): could not drop database $PG_DB" >&2
  PG_DB=""
}

cleanup() {
  local code=$?
  if [[ -n $CHILD_PID ]]; then
    # The measuring helper and the oha it runs (its child, then timeout's child).
    pkill -INT -P "$CHILD_PID" 2>/dev/null || true
    kill -INT "$CHILD_PID" 2>/dev/null || true
    wait "$CHILD_PID" 2>/dev/null || true
  fi
  stop_server
  # A helper process the script started (fhir-load.sh's chart server).
  if [[ -n ${HELPER_PID:-} ]]; then
    kill "$HELPER_PID" 2>/dev/null || true
    wait "$HELPER_PID" 2>/dev/null || true
    HELPER_PID=""
  fi
  drop_pg
  # A scratch directory outside WORK (SCRATCH_DIR), never kept.
  [[ -n ${SCRATCH_DIR:-} ]] && rm -rf "$SCRATCH_DIR"
  if [[ $code -ne 0 ]]; then
    for log in "$WORK"/server-*.log; do
      [[ -s $log ]] && { echo "--- last lines of $log" >&2; tail -n 20 "$log" >&2; }
    done
  fi
  if [[ $KEEP == 1 || $code -ne 0 ]]; then
    echo "$(basename "$0"): files kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$code"
}

install_traps() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# A fresh database for back end $1. Sets DATABASE_URL (exported), PSQL (psql on the server,
# for pg_stat_activity samples), DB_FILE (SQLite) and COUNT_CMD (rows in `requests`).
open_backend() {
  BACKEND=$1
  case "$BACKEND" in
    sqlite)
      DB_FILE="$WORK/priorauth-$BACKEND.sqlite"
      DATABASE_URL="sqlite://$DB_FILE?mode=rwc"
      COUNT_CMD="python3 '$LIB' count-sqlite '$DB_FILE'"
      PSQL=""
      ;;
    postgres)
      DB_FILE=""
      PG_DB="priorauth_load_$$_$(date +%s)"
      createdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$PG_DB"
      DATABASE_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$PG_DB"
      PSQL="psql -h $PG_HOST -p $PG_PORT -U $PG_USER -d postgres"
      COUNT_CMD="psql -h '$PG_HOST' -p '$PG_PORT' -U '$PG_USER' -d '$PG_DB' -qAtc 'SELECT count(*) FROM requests'"
      ;;
    *) die "unknown back end $BACKEND (sqlite or postgres)" ;;
  esac
  export DATABASE_URL
}

# Creates a submitter key (KEY) and starts `priorauth serve` on a free loopback port (PORT,
# BASE_URL, SERVER_PID); waits for /readyz. The shares per key and organization are off: the
# load comes from one organization far faster than a clinic's (bench/attack.py measures them).
start_server() {
  KEY=$("$BIN" keys create --organization load-bench --role submitter --name load-bench | sed -n 's/^key: //p')
  [[ -n $KEY ]] || die "no key created"
  PORT=$(python3 "$LIB" freeport)
  BASE_URL="http://127.0.0.1:$PORT"
  (cd "$WORK" && PRIORAUTH_RATE_PER_KEY=0 PRIORAUTH_RATE_PER_ORGANIZATION=0 PRIORAUTH_IN_FLIGHT_PER_ORGANIZATION=0 PRIORAUTH_FHIR_KB_PER_ORGANIZATION=0 exec "$BIN" serve --listen "127.0.0.1:$PORT") >"$WORK/server-$BACKEND.log" 2>&1 &
  SERVER_PID=$!
  local ready=0
  for _ in $(seq 1 100); do
    if curl -sf "$BASE_URL/readyz" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited at start"
    sleep 0.1
  done
  [[ $ready == 1 ]] || die "the server did not become ready in 10 s"
}

# One measured run of oha, bounded twice: by its own -z or -n, and by timeout(1) after BOUND
# seconds in case it hangs. Arguments: mode, target rate, BOUND, then oha's options and URL.
# Reads BACKEND, SERVER_PID, PG_DB, PSQL, OUT_FILE; ENDPOINT (its label) and ENDPOINT_TAG (in
# the raw file's name); COUNT_CMD (rows that must grow by one per answer OK_STATUS, default
# 201) and COUNTS_CMD (JSON counters, their changes recorded) may be empty.
measure_oha() {
  local mode=$1 target=$2 bound=$3; shift 3
  if (( QUIET_WAIT > 0 )); then
    local idle
    run python3 "$LIB" quiet --max "$QUIET_WAIT" >"$WORK/idle"
    idle=$(cat "$WORK/idle")
    (( idle >= 85 )) || echo "   the machine is busy (${idle}% idle after waiting ${QUIET_WAIT} s): measuring anyway" >&2
  fi
  run python3 "$LIB" measure --backend "$BACKEND" --mode "$mode" --target "$target" --server-pid "$SERVER_PID" \
    --pg-db "$PG_DB" --psql "$PSQL" --count-cmd "${COUNT_CMD:-}" --counts-cmd "${COUNTS_CMD:-}" \
    --ok-status "${OK_STATUS:-201}" --endpoint "${ENDPOINT:-/v1/requests}" \
    --raw "$WORK/oha-$BACKEND-${ENDPOINT_TAG:-v1}-${mode//[^a-z0-9]/_}.json" \
    --out "$OUT_FILE" -- \
    timeout --signal=INT --kill-after=10 "$bound" \
    oha --no-tui --output-format json -t 15s "$@"
}

# One measured run of oha posting BODIES (oha -Z file) to URL for a number of seconds, with
# KEY. Arguments: mode, target rate, seconds, then more oha options.
measure() {
  local mode=$1 target=$2 seconds=$3; shift 3
  measure_oha "$mode" "$target" $((seconds + 30)) -w -m POST -T application/json \
    -H "Authorization: Bearer $KEY" -Z "$BODIES" -z "${seconds}s" "$@" "$URL"
}

# What the report says of the run: COMMIT and DIRTY (crates, config, policies or Cargo.lock
# changed) of this tree, and COMMAND, the script with the knobs set in its environment.
# Arguments: the script's name, then its knobs.
# shellcheck disable=SC2034  # COMMIT and DIRTY are read by the sourcing script
describe_run() {
  local script=$1 n; shift
  COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  DIRTY=false
  [[ -n $(git -C "$ROOT" status --porcelain -- crates config policies Cargo.lock 2>/dev/null) ]] && DIRTY=true
  COMMAND="bench/$script"
  for n in "$@"; do
    if printenv "$n" >/dev/null; then COMMAND="$n='${!n}' $COMMAND"; fi
  done
}
