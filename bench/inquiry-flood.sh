#!/usr/bin/env bash
# One organization asks `$inquire` about its own stored 3.9 MB PAS Bundle as fast as it is
# answered (16 connections, the service's default limits), while a clinic of another
# organization submits `POST /v1/requests` at 40/s; the clinic's p50 and p99 alone and
# during the flood, and the flood's answers by status. Loopback only; about 50 s.
#
#   bench/inquiry-flood.sh target/release/priorauth [LABEL]
#
# Needs oha and curl. Writes nothing outside a temporary directory.
set -euo pipefail
BIN=$(realpath "$1"); LABEL=${2:-run}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d); trap 'kill "${SERVER:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
cd "$WORK"
python3 - "$ROOT" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1] + "/bench")
import attack
from loadlib import dated_today
open("big.json", "wb").write(attack.big_bundle())
example = json.load(open(sys.argv[1] + "/tests/fhir/pas-examples/Bundle-HomecareAuthorizationBundleExample.json"))
open("inquiry.json", "w").write(json.dumps(example))  # the same Claim and member, 13.5 KB
case = json.load(open(sys.argv[1] + "/tests/cases/E01.json"))
open("clinic.json", "w").write(json.dumps({"plan": "masshealth", "case": dated_today(case.get("case", case))}))
PY
key() { "$BIN" keys create --organization "$1" --role submitter --name "$1" | sed -n 's/^key: //p'; }
CLINIC=$(key clinic-a); HOSTILE=$(key hostile)
PORT=$(python3 "$ROOT/bench/loadlib.py" freeport)
"$BIN" serve --listen "127.0.0.1:$PORT" >server.log 2>&1 & SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT"
stored=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $HOSTILE" \
  -H 'Content-Type: application/fhir+json' --data-binary @big.json "$URL/fhir/Claim/\$submit")
[[ $stored == 200 ]] || { echo "the Bundle was not stored: $stored" >&2; exit 1; }
clinic() {
  oha -z "$1" -q 40 -c 10 --no-tui -m POST -H "Authorization: Bearer $CLINIC" -T application/json \
    -D clinic.json "$URL/v1/requests" 2>&1 | awk '/50.00%|99.00%/ {printf "%s %s ms  ", $1, $3}'
}
clinic 3s >/dev/null
alone=$(clinic 20s)
oha -z 22s -c 16 --no-tui -m POST -H "Authorization: Bearer $HOSTILE" -T application/fhir+json \
  -D inquiry.json "$URL/fhir/Claim/\$inquire" >flood.txt 2>&1 & FLOOD=$!
sleep 1
during=$(clinic 20s)
wait "$FLOOD"
echo "$LABEL: the clinic alone: $alone| during the flood: $during| the flood: $(grep -E '^\s+\[[0-9]+\]' flood.txt | tr -s ' ' | tr '\n' ' ')"
