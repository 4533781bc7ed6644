#!/usr/bin/env python3
"""Helpers for bench/soak.sh: sample the server's memory and open files, write the report.

Standard library only.
"""

import argparse
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

# Growth between the first and the last quarter of a run above which it is reported.
RSS_TOLERANCE_PCT = 10.0
FILES_TOLERANCE = 2


def read_status(pid):
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        text = f.read()
    field = lambda name: int(re.search(rf"^{name}:\s+(\d+)", text, re.M).group(1))
    return field("VmRSS"), field("Threads")


def db_bytes(args):
    if args.sqlite:
        return sum(os.path.getsize(args.sqlite + s) for s in ("", "-wal", "-shm") if os.path.exists(args.sqlite + s))
    if args.pg_db:
        out = subprocess.run(
            args.psql.split() + ["-qAtc", f"SELECT pg_database_size('{args.pg_db}')"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        return int(out) if out.isdigit() else ""
    return ""


def open_files(pid):
    """Open file descriptors of the process: all of them, and how many are sockets."""
    fd_dir = f"/proc/{pid}/fd"
    total, sockets = 0, 0
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue  # closed meanwhile
        total += 1
        sockets += target.startswith("socket:")
    return total, sockets


def cmd_sample(args):
    """After --delay seconds (the load's connections open), every --interval seconds until
    the server exits or this is stopped (SIGTERM): seconds since the first sample, VmRSS
    (KiB), open file descriptors and how many of them are sockets, threads, database size."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    time.sleep(args.delay)
    start = time.monotonic()
    with open(args.out, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["seconds", "rss_kib", "open_files", "sockets", "threads", "db_bytes"])
        while True:
            try:
                rss, threads = read_status(args.pid)
                files, sockets = open_files(args.pid)
            except OSError:
                break
            out.writerow([round(time.monotonic() - start, 1), rss, files, sockets, threads, db_bytes(args)])
            f.flush()
            time.sleep(args.interval)


def quarters(values):
    """Mean of the first and of the last quarter."""
    q = max(1, len(values) // 4)
    first, last = values[:q], values[-q:]
    return sum(first) / len(first), sum(last) / len(last)


def slope_per_minute(xs, ys):
    """Least-squares slope of ys over xs (seconds), per minute."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def analyse(path):
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if len(rows) < 8:
        sys.exit(f"too few samples in {path}: {len(rows)}")
    t = [float(r["seconds"]) for r in rows]
    rss = [int(r["rss_kib"]) / 1024 for r in rows]
    files = [int(r["open_files"]) for r in rows]
    sockets = [int(r["sockets"]) for r in rows]
    threads = [int(r["threads"]) for r in rows]
    db = [int(r["db_bytes"]) for r in rows if r["db_bytes"]]
    rss_first, rss_last = quarters(rss)
    files_first, files_last = quarters(files)
    # The slope over the last three quarters: past the warm-up of caches and pools.
    tail = len(rows) // 4
    result = {
        "samples": len(rows),
        "seconds": t[-1],
        "rss_first_mib": rss_first,
        "rss_last_mib": rss_last,
        "rss_growth_pct": 100 * (rss_last - rss_first) / rss_first,
        "rss_min_mib": min(rss),
        "rss_max_mib": max(rss),
        "rss_slope_mib_per_min": slope_per_minute(t[tail:], rss[tail:]),
        "files_first": files_first,
        "files_last": files_last,
        "files_growth_pct": 100 * (files_last - files_first) / files_first,
        "files_min": min(files),
        "files_max": max(files),
        "sockets_min": min(sockets),
        "sockets_max": max(sockets),
        "threads_min": min(threads),
        "threads_max": max(threads),
        "db_first_mib": db[0] / 2**20 if db else None,
        "db_last_mib": db[-1] / 2**20 if db else None,
    }
    result["holds"] = result["rss_growth_pct"] < RSS_TOLERANCE_PCT and files_last - files_first <= FILES_TOLERANCE
    return result


def verdict_line(backend, a):
    return (
        f"{backend}: RSS {a['rss_first_mib']:.1f} MiB (first quarter) -> {a['rss_last_mib']:.1f} MiB (last quarter), "
        f"{a['rss_growth_pct']:+.1f}%; open files {a['files_first']:.1f} -> {a['files_last']:.1f}, {a['files_growth_pct']:+.1f}%: "
        + ("neither grows" if a["holds"] else "GROWS")
    )


def cmd_verdict(args):
    print(verdict_line(args.backend, analyse(args.samples)))


def cmd_report(args):
    with open(args.meta, encoding="utf-8") as f:
        meta = json.load(f)
    with open(args.phases, encoding="utf-8") as f:
        phases = {p["backend"]: p for p in map(json.loads, filter(str.strip, f))}
    out = []
    w = out.append
    w(f"# Soak of `priorauth serve`, {meta['date']}")
    w("")
    w(f"Command: `{meta['command']}` (commit {meta['commit']}{', with local changes' if meta.get('dirty') else ''}).")
    w(f"Machine: {meta['cpus']} cores (shared), load average {meta['loadavg']} at start; load tool {meta['tool']}; release build.")
    w("")
    w(
        f"One hour's traffic at {meta['hour_rate']} requests/s ({meta['requests']:,} `POST /v1/requests`) sent at a fixed "
        f"{meta['rate']} requests/s, so about {meta['requests'] / meta['rate']:,.0f} s per back end, "
        f"with reviewers reading `GET /v1/queue` at {meta['queue_rate']}/s meanwhile. "
        f"The server's VmRSS and open file descriptors (`/proc/PID/status`, `/proc/PID/fd`) sampled every {meta['interval']} s "
        "from 3 s into the run (when oha's connections are open; the sockets are those connections, the database's and the listener); "
        "growth is the mean of the last quarter of the samples against the first."
    )
    w("")
    w("| back end | requests answered 201 | req/s | p50 ms | p99 ms | max ms | errors | rows verified | queue reads (200) | RSS first → last quarter MiB | RSS growth | RSS slope, last ¾ | open files first → last quarter | of which sockets | threads | database |")
    w("|---|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---|---|---|---|")
    verdicts = []
    for check in meta["checks"]:
        backend = check["backend"]
        p = phases[backend]
        a = analyse(check["csv"])
        q = check.get("queue", {})
        rows = f"{'yes' if p['rows_ok'] else 'NO'} ({p['rows_added']:,}/{p['ok']:,})"
        db = "–" if a["db_first_mib"] is None else f"{a['db_first_mib']:.0f} → {a['db_last_mib']:.0f} MiB"
        w(
            f"| {backend} | {p['ok']:,} | {p['rps']:,.1f} | {p['p50_ms']} | {p['p99_ms']} | {p['max_ms']} | {p['errors']:,} | {rows} "
            f"| {q.get('ok', 0):,} of {q.get('sent', 0):,} | {a['rss_first_mib']:.1f} → {a['rss_last_mib']:.1f} | {a['rss_growth_pct']:+.1f}% "
            f"| {a['rss_slope_mib_per_min']:+.3f} MiB/min | {a['files_first']:.1f} → {a['files_last']:.1f} | {a['sockets_min']}–{a['sockets_max']} | {a['threads_min']}–{a['threads_max']} | {db} |"
        )
        verdicts.append(verdict_line(backend, a))
    w("")
    for check in meta["checks"]:
        w(
            f"- {check['backend']}, after the server stopped: {check['rows']:,} rows in `requests` for {check['created']:,} answers 201 in all "
            f"(warm-up included): {'equal' if check['rows'] == check['created'] else 'NOT EQUAL'}; `priorauth audit verify`: "
            f"{'intact' if check['audit_ok'] else 'FAILED'} ({check['audit']}). Samples: `{os.path.basename(check['csv'])}`."
        )
    w("")
    for backend, p in phases.items():
        db_cpu = "" if p.get("cpu_postgres_pct") is None else f", PostgreSQL {p['cpu_postgres_pct']}%"
        w(
            f"- {backend}: CPU in percent of one core, server {p['cpu_server_pct']}%{db_cpu}, oha {p['cpu_tool_pct']}%, "
            f"other processes {p['cpu_other_pct']}%, machine {p['cpu_machine_pct']}% of {meta['cpus'] * 100}%."
            + (
                " **Disturbed**: processes outside the soak took more than 20% of a core, so its latencies are the"
                " machine's as much as the service's; memory and open files are not affected."
                if p["cpu_other_pct"] > 20
                else ""
            )
        )
    w("")
    for line in verdicts:
        w(f"- **Verdict** {line}.")
    w(
        f"- A run holds when RSS grows less than {RSS_TOLERANCE_PCT:.0f}% and open files by at most {FILES_TOLERANCE} between the "
        "first and the last quarter. The database grows with the records, as it should; the server's memory does not follow it."
    )
    text = "\n".join(out) + "\n"
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    sys.stdout.write(text)


def cmd_oha_statuses(args):
    """Requests sent and answered 200 by an oha JSON report."""
    with open(args.path, encoding="utf-8") as f:
        report = json.load(f)
    statuses = {str(k): int(v) for k, v in report.get("statusCodeDistribution", {}).items()}
    errors = sum(int(v) for v in report.get("errorDistribution", {}).values())
    print(json.dumps({"sent": sum(statuses.values()) + errors, "ok": statuses.get("200", 0), "statuses": statuses, "errors": errors}))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--interval", type=float, default=5)
    p.add_argument("--delay", type=float, default=3)
    p.add_argument("--sqlite", default="", help="the SQLite file, for its size")
    p.add_argument("--pg-db", default="")
    p.add_argument("--psql", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("verdict")
    p.add_argument("--backend", required=True)
    p.add_argument("samples")
    p.set_defaults(func=cmd_verdict)

    p = sub.add_parser("oha-statuses")
    p.add_argument("path")
    p.set_defaults(func=cmd_oha_statuses)

    p = sub.add_parser("report")
    p.add_argument("--meta", required=True)
    p.add_argument("--phases", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_report)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
