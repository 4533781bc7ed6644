#!/usr/bin/env python3
"""Helpers for bench/load.sh and bench/fhir-load.sh: request bodies, one measured phase,
the summary tables.

Standard library only. Every subcommand prints what the shell script needs on stdout;
errors go to stderr with a non-zero exit.
"""

import argparse
import json
import os
import resource
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

CLK_TCK = os.sysconf("SC_CLK_TCK")

# The hand-written example cases in the mix: (file, plan, outcome the plan gives).
EXAMPLES = [
    ("E01", "masshealth", "approve"),
    ("E12", "masshealth", "review"),
    ("E06", "eocco-medicaid", "incomplete"),
    ("E05", "masshealth", "deny"),
]
# Both plans above are Medicaid plans: the line of business every case is given.
LINE_OF_BUSINESS = "medicaid"


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ---- bodies ----


def dated_today(case):
    """The case as a clinic sends it now: `request.date` on today's date (UTC), the service
    refusing one more than 90 days before receipt; the birth date and earlier authorizations
    move with it, so ages and the course stay the recorded ones."""
    import datetime

    request = case.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("date"), str):
        return case
    parse = datetime.date.fromisoformat
    shift = datetime.datetime.now(datetime.timezone.utc).date() - parse(request["date"])
    moved = lambda text: (parse(text) + shift).isoformat()
    request["date"] = moved(request["date"])
    patient = case.get("patient")
    if isinstance(patient, dict) and isinstance(patient.get("birth_date"), str):
        patient["birth_date"] = moved(patient["birth_date"])
    history = case.get("history")
    if isinstance(history, dict) and isinstance(history.get("authorizations"), list):
        for authorization in history["authorizations"]:
            for key in ("start", "end"):
                authorization[key] = moved(authorization[key])
    return case


