#!/usr/bin/env bash
# The crash-safety test at length (see bench/README.md): crates/priorauth-cli/tests/crash.rs
# with KILLS SIGKILLs per back end instead of CI's 30. Clients drive `priorauth serve` on
# SQLite and on PostgreSQL (a fresh database each, created and dropped by the test); every
# answer they receive must be found in the records afterwards, no authorization may be used
# beyond its units, and the audit chain must verify. Prints the figures and writes them to
# bench/results-crash-<date>.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KILLS=${KILLS:-200}
SEED=${SEED:-20261124}
RELEASE=${RELEASE:-0}                # 1: build and run the release profile
# PostgreSQL as CI has it; an empty DATABASE_URL runs SQLite only.
export DATABASE_URL=${DATABASE_URL-postgres://postgres@127.0.0.1:5432/test}

die() { echo "crash.sh: $*" >&2; exit 1; }
[[ $KILLS =~ ^[0-9]+$ ]] && (( KILLS >= 1 && KILLS <= 2000 )) || die "KILLS: 1 to 2000"
[[ $SEED =~ ^[0-9]+$ ]] || die "SEED: a whole number"
case "$DATABASE_URL" in
  ""|postgres://*@127.*|postgres://*@localhost*) ;;
  *) die "DATABASE_URL must be a loopback PostgreSQL server" ;;
esac

profile=()
[[ $RELEASE == 1 ]] && profile=(--release)
LOG=$(mktemp /tmp/priorauth-crash.XXXXXX)
trap 'rm -f "$LOG"' EXIT

started=$(date +%s)
code=0
(cd "$ROOT" && PRIORAUTH_CRASH_KILLS=$KILLS PRIORAUTH_TEST_SEED=$SEED \
  cargo test "${profile[@]}" --locked -p priorauth-cli --test crash -- --nocapture) >"$LOG" 2>&1 || code=$?
elapsed=$(( $(date +%s) - started ))

summary=$(grep -E '^crash \(' "$LOG" || true)
if [[ $code -ne 0 || -z $summary ]]; then
  tail -n 60 "$LOG" >&2
  die "the crash test failed (exit $code)"
fi

RESULTS="$ROOT/bench/results-crash-$(date +%Y-%m-%d).md"
n=2
while [[ -e $RESULTS ]]; do RESULTS="$ROOT/bench/results-crash-$(date +%Y-%m-%d)-$n.md"; n=$((n + 1)); done
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  echo "# Crash safety under SIGKILL, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Command: \`KILLS=$KILLS SEED=$SEED RELEASE=$RELEASE bench/crash.sh\` (commit $COMMIT), $(nproc) cores, ${elapsed} s in all."
  echo "Six clients submit (half with an Idempotency-Key, retried until answered), complete, decide and spend;"
  echo "\`priorauth serve\` is killed with SIGKILL every 50 to 400 ms and restarted on the same database"
  echo "(one restart in five is killed again while it starts). Afterwards every answer received is looked"
  echo "up through the API and in the database."
  echo
  grep -E '^crash \(' "$LOG" | sed 's/^/- /'
  grep -E '^note:' "$LOG" | sed 's/^/- /' || true
} | tee "$RESULTS"
echo "(written to ${RESULTS#"$ROOT"/})"