def cmd_bodies(args):
    """Candidate bodies: the example cases, then generated ones under `masshealth`, each
    dated today."""
    lines = []
    for name, plan, _ in EXAMPLES:
        with open(os.path.join(args.cases_dir, f"{name}.json"), encoding="utf-8") as f:
            lines.append({"plan": plan, "case": dated_today(json.load(f))})
    if args.generated > 0:
        out = subprocess.run(
            [args.binary, "cases", "generate", "--count", str(args.generated), "--seed", str(args.seed)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for line in out.splitlines():
            if not line.strip():
                continue
            case = json.loads(line)
            request = case.get("request")
            if not isinstance(request, dict):
                request = case["request"] = {}
            # The plan's line of business, or the service answers 422.
            request["line_of_business"] = LINE_OF_BUSINESS
            lines.append({"plan": "masshealth", "case": dated_today(case)})
    with open(args.out, "w", encoding="utf-8") as f:
        for body in lines:
            f.write(compact(body) + "\n")
    print(len(lines))


def cmd_accept(args):
    """Posts each candidate once (this is also the first warm-up); keeps those answered 201.

    Writes the HTTP bodies (one per line, for oha -Z) and the same cases as batch input
    (with the plan's line of business, as the service decides them)."""
    created, rejected, outcomes = 0, {}, {}
    kept = []
    with open(args.candidates, encoding="utf-8") as f:
        candidates = [line for line in f if line.strip()]
    for line in candidates:
        request = urllib.request.Request(
            args.url,
            data=line.strip().encode(),
            method="POST",
            headers={"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, answer = response.status, json.load(response)
        except urllib.error.HTTPError as error:
            status, answer = error.code, None
        if status == 201:
            created += 1
            outcome = answer.get("outcome", "?")
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            kept.append(line.strip())
        else:
            rejected[str(status)] = rejected.get(str(status), 0) + 1
    with open(args.bodies, "w", encoding="utf-8") as b, open(args.cases, "w", encoding="utf-8") as c:
        for line in kept:
            b.write(line + "\n")
            case = json.loads(line)["case"]
            case.setdefault("request", {})["line_of_business"] = LINE_OF_BUSINESS
            c.write(compact(case) + "\n")
    print(compact({"posted": len(candidates), "created": created, "rejected": rejected, "outcomes": outcomes}))


def cmd_batch_input(args):
    """Repeats the accepted cases up to N lines for `priorauth evaluate --batch`."""
    with open(args.cases, encoding="utf-8") as f:
        cases = [line for line in f if line.strip()]
    with open(args.out, "w", encoding="utf-8") as f:
        for i in range(args.lines):
            f.write(cases[i % len(cases)])


# ---- FHIR bodies (bench/fhir-load.sh) ----

# CRD order-sign orders: (plan on the Coverage card, drug, ICD-10-CM code, what the order
# is). The hook carries only records (no questionnaire answers), and the lineage of an ALL
# (B-cell precursor or T-cell) is never in them, so no policy can approve at order time:
# every governed order is answered `auth-needed`. The outcomes named are those of
# `priorauth evaluate` on the same facts.
CRD_ORDERS = [
    ("masshealth", "blinatumomab", "C91.02", "incomplete: relapsed ALL, lineage and course asked"),
    ("masshealth", "inotuzumab_ozogamicin", "C91.02", "incomplete"),
    ("eocco-medicaid", "blinatumomab", "C91.02", "incomplete"),
    ("evolent-commercial", "blinatumomab", "C91.01", "incomplete: ALL in remission"),
    ("bcbsnc-commercial", "blinatumomab", "C91.02", "incomplete"),
    ("bcbsnc-commercial", "blinatumomab", "C83.50", "review: lymphoblastic lymphoma, compendia pathway"),
    ("express-scripts-medicare-advantage", "blinatumomab", "C91.02", "incomplete"),
    ("express-scripts-medicare-advantage", "blinatumomab", "C83.50", "deny: not ALL"),
    ("eocco-medicaid", "inotuzumab_ozogamicin", "C91.02", "no policy of the plan governs the drug: no card"),
    ("acme-health-ppo", "blinatumomab", "C91.02", "a plan this payer does not have: not-covered"),
]
DRUG_CODES = {
    "blinatumomab": ("http://www.nlm.nih.gov/research/umls/rxnorm", "1597262", {"value": 28, "unit": "mcg/day", "system": "http://unitsofmeasure.org", "code": "ug/d"}),
    "inotuzumab_ozogamicin": ("http://hl7.org/fhir/sid/ndc", "0008-0100-01", {"value": 0.8, "unit": "mg/m2", "system": "http://unitsofmeasure.org", "code": "mg/m2"}),
}
# Replaced in each PAS request line by a fresh UUID: the Bundle identifier (what makes a
# submission idempotent) and the Claim's identifier (what an inquiry finds it by).
BUNDLE_ID = "urn:uuid:00000000-0000-4000-8000-0000bench001"
CLAIM_ID = "bench-claim-0000000000000000"


def crd_hook(index, plan, drug, icd10):
    system, code, dose = DRUG_CODES[drug]
    patient = f"pat{index}"
    quantity = lambda value, unit: {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    observation = lambda oid, loinc, value: {
        "resourceType": "Observation", "id": oid, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": "2026-05-10", "valueQuantity": value,
    }
    order = {
        "resourceType": "MedicationRequest", "id": f"order{index}", "status": "draft", "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"}, "authoredOn": "2026-05-18",
        "requester": {"reference": "PractitionerRole/role"},
        "dosageInstruction": [{"doseAndRate": [{"doseQuantity": dose}]}],
    }
    searchset = lambda resources: {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}
    return {
        "hook": "order-sign",
        "hookInstance": f"00000000-0000-4000-8000-{index:012d}",
        "fhirServer": "http://ehr.example/fhir",
        "context": {
            "userId": "Practitioner/doc", "patientId": patient,
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]},
        },
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": patient, "birthDate": "1966-02-11"},
            "coverage": {
                "resourceType": "Coverage", "id": f"cov{index}", "status": "active",
                "beneficiary": {"reference": f"Patient/{patient}"}, "payor": [{"reference": "Organization/payer"}],
                "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]}, "value": plan}],
            },
            "conditions": searchset([{
                "resourceType": "Condition", "id": f"dx{index}", "subject": {"reference": f"Patient/{patient}"},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": icd10}]},
            }]),
            "observations": searchset([
                observation("weight", "29463-7", quantity(71, "kg")),
                observation("height", "8302-2", quantity(168, "cm")),
            ]),
            "practitionerRoles": searchset([{
                "resourceType": "PractitionerRole", "id": "role", "practitioner": {"reference": "Practitioner/doc"},
                "specialty": [{"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "207RH0000X"}]}],
            }]),
        },
    }


def crd_fetch_hook(hook, chart_base, token):
    """The same hook with no prefetch: the service reads the chart from `chart_base`
    (bench/chart-server, which answers what the prefetch held) with the EHR's token, as an EHR
    that prefetches nothing asks."""
    hook = {k: v for k, v in hook.items() if k != "prefetch"}
    hook["fhirServer"] = chart_base
    hook["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                 "scope": "system/*.read", "subject": "priorauth"}
    return hook


def cmd_fhir_bodies(args):
    """CRD hook candidates (with prefetch, and without it for the chart server), and the PAS
    request Bundles of tests/fhir/cases: as they are (posted once each by fhir-accept) and as
    templates for fresh identifiers."""
    with open(args.crd_out, "w", encoding="utf-8") as f, open(args.crd_fetch_out, "w", encoding="utf-8") as fetch:
        for index, (plan, drug, icd10, _) in enumerate(CRD_ORDERS):
            hook = crd_hook(index, plan, drug, icd10)
            f.write(compact(hook) + "\n")
            fetch.write(compact(crd_fetch_hook(hook, args.chart_base, args.chart_token)) + "\n")
    names = sorted(n for n in os.listdir(args.pas_cases) if n.endswith(".json"))
    with open(args.pas_out, "w", encoding="utf-8") as f:
        for name in names:
            with open(os.path.join(args.pas_cases, name), encoding="utf-8") as b:
                bundle = json.load(b)
            f.write(compact(bundle) + "\n")
    print(compact({"crd": len(CRD_ORDERS), "pas": len(names)}))


def post_json(url, key, body):
    request = urllib.request.Request(
        url, data=body.encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, None


def coverage_codes(answer):
    """The `pa-needed` (else `covered`) code of each systemAction of a CRD answer."""
    codes = []
    for action in answer.get("systemActions", []):
        for ext in action.get("resource", {}).get("extension", []):
            if ext.get("url", "").endswith("ext-coverage-information"):
                parts = {p.get("url"): p.get("valueCode") for p in ext.get("extension", [])}
                codes.append(parts.get("pa-needed") or parts.get("covered") or "?")
    return codes or ["no card"]


def review_action(bundle):
    """The X12 review action code (A1 approved, A4 pended, ...) of a PAS response Bundle."""
    try:
        claim_response = bundle["entry"][0]["resource"]
        action = claim_response["item"][0]["adjudication"][0]["extension"][0]
        for part in action["extension"]:
            if part.get("url", "").endswith("extension-reviewActionCode"):
                return part["valueCodeableConcept"]["coding"][0]["code"]
    except (KeyError, IndexError, TypeError):
        pass
    return "?"


def cmd_fhir_accept(args):
    """Posts each CRD candidate and each PAS Bundle once; keeps those answered 200.

    Writes the kept CRD hooks (oha -Z lines), the kept PAS Bundles as they are (now
    stored: every later post of one is a replay) and the same Bundles as templates whose
    identifiers fhir-lines replaces."""
    summary = {"pas": {"posted": 0, "kept": 0, "review_actions": {}, "rejected": {}}}
    for name, candidates, bodies in (("crd", args.crd_candidates, args.crd_bodies),
                                     ("crd_fetch", args.crd_fetch_candidates, args.crd_fetch_bodies)):
        tally = summary[name] = {"posted": 0, "kept": 0, "answers": {}, "rejected": {}}
        with open(candidates, encoding="utf-8") as f, open(bodies, "w", encoding="utf-8") as out:
            for line in (l.strip() for l in f if l.strip()):
                tally["posted"] += 1
                status, answer = post_json(args.base + "/cds-services/order-sign-crd", args.key, line)
                if status == 200:
                    tally["kept"] += 1
                    for code in coverage_codes(answer):
                        tally["answers"][code] = tally["answers"].get(code, 0) + 1
                    out.write(line + "\n")
                else:
                    tally["rejected"][str(status)] = tally["rejected"].get(str(status), 0) + 1
    if summary["crd_fetch"]["answers"] != summary["crd"]["answers"]:
        sys.exit(f"fhir-accept: the hooks read from the chart server were answered otherwise than with prefetch: {summary}")
    with open(args.pas_candidates, encoding="utf-8") as f, open(args.pas_replays, "w", encoding="utf-8") as replays, open(args.pas_templates, "w", encoding="utf-8") as templates:
        for line in (l.strip() for l in f if l.strip()):
            summary["pas"]["posted"] += 1
            status, answer = post_json(args.base + "/fhir/Claim/$submit", args.key, line)
            if status != 200:
                summary["pas"]["rejected"][str(status)] = summary["pas"]["rejected"].get(str(status), 0) + 1
                continue
            summary["pas"]["kept"] += 1
            code = review_action(answer)
            summary["pas"]["review_actions"][code] = summary["pas"]["review_actions"].get(code, 0) + 1
            replays.write(line + "\n")
            bundle = json.loads(line)
            bundle["identifier"]["value"] = BUNDLE_ID
            bundle["entry"][0]["resource"]["identifier"][0]["value"] = CLAIM_ID
            template = compact(bundle)
            if template.count(BUNDLE_ID) != 1 or template.count(CLAIM_ID) != 1:
                sys.exit("fhir-accept: a PAS Bundle already holds the identifier placeholders")
            templates.write(template + "\n")
    print(compact(summary))


def cmd_fhir_lines(args):
    """COUNT PAS request lines from the templates in turn, each with fresh identifiers."""
    with open(args.templates, encoding="utf-8") as f:
        templates = [l.strip() for l in f if l.strip()]
    if not templates:
        sys.exit("fhir-lines: no templates")
    with open(args.out, "w", encoding="utf-8") as out:
        for i in range(args.count):
            unique = uuid.uuid4()
            out.write(templates[i % len(templates)].replace(BUNDLE_ID, f"urn:uuid:{unique}").replace(CLAIM_ID, f"bench-{unique.hex}") + "\n")
    print(args.count)


def cmd_counts(args):
    """Rows of the tables a submission writes and audit entries by action, as JSON. Read by
    another process than the server (WAL readers see commits)."""
    query = (
        "SELECT 'requests', count(*) FROM requests UNION ALL SELECT 'fhir_claims', count(*) FROM fhir_claims "
        "UNION ALL SELECT 'authorizations', count(*) FROM authorizations "
        "UNION ALL SELECT 'audit ' || action, count(*) FROM audit_log GROUP BY action"
    )
    if args.sqlite:
        connection = sqlite3.connect(f"file:{args.sqlite}?mode=ro", uri=True, timeout=30)
        try:
            rows = connection.execute(query).fetchall()
        finally:
            connection.close()
    else:
        out = subprocess.run(args.psql.split() + ["-qAtF", "\t", "-c", query], check=True, capture_output=True, text=True).stdout
        rows = [(k, int(v)) for k, _, v in (line.rpartition("\t") for line in out.splitlines() if line.strip())]
    print(compact({name: int(count) for name, count in rows}))


# ---- small tools ----


def cmd_freeport(_args):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def cmd_count_sqlite(args):
    """Rows in `requests`, read by another process than the server (WAL readers see commits)."""
    connection = sqlite3.connect(f"file:{args.path}?mode=ro", uri=True, timeout=30)
    try:
        print(connection.execute(f"SELECT count(*) FROM {args.table}").fetchone()[0])
    finally:
        connection.close()


def cmd_fsync(args):
    """Latency of one 8 KiB write + fdatasync in DIR (what one commit's log flush costs)."""
    fd, path = tempfile.mkstemp(dir=args.dir)
    samples = []
    try:
        block = b"\0" * 8192
        for i in range(args.count):
            os.pwrite(fd, block, (i % 64) * 8192)
            start = time.perf_counter()
            os.fdatasync(fd)
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    samples.sort()
    p = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    print(compact({"n": len(samples), "p50_ms": round(p(0.5), 3), "p99_ms": round(p(0.99), 3), "max_ms": round(samples[-1], 3)}))


def cmd_time(args):
    """Best wall time of `sh -c COMMAND` over N runs, with the cases/s it means."""
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        subprocess.run(["sh", "-c", args.command], check=True)
        times.append(time.perf_counter() - start)
    best = min(times)
    print(compact({"lines": args.lines, "best_s": round(best, 4), "median_s": round(statistics.median(times), 4), "cases_per_s": round(args.lines / best, 1)}))


def cmd_quiet(args):
    """Waits (at most --max seconds) until the machine is at least --idle % idle over two
    windows of --window seconds in a row. Prints the last idle share; never fails."""
    def read():
        with open("/proc/stat", encoding="utf-8") as f:
            cpu = [int(x) for x in f.readline().split()[1:9]]
        return cpu[3] + cpu[4], sum(cpu)
    deadline = time.monotonic() + args.max
    streak, idle = 0, 0.0
    while True:
        i1, t1 = read()
        time.sleep(args.window)
        i2, t2 = read()
        idle = 100 * (i2 - i1) / max(1, t2 - t1)
        streak = streak + 1 if idle >= args.idle else 0
        if streak >= 2 or time.monotonic() >= deadline:
            break
    print(f"{idle:.0f}")


# ---- one measured phase ----


def ticks_of(stat_path):
    """utime + stime of a /proc/.../stat file, in clock ticks (0 if it is gone)."""
    try:
        with open(stat_path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return 0, ""
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12]), name


def snapshot(server_pid, pg_db):
    with open("/proc/stat", encoding="utf-8") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    idle = cpu[3] + cpu[4]  # idle + iowait
    total = sum(cpu[:8])
    iowait = cpu[4]
    proc, _ = ticks_of(f"/proc/{server_pid}/stat")
    threads = {}
    task_dir = f"/proc/{server_pid}/task"
    for tid in os.listdir(task_dir) if os.path.isdir(task_dir) else []:
        t, name = ticks_of(f"{task_dir}/{tid}/stat")
        threads[name] = threads.get(name, 0) + t
    postgres = 0
    if pg_db:
        # The backends serving the bench database (one per pooled connection).
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmdline.startswith("postgres: ") and f" {pg_db} " in cmdline:
                postgres += ticks_of(f"/proc/{pid}/stat")[0]
    return {"t": time.monotonic(), "busy": total - idle, "total": total, "iowait": iowait, "proc": proc, "threads": threads, "postgres": postgres}


class Sampler(threading.Thread):
    """What the server's threads (and the PostgreSQL backends) are doing during a run.

    Every 25 ms: the scheduler state of each server thread and backend (R running or
    runnable, S sleeping, D in uninterruptible wait, usually disk). Every 0.5 s, on
    PostgreSQL: pg_stat_activity's state and wait event for the bench database."""

    def __init__(self, server_pid, pg_db, psql):
        super().__init__(daemon=True)
        self.server_pid, self.pg_db, self.psql = server_pid, pg_db, psql
        self.stop = threading.Event()
        self.states = {}  # name -> state -> samples
        self.waits = {}  # "state wait" -> summed count
        self.wait_samples = 0
        self.backends = []

    def find_backends(self):
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmdline.startswith("postgres: ") and f" {self.pg_db} " in cmdline:
                found.append(pid)
        self.backends = found

    def state(self, path):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            return None, None
        return text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2]

    def add(self, name, state):
        group = self.states.setdefault(name, {})
        group[state] = group.get(state, 0) + 1

    def pg_waits(self):
        query = (
            "SELECT state || ' ' || coalesce(wait_event_type || ':' || wait_event, 'on CPU'), count(*) "
            f"FROM pg_stat_activity WHERE datname = '{self.pg_db}' AND pid <> pg_backend_pid() GROUP BY 1"
        )
        try:
            out = subprocess.run(self.psql + ["-qAtF", "\t", "-c", query], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return
        self.wait_samples += 1
        for line in out.splitlines():
            key, _, count = line.rpartition("\t")
            if key:
                self.waits[key] = self.waits.get(key, 0) + int(count)

    def run(self):
        tick = 0
        task_dir = f"/proc/{self.server_pid}/task"
        while not self.stop.wait(0.025):
            tick += 1
            try:
                tids = os.listdir(task_dir)
            except OSError:
                tids = []
            for tid in tids:
                name, state = self.state(f"{task_dir}/{tid}/stat")
                if name:
                    self.add(name, state)
            if self.pg_db:
                if tick % 40 == 1:
                    self.find_backends()
                for pid in self.backends:
                    name, state = self.state(f"/proc/{pid}/stat")
                    if name:
                        self.add("postgres backends", state)
                if tick % 20 == 10:
                    self.pg_waits()

    def summary(self):
        states = {}
        for name, counts in self.states.items():
            total = sum(counts.values())
            # Only the threads that did something: tokio's blocking pool idles in S.
            if total and counts.get("S", 0) < total:
                states[name] = {k: round(100 * v / total, 1) for k, v in sorted(counts.items())}
        waits = {k: round(v / self.wait_samples, 2) for k, v in sorted(self.waits.items(), key=lambda kv: -kv[1])} if self.wait_samples else {}
        return states, waits


def run_count(command):
    out = subprocess.run(["sh", "-c", command], check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1])


def run_counts(command):
    out = subprocess.run(["sh", "-c", command], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def cmd_measure(args):
    """Counts rows, runs the load tool, counts rows again; writes the phase as JSON."""
    rows_before = run_count(args.count_cmd) if args.count_cmd else None
    counts_before = run_counts(args.counts_cmd) if args.counts_cmd else None
    sampler = Sampler(args.server_pid, args.pg_db, args.psql.split() if args.psql else [])
    before = snapshot(args.server_pid, args.pg_db)
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    sampler.start()
    with open(args.raw, "w", encoding="utf-8") as raw:
        code = subprocess.run(args.tool, stdout=raw).returncode
    sampler.stop.set()
    sampler.join()
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = snapshot(args.server_pid, args.pg_db)
    states, waits = sampler.summary()
    rows_after = run_count(args.count_cmd) if args.count_cmd else None
    counts_after = run_counts(args.counts_cmd) if args.counts_cmd else None
    if code != 0:
        sys.exit(f"load tool exited {code}: {' '.join(args.tool)}")
    with open(args.raw, encoding="utf-8") as f:
        oha = json.load(f)

    statuses = {str(k): int(v) for k, v in oha.get("statusCodeDistribution", {}).items()}
    transport = {str(k): int(v) for k, v in oha.get("errorDistribution", {}).items()}
    # Answers with the expected status (201 for /v1/requests, 200 for the FHIR operations).
    ok = statuses.get(args.ok_status, 0)
    answered = sum(statuses.values())
    errors = answered - ok + sum(transport.values())
    elapsed = float(oha["summary"]["total"])
    pct = oha.get("latencyPercentiles", {})
    ms = lambda v: None if v is None else round(float(v) * 1000, 2)
    wall = after["t"] - before["t"]
    # The children are oha (and the sampler's psql calls, a few ms each).
    tool_cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
    sampler_cpu = (self_after.ru_utime - self_before.ru_utime) + (self_after.ru_stime - self_before.ru_stime)
    threads = {}
    for name, t in after["threads"].items():
        d = (t - before["threads"].get(name, 0)) / CLK_TCK
        if round(100 * d / wall, 1) > 0:
            threads[name] = round(100 * d / wall, 1)
    phase = {
        "backend": args.backend,
        "mode": args.mode,
        "target": args.target,
        "seconds": round(elapsed, 2),
        "sent": answered + sum(transport.values()),
        "ok_status": args.ok_status,
        "ok": ok,
        "rps": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        "endpoint": args.endpoint,
        "p50_ms": ms(pct.get("p50")),
        "p90_ms": ms(pct.get("p90")),
        "p99_ms": ms(pct.get("p99")),
        "p999_ms": ms(pct.get("p99.9")),
        "max_ms": ms(oha["summary"].get("slowest")),
        "errors": errors,
        "statuses": statuses,
        "transport_errors": transport,
        "rows_before": rows_before,
        "rows_after": rows_after,
        "rows_added": None if rows_before is None else rows_after - rows_before,
        "rows_ok": None if rows_before is None else (rows_after - rows_before == ok),
        "counts_delta": None if counts_before is None else {k: v - counts_before.get(k, 0) for k, v in counts_after.items() if v != counts_before.get(k, 0)},
        # CPU, in percent of one core (the machine has os.cpu_count() of them).
        "cpu_machine_pct": round(100 * (after["busy"] - before["busy"]) / max(1, after["total"] - before["total"]) * os.cpu_count(), 1),
        "iowait_pct": round(100 * (after["iowait"] - before["iowait"]) / max(1, after["total"] - before["total"]) * os.cpu_count(), 1),
        "cpu_server_pct": round(100 * (after["proc"] - before["proc"]) / CLK_TCK / wall, 1),
        "cpu_postgres_pct": round(100 * (after["postgres"] - before["postgres"]) / CLK_TCK / wall, 1) if args.pg_db else None,
        "cpu_tool_pct": round(100 * tool_cpu / wall, 1),
        "cpu_sampler_pct": round(100 * sampler_cpu / wall, 1),
        "server_threads_pct": dict(sorted(threads.items(), key=lambda kv: -kv[1])[:4]),
        "thread_states_pct": states,
        "pg_waits": waits,
    }
    others = phase["cpu_machine_pct"] - phase["cpu_server_pct"] - (phase["cpu_postgres_pct"] or 0) - phase["cpu_tool_pct"] - phase["cpu_sampler_pct"]
    phase["cpu_other_pct"] = round(max(0.0, others), 1)
    phase["wall_s"] = round(wall, 3)
    if ok:
        phase["server_cpu_ms_per_req"] = round(phase["cpu_server_pct"] * wall / 100 / ok * 1000, 3)
        # Per thread: the SQLite worker is one thread, so its time per request bounds the rate.
        phase["server_threads_ms_per_req"] = {name: round(pct * wall / 100 / ok * 1000, 3) for name, pct in phase["server_threads_pct"].items()}
        if args.pg_db:
            phase["postgres_cpu_ms_per_req"] = round(phase["cpu_postgres_pct"] * wall / 100 / ok * 1000, 3)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(compact(phase) + "\n")
    print(
        f"  {args.backend:<10} {args.mode:<16} {phase['rps']:>8} req/s  p50 {phase['p50_ms']} ms  p99 {phase['p99_ms']} ms  "
        f"max {phase['max_ms']} ms  errors {errors}  "
        + (f"rows +{phase['rows_added']} for {ok} x {args.ok_status} ({'ok' if phase['rows_ok'] else 'MISMATCH'})  " if rows_before is not None else f"{ok} x {args.ok_status}  ")
        + (f"counts {phase['counts_delta']}  " if counts_before is not None else "")
        + f"cpu: server {phase['cpu_server_pct']}%"
        + (f", postgres {phase['cpu_postgres_pct']}%" if args.pg_db else "")
        + f", oha {phase['cpu_tool_pct']}%, other processes {phase['cpu_other_pct']}%, machine {phase['cpu_machine_pct']}% of {os.cpu_count() * 100}%",
        flush=True,
    )


# ---- the summary ----


def fmt(value, digits=1):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def cmd_report(args):
    with open(args.meta, encoding="utf-8") as f:
        meta = json.load(f)
    phases = []
    if os.path.exists(args.phases):
        with open(args.phases, encoding="utf-8") as f:
            phases = [json.loads(line) for line in f if line.strip()]
    batch = meta.get("batch_one_policy", {}).get("cases_per_s")
    out = []
    w = out.append
    w(f"# Load benchmark of `POST /v1/requests`, {meta['date']}")
    w("")
    w(f"Command: `{meta['command']}` (commit {meta['commit']}{', with local changes' if meta.get('dirty') else ''}).")
    w(f"Machine: {meta['cpus']} cores, load average {meta['loadavg']} at start; load tool {meta['tool']}.")
    w(
        f"Mix: {meta['mix']['created']} distinct bodies (of {meta['mix']['posted']} candidates), oha picks one at random per request; "
        f"outcomes {', '.join(f'{k} {v}' for k, v in sorted(meta['mix']['outcomes'].items()))}."
    )
    w(f"Disk: 8 KiB write + fdatasync p50 {meta['fsync']['p50_ms']} ms, p99 {meta['fsync']['p99_ms']} ms (in the SQLite temp dir).")
    w("")
    w("| back end | mode | req/s (201) | p50 ms | p99 ms | p99.9 ms | max ms | errors | rows verified | × batch | server CPU | DB CPU | other CPU | machine CPU |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for p in phases:
        rows = "–" if p["rows_ok"] is None else f"{'yes' if p['rows_ok'] else 'NO'} ({p['rows_added']:,}/{p['ok']:,})"
        ratio = f"{p['rps'] / batch:.3f}" if batch else "–"
        w(
            f"| {p['backend']} | {p['mode']} | {fmt(p['rps'])} | {fmt(p['p50_ms'], 2)} | {fmt(p['p99_ms'], 2)} | {fmt(p['p999_ms'], 2)} | {fmt(p['max_ms'], 2)} "
            f"| {p['errors']:,} | {rows} | {ratio} | {fmt(p['cpu_server_pct'])}% | "
            f"{'–' if p['cpu_postgres_pct'] is None else fmt(p['cpu_postgres_pct']) + '%'} | {fmt(p['cpu_other_pct'])}% | {fmt(p['cpu_machine_pct'])}% |"
        )
    for key, label in (("batch_one_policy", "one policy (`--policy masshealth-all-single-agent`)"), ("batch_all_policies", "all five policies")):
        b = meta.get(key)
        if b:
            ratio = f"{b['cases_per_s'] / batch:.3f}" if batch else "–"
            w(f"| – | `evaluate --batch`, {label} | {fmt(b['cases_per_s'])} cases/s | | | | | | | {ratio} | | | | |")
    w("")
    w("- req/s counts 201 answers over the run's wall time; latencies are oha's, corrected for coordinated omission in the fixed-rate runs (`--latency-correction`: measured from when the request was due).")
    w("- errors: every request not answered 201 (other statuses, timeouts, connection errors).")
    w("- rows verified: rows added to `requests` during the run, counted in the database by another process, against the 201 answers oha counted.")
    w("- × batch: req/s divided by `priorauth evaluate --batch` cases/s on the same cases with the one policy the plan uses (output to /dev/null).")
    w(f"- CPU in percent of one core ({meta['cpus'] * 100}% is the whole machine): server = the priorauth process; DB = the PostgreSQL backends of the bench database; other = machine − server − DB − oha − the sampler: processes outside the benchmark (the machine is shared); machine = everything.")
    for p in phases:
        extra = []
        if p["transport_errors"]:
            extra.append(f"transport errors {p['transport_errors']}")
        if set(p["statuses"]) - {"201"}:
            extra.append(f"statuses {p['statuses']}")
        threads = ", ".join(f"{k} {v}%" for k, v in p["server_threads_pct"].items())
        per_req = f"server {p.get('server_cpu_ms_per_req', '–')} ms" + (f", PostgreSQL {p.get('postgres_cpu_ms_per_req', '–')} ms" if p["cpu_postgres_pct"] is not None else "")
        states = "; ".join(
            f"{name} " + "/".join(f"{k} {v}%" for k, v in st.items()) for name, st in p.get("thread_states_pct", {}).items()
        )
        w(
            f"- {p['backend']} / {p['mode']}: CPU per request {per_req}; oha {p['cpu_tool_pct']}%, other processes {p.get('cpu_other_pct', '–')}%, "
            f"iowait {p['iowait_pct']}%; busiest server threads (CPU): {threads}; thread states (R runnable, S sleeping, D disk wait): {states}"
            + (f"; PostgreSQL sessions by state and wait (mean count): {p['pg_waits']}" if p.get("pg_waits") else "")
            + (f"; {'; '.join(extra)}" if extra else "")
            + "."
        )
    noisy = [p for p in phases if p.get("cpu_other_pct", 0) > 20]
    if noisy:
        w("")
        w(
            "- **Disturbed**: processes outside the benchmark took more than 20% of a core during "
            + ", ".join(f"{p['backend']} / {p['mode']} ({p['cpu_other_pct']}%)" for p in noisy)
            + ": those figures understate what the service does on a quiet machine; run again."
        )
    checks = meta.get("checks", [])
    if checks:
        w("")
        for c in checks:
            w(
                f"- {c['backend']}, after the server stopped: {c['rows']:,} rows in `requests` for {c['created']:,} answers 201 in all "
                f"(warm-up included): {'equal' if c['rows'] == c['created'] else 'NOT EQUAL'}; `priorauth audit verify`: "
                f"{'intact' if c['audit_ok'] else 'FAILED'} ({c['audit']})."
            )
    target = meta.get("target_p99_ms")
    rate_rows = [p for p in phases if p["mode"].startswith("fixed") and p["target"] == meta["rate"]]
    if target and rate_rows:
        w("")
        for p in rate_rows:
            met = p["p99_ms"] is not None and p["p99_ms"] < target and p["errors"] == 0 and p["rps"] >= 0.98 * p["target"]
            w(f"- Aim (p99 under {target} ms at {p['target']:,.0f} req/s, no errors) on {p['backend']}: **{'met' if met else 'not met'}** (p99 {fmt(p['p99_ms'], 2)} ms, {fmt(p['rps'])} req/s, {p['errors']} errors).")
    text = "\n".join(out) + "\n"
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    sys.stdout.write(text)


def run_check(p):
    """Whether a run's database changes are what its answers say; (ok, text)."""
    d = p.get("counts_delta") or {}
    create, replay, read = d.get("audit request.create", 0), d.get("audit request.replay", 0), d.get("audit request.read", 0)
    ok = p["ok"]
    if p["endpoint"].startswith("PAS"):
        # The answer to a submission is recorded by its create or replay entry, not by a read
        # entry of its own (the binary of commit 46bf7a3 on; earlier ones wrote one per answer).
        good = create + replay == ok and d.get("fhir_claims", 0) == create and d.get("requests", 0) == create and read in (0, ok)
        return good, f"{create:,} new + {replay:,} replays = {ok:,} answers 200; +{d.get('fhir_claims', 0):,} fhir_claims rows"
    if p["endpoint"].startswith("CRD"):
        good = not any(d.get(k, 0) for k in ("requests", "fhir_claims", "authorizations"))
        return good, "nothing stored" if good else f"stored: {d}"
    good = d.get("requests", 0) == ok and create == ok
    return good, f"+{d.get('requests', 0):,} rows for {ok:,} answers 201"


def where_time_goes(p):
    threads = p.get("server_threads_ms_per_req")
    if threads is None and p.get("cpu_server_pct") and p.get("server_cpu_ms_per_req") and p["ok"]:
        # Runs recorded before `server_threads_ms_per_req` existed: the same figure from the
        # process's CPU per request and the threads' shares of it.
        threads = {k: round(v / p["cpu_server_pct"] * p["server_cpu_ms_per_req"], 3) for k, v in p["server_threads_pct"].items()}
    parts = ["threads " + ", ".join(f"{k} {v} ms" for k, v in (threads or {}).items() if v >= 0.05)]
    if p.get("postgres_cpu_ms_per_req") is not None:
        parts.append(f"PostgreSQL backends {p['postgres_cpu_ms_per_req']} ms")
    states = p.get("thread_states_pct", {})
    parts.append("states " + "; ".join(f"{name} " + "/".join(f"{k} {v}%" for k, v in st.items()) for name, st in states.items() if name != "priorauth"))
    if p.get("pg_waits"):
        parts.append("waits " + ", ".join(f"{k} {v}" for k, v in list(p["pg_waits"].items())[:4]))
    return "; ".join(parts)


def cmd_fhir_report(args):
    with open(args.meta, encoding="utf-8") as f:
        meta = json.load(f)
    with open(args.phases, encoding="utf-8") as f:
        phases = [json.loads(line) for line in f if line.strip()]
    baseline = {(p["backend"], p["mode"]): p for p in phases if p["endpoint"] == "/v1/requests"}
    ratio = lambda a, b: "–" if not a or not b else f"{a / b:.2f}"
    out = []
    w = out.append
    w(f"# Load benchmark of CRD and PAS, {meta['date']}")
    w("")
    w(f"Command: `{meta['command']}` (commit {meta['commit']}{', with local changes' if meta.get('dirty') else ''}).")
    w(
        f"Machine: {meta['cpus']} cores, shared. Load average (1, 5, 15 min) {meta['load_first']} when the script started; "
        f"it waited {meta['load_waited_s']} s for the 1-minute figure to fall under {meta['load_max']} and measured from {meta['load_start']}. "
        f"Busiest processes at the start: {meta['busiest_at_start']}. Load tool {meta['tool']}."
    )
    mix = meta["mix"]
    crd, pas, v1 = mix["fhir"]["crd"], mix["fhir"]["pas"], mix["v1"]
    w("")
    w("Bodies (oha sends one line of the endpoint's file per request, chosen at random):")
    w("")
    w(
        f"- `/v1/requests`, the baseline: {v1['created']} distinct cases (of {v1['posted']}), outcomes "
        + ", ".join(f"{k} {v}" for k, v in sorted(v1["outcomes"].items()))
        + "; every one a new request (no Idempotency-Key)."
    )
    w(
        f"- CRD `POST /cds-services/order-sign-crd`: {crd['kept']} order-sign hooks (of {crd['posted']}), each one MedicationRequest with "
        "prefetch (Patient, Coverage, Condition, weight and height Observations, PractitionerRole); answers "
        + ", ".join(f"`{k}` {v}" for k, v in sorted(crd["answers"].items()))
        + ". The orders: "
        + "; ".join(f"{plan} / {drug} / {icd}: {what}" for plan, drug, icd, what in CRD_ORDERS)
        + ". A hook carries records, not answers, and no record gives the ALL lineage every approving pathway needs, so no order is approved at order time and CRD stores nothing."
    )
    if "crd_fetch" in mix["fhir"]:
        fetch = mix["fhir"]["crd_fetch"]
        w(
            f"- CRD order-sign, *chart read*: the same {fetch['kept']} hooks with no prefetch (of {fetch['posted']}), answered alike ("
            + ", ".join(f"`{k}` {v}" for k, v in sorted(fetch["answers"].items()))
            + "): the service reads the patient, coverage, conditions, observations and prescriber roles from `fhirServer` with the hook's `fhirAuthorization` token, "
            "a local FHIR server (`bench/chart-server`, a small Rust server with keep-alive, its answers serialized at start) that answers each query with what that hook's prefetch held."
        )
    w(
        f"- PAS `POST /fhir/Claim/$submit`: the {pas['kept']} request Bundles of `tests/fhir/cases` (of {pas['posted']}), review actions "
        + ", ".join(f"{k} {v}" for k, v in sorted(pas["review_actions"].items()))
        + f". *new*: each run gets a file of those Bundles with fresh Bundle and Claim identifiers, {meta['pas_lines_factor']} lines per request it is to send "
        f"(at most {meta['pas_lines_max']:,}); a line oha happens to pick twice is a replay, and the database tells which: the *new / replays* column counts "
        "`request.create` and `request.replay` audit entries. *replay*: the Bundles as first posted, every request a replay of a stored submission."
    )
    w("")
    w("| back end | load | endpoint | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | new / replays | × /v1 p50 | × /v1 p99 | × /v1 req/s | server CPU ms/req | × /v1 CPU | other CPU |")
    w("|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for p in phases:
        base = baseline.get((p["backend"], p["mode"]))
        d = p.get("counts_delta") or {}
        replays = "–"
        if p["endpoint"].startswith("PAS"):
            replays = f"{d.get('audit request.create', 0):,} / {d.get('audit request.replay', 0):,}"
        is_base = p["endpoint"] == "/v1/requests"
        w(
            f"| {p['backend']} | {p['mode']} | {p['endpoint']} | {fmt(p['rps'])} | {fmt(p['p50_ms'], 2)} | {fmt(p['p90_ms'], 2)} | {fmt(p['p99_ms'], 2)} | {fmt(p['max_ms'], 2)} "
            f"| {p['errors']:,} | {replays} "
            f"| {'1' if is_base else ratio(p['p50_ms'], base and base['p50_ms'])} | {'1' if is_base else ratio(p['p99_ms'], base and base['p99_ms'])} "
            f"| {'1' if is_base else ratio(p['rps'], base and base['rps'])} "
            f"| {fmt(p.get('server_cpu_ms_per_req'), 3)} | {'1' if is_base else ratio(p.get('server_cpu_ms_per_req'), base and base.get('server_cpu_ms_per_req'))} "
            f"| {fmt(p['cpu_other_pct'])}% |"
        )
    w("")
    w("- req/s: answers 200 (201 for `/v1/requests`) over the run's wall time. Latencies are oha's; at fixed rates corrected for coordinated omission (`--latency-correction`: from when the request was due).")
    w("- errors: requests not answered 200 (201): other statuses, timeouts, connection errors.")
    w("- × /v1: the endpoint's figure divided by `/v1/requests`' in the same run, same back end, same load (below 1 is faster, or fewer req/s). At a fixed rate below saturation the req/s ratio is 1 by construction; the closed loop shows the throughput ratio.")
    w("- server CPU ms/req: CPU time of the priorauth process per answered request; × /v1 CPU is the clearest measure of the FHIR work (parsing and building FHIR), since it does not depend on queueing.")
    w(f"- other CPU: processes outside the benchmark during the run, in percent of one core ({meta['cpus'] * 100}% is the machine). The machine is shared.")
    noisy = [p for p in phases if p.get("cpu_other_pct", 0) > 20]
    if noisy:
        w(
            "- **Disturbed**: processes outside the benchmark took more than 20% of a core during "
            + ", ".join(f"{p['backend']} / {p['mode']} / {p['endpoint']} ({p['cpu_other_pct']}%)" for p in noisy)
            + "."
        )
    w("")
    w("Where the time goes, per run: CPU milliseconds per answered request of the server's busiest threads (tokio's workers do the HTTP, FHIR and JSON work; on SQLite one worker thread runs every statement, so its time per request bounds the rate) and of the PostgreSQL backends; the share of 25 ms samples in which they were runnable (R), sleeping (S) or in disk wait (D); on PostgreSQL the sessions' waits (mean count):")
    w("")
    for p in phases:
        w(f"- {p['backend']} / {p['mode']} / {p['endpoint']}: " + where_time_goes(p) + ".")
    w("")
    w("Checks, from the database (counted by another process before and after each run, and after the server stopped):")
    w("")
    for check in meta.get("checks", []):
        bad = []
        for run in check["runs"]:
            good, text = run_check({**run, "counts_delta": run["counts_delta"]})
            if not good:
                bad.append(f"{run['mode']} / {run['endpoint']}: {text}")
        pas_runs = [r for r in check["runs"] if r["endpoint"].startswith("PAS")]
        new = sum((r["counts_delta"] or {}).get("audit request.create", 0) for r in pas_runs)
        replays = sum((r["counts_delta"] or {}).get("audit request.replay", 0) for r in pas_runs)
        answered = sum(r["ok"] for r in pas_runs)
        grown = {k: check["after"].get(k, 0) - check["before"].get(k, 0) for k in ("requests", "fhir_claims")}
        summed = {k: sum((r["counts_delta"] or {}).get(k, 0) for r in check["runs"]) for k in ("requests", "fhir_claims")}
        w(
            f"- {check['backend']}: {answered:,} PAS answers 200 in all (warm-up included) = {new:,} new submissions + {replays:,} replays; "
            f"`fhir_claims` grew by {grown['fhir_claims']:,} rows (the runs' own counts: {summed['fhir_claims']:,}), `requests` by {grown['requests']:,} ({summed['requests']:,}): "
            + ("**every answer accounted for**" if not bad and grown == summed and grown["fhir_claims"] == new else "**MISMATCH**")
            + f"; `priorauth audit verify`: {'intact' if check['audit_ok'] else '**FAILED**'} ({check['audit']})."
        )
        for line in bad:
            w(f"  - MISMATCH {line}")
    target = meta.get("target_p99_ms")
    fixed = [p for p in phases if p["mode"].startswith("fixed") and p["endpoint"] != "/v1/requests"]
    if target and fixed:
        w("")
        w(f"Against the aim (p99 under {target:.0f} ms at the rate, no errors, at least 98% of the rate achieved; the CRD guide's limit is 5 s for 90% of calls):")
        w("")
        for p in fixed:
            met = p["p99_ms"] is not None and p["p99_ms"] < target and p["errors"] == 0 and p["rps"] >= 0.98 * p["target"]
            w(f"- {p['backend']}, {p['endpoint']}, {p['mode']}: **{'met' if met else 'not met'}** (p99 {fmt(p['p99_ms'], 2)} ms, p90 {fmt(p['p90_ms'], 2)} ms, {fmt(p['rps'])} req/s, {p['errors']} errors).")
    text = "\n".join(out) + "\n"
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    sys.stdout.write(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("bodies")
    p.add_argument("--binary", required=True)
    p.add_argument("--cases-dir", required=True)
    p.add_argument("--generated", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_bodies)

    p = sub.add_parser("accept")
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--candidates", required=True)
    p.add_argument("--bodies", required=True)
    p.add_argument("--cases", required=True)
    p.set_defaults(func=cmd_accept)

    p = sub.add_parser("batch-input")
    p.add_argument("--cases", required=True)
    p.add_argument("--lines", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_batch_input)

    p = sub.add_parser("freeport")
    p.set_defaults(func=cmd_freeport)

    p = sub.add_parser("count-sqlite")
    p.add_argument("path")
    p.add_argument("--table", default="requests", choices=["requests", "request_events", "audit_log", "authorizations"])
    p.set_defaults(func=cmd_count_sqlite)

    p = sub.add_parser("fsync")
    p.add_argument("dir")
    p.add_argument("--count", type=int, default=500)
    p.set_defaults(func=cmd_fsync)

    p = sub.add_parser("quiet")
    p.add_argument("--max", type=float, default=60)
    p.add_argument("--idle", type=float, default=85)
    p.add_argument("--window", type=float, default=3)
    p.set_defaults(func=cmd_quiet)

    p = sub.add_parser("time")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--lines", type=int, required=True)
    p.add_argument("command")
    p.set_defaults(func=cmd_time)

    p = sub.add_parser("measure")
    p.add_argument("--backend", required=True)
    p.add_argument("--mode", required=True)
    p.add_argument("--target", type=float, default=0)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--pg-db", default="")
    p.add_argument("--count-cmd", default="", help="prints a row count that must grow by one per answer OK_STATUS")
    p.add_argument("--counts-cmd", default="", help="prints a JSON object of counters; the run records their changes")
    p.add_argument("--ok-status", default="201")
    p.add_argument("--endpoint", default="/v1/requests")
    p.add_argument("--psql", default="", help="psql command line for pg_stat_activity samples")
    p.add_argument("--raw", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("tool", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("report")
    p.add_argument("--meta", required=True)
    p.add_argument("--phases", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("fhir-bodies")
    p.add_argument("--pas-cases", required=True)
    p.add_argument("--crd-out", required=True)
    p.add_argument("--crd-fetch-out", required=True)
    p.add_argument("--chart-base", required=True)
    p.add_argument("--chart-token", required=True)
    p.add_argument("--pas-out", required=True)
    p.set_defaults(func=cmd_fhir_bodies)

    p = sub.add_parser("fhir-accept")
    p.add_argument("--base", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--crd-candidates", required=True)
    p.add_argument("--crd-bodies", required=True)
    p.add_argument("--crd-fetch-candidates", required=True)
    p.add_argument("--crd-fetch-bodies", required=True)
    p.add_argument("--pas-candidates", required=True)
    p.add_argument("--pas-replays", required=True)
    p.add_argument("--pas-templates", required=True)
    p.set_defaults(func=cmd_fhir_accept)

    p = sub.add_parser("fhir-lines")
    p.add_argument("--templates", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_fhir_lines)

    p = sub.add_parser("counts")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--sqlite", help="the SQLite file")
    where.add_argument("--psql", help="psql command line for the bench database")
    p.set_defaults(func=cmd_counts)

    p = sub.add_parser("fhir-report")
    p.add_argument("--meta", required=True)
    p.add_argument("--phases", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_fhir_report)

    args = parser.parse_args()
    if getattr(args, "tool", None) and args.tool[0] == "--":
        args.tool = args.tool[1:]
    args.func(args)


if __name__ == "__main__":
    main()
