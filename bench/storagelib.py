#!/usr/bin/env python3
"""Helpers for bench/storage.sh: the database's size in all and per table, the request ids
to read, one checked read of each, the report, and the comparison of two runs.

Standard library only. Every subcommand prints what the shell script needs on stdout;
errors go to stderr with a non-zero exit.
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request

from loadlib import compact, fmt

# The outcomes of the mix, in the order the report gives them.
OUTCOMES = ("approve", "review", "deny", "incomplete")
# What a request may take on disk, and a read's p99 (the aim).
AIM_BYTES = 2048
AIM_READ_P99_MS = 1.0
# Tables whose text columns get an average length in the report: what a submission writes.
COLUMN_TABLES = ("requests", "request_events", "audit_log")


# ---- the database ----


class Sqlite:
    """The SQLite file, opened read-write (the server has stopped) or read-only."""

    def __init__(self, path, readonly=False):
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        self.path = path
        self.connection = sqlite3.connect(uri, uri=True, timeout=30)

    def rows(self, sql):
        return [tuple(r) for r in self.connection.execute(sql).fetchall()]

    def close(self):
        self.connection.close()


class Postgres:
    """The bench database, through psql (one process per query)."""

    def __init__(self, psql):
        self.psql = psql.split()

    def rows(self, sql):
        out = subprocess.run(self.psql + ["-qAtF", "\t", "-c", sql], check=True, capture_output=True, text=True, timeout=600).stdout
        return [tuple(line.split("\t")) for line in out.splitlines() if line.strip()]

    def close(self):
        pass


def open_db(args, readonly=False):
    return Sqlite(args.sqlite, readonly) if args.sqlite else Postgres(args.psql)


def row_counts(db, tables):
    if not tables:
        return {}
    sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM \"{t}\"" for t in tables)
    return {name: int(n) for name, n in db.rows(sql)}


def column_lengths(db, table, columns):
    """Mean bytes per row of each text column (SQLite: as stored; PostgreSQL: as stored,
    compressed or not, and the length of the text)."""
    if not columns:
        return {}
    if isinstance(db, Sqlite):
        parts = [f"avg(length(CAST(\"{c}\" AS BLOB)))" for c in columns]
    else:
        parts = [
            f"avg(pg_column_size(\"{c}\")), avg(octet_length(\"{c}\")), "
            f"coalesce(string_agg(DISTINCT pg_column_compression(\"{c}\"), ','), '')"
            for c in columns
        ]
    (row,) = db.rows(f"SELECT count(*), {', '.join(parts)} FROM \"{table}\"")
    if int(row[0]) == 0:
        return {}
    number = lambda v: round(float(v), 1) if v not in (None, "") else 0.0
    if isinstance(db, Sqlite):
        return {c: {"stored": number(v)} for c, v in zip(columns, row[1:])}
    return {
        c: {"stored": number(row[1 + 3 * i]), "text": number(row[2 + 3 * i]), "compression": row[3 + 3 * i]}
        for i, c in enumerate(columns)
    }


def sqlite_size(path):
    """After the server has stopped: the WAL checkpointed into the file and truncated, then
    the file's size, the pages in use, and each table's pages (its indexes included) from
    the dbstat virtual table."""
    db = Sqlite(path)
    try:
        busy, _, _ = db.rows("PRAGMA wal_checkpoint(TRUNCATE)")[0]
        if busy:
            sys.exit(f"size: the WAL of {path} could not be checkpointed (busy): is the server still running?")
        (page_size,) = db.rows("PRAGMA page_size")[0]
        (page_count,) = db.rows("PRAGMA page_count")[0]
        (freelist,) = db.rows("PRAGMA freelist_count")[0]
        tables = {}
        for table, total, data, payload in db.rows(
            "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize), "
            "sum(CASE WHEN d.name = coalesce(m.tbl_name, d.name) THEN d.pgsize ELSE 0 END), sum(d.payload) "
            "FROM dbstat d LEFT JOIN sqlite_schema m ON m.name = d.name GROUP BY 1"
        ):
            tables[table] = {"bytes": total, "heap": data, "indexes": total - data, "toast": 0, "payload": payload}
        counts = row_counts(db, [t for t in tables if not t.startswith("sqlite_")])
        for table, n in counts.items():
            tables[table]["rows"] = n
        columns = {}
        for table in COLUMN_TABLES:
            if table in tables:
                names = [name for _, name, kind, *_ in db.rows(f"PRAGMA table_info(\"{table}\")") if kind.upper() == "TEXT"]
                columns[table] = column_lengths(db, table, names)
    finally:
        db.close()
    wal = path + "-wal"
    file_bytes = os.path.getsize(path)
    return {
        "bytes": file_bytes,
        "file_bytes": file_bytes,
        "wal_bytes": os.path.getsize(wal) if os.path.exists(wal) else 0,
        "used_bytes": (page_count - freelist) * page_size,
        "page_size": page_size,
        "tables": tables,
        "columns": columns,
    }


def pg_size(psql):
    """pg_database_size, and per table pg_total_relation_size with its parts: the heap (main,
    free space and visibility map forks), the indexes and the TOAST table with its index."""
    db = Postgres(psql)
    (total,) = db.rows("SELECT pg_database_size(current_database())")[0]
    tables = {}
    for name, size, indexes, toast in db.rows(
        "SELECT c.relname, pg_total_relation_size(c.oid), pg_indexes_size(c.oid), "
        "coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) "
        "FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace"
    ):
        size, indexes, toast = int(size), int(indexes), int(toast)
        tables[name] = {"bytes": size, "heap": size - indexes - toast, "indexes": indexes, "toast": toast}
    for table, n in row_counts(db, sorted(tables)).items():
        tables[table]["rows"] = n
    columns = {}
    for table in COLUMN_TABLES:
        if table in tables:
            names = [n for (n,) in db.rows(
                "SELECT column_name FROM information_schema.columns "
                f"WHERE table_schema = 'public' AND table_name = '{table}' AND data_type = 'text' ORDER BY ordinal_position"
            )]
            columns[table] = column_lengths(db, table, names)
    (compression,) = db.rows("SHOW default_toast_compression")[0]
    return {"bytes": int(total), "tables": tables, "columns": columns, "server_default_toast_compression": compression}


def cmd_size(args):
    print(compact(sqlite_size(args.sqlite) if args.sqlite else pg_size(args.psql)))


def cmd_exec(args):
    """Runs SQL on the database (the server stopped): READ_SETUP_SQL."""
    if args.sqlite:
        connection = sqlite3.connect(args.sqlite, timeout=30)
        try:
            connection.executescript(args.sql)
            connection.commit()
        finally:
            connection.close()
    else:
        subprocess.run(args.psql.split() + ["-qAt", "-v", "ON_ERROR_STOP=1", "-c", args.sql], check=True, timeout=600)


# ---- reads ----


def cmd_pick_ids(args):
    """Up to N request ids per outcome (the lowest ids: random, so a sample), as JSON
    {outcome: [id, ...]}, and the URLs of them all and of each outcome, one a line (oha's
    --urls-from-file) in OUT_DIR/urls-all.txt and urls-<outcome>.txt."""
    db = open_db(args, readonly=True)
    try:
        rows = db.rows(
            "SELECT outcome, id FROM (SELECT outcome, id, row_number() OVER (PARTITION BY outcome ORDER BY id) AS n "
            f"FROM requests) t WHERE n <= {int(args.per_outcome)} ORDER BY outcome, id"
        )
    finally:
        db.close()
    ids = {}
    for outcome, rid in rows:
        ids.setdefault(outcome, []).append(rid)
    for name, group in [("all", [i for g in ids.values() for i in g])] + sorted(ids.items()):
        with open(os.path.join(args.out_dir, f"urls-{name}.txt"), "w", encoding="utf-8") as f:
            for rid in group:
                f.write(f"{args.base}/v1/requests/{rid}\n")
    print(compact(ids))


def cmd_check_reads(args):
    """Reads each picked request once: status, size of the answer, and on a service that
    recomputes decisions whether each decision event says it recomputed to the decision
    answered (`decision_verified`)."""
    with open(args.ids, encoding="utf-8") as f:
        ids = json.load(f)
    summary = {}
    for outcome, group in sorted(ids.items()):
        s = summary.setdefault(outcome, {"ids": 0, "ok": 0, "statuses": {}, "bytes": 0, "events": 0, "verified": 0, "not_verified": 0})
        for rid in group:
            request = urllib.request.Request(f"{args.base}/v1/requests/{rid}", headers={"Authorization": f"Bearer {args.key}"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status, body = response.status, response.read()
            except urllib.error.HTTPError as error:
                status, body = error.code, b""
            s["ids"] += 1
            s["statuses"][str(status)] = s["statuses"].get(str(status), 0) + 1
            if status != 200:
                continue
            s["ok"] += 1
            s["bytes"] += len(body)
            answer = json.loads(body)
            for event in answer.get("history", []):
                s["events"] += 1
                if event.get("decision_verified") is True:
                    s["verified"] += 1
                elif event.get("decision_verified") is False:
                    s["not_verified"] += 1
    for s in summary.values():
        s["mean_bytes"] = round(s["bytes"] / s["ok"]) if s["ok"] else None
    print(compact(summary))


# ---- the report ----


def per_request(full, empty, created):
    return (full - empty) / created if created else None


def backend_figures(entry):
    """Bytes per request in all and per table, from one back end's sizes."""
    empty, full, created = entry["empty"], entry["full"], entry["created"]
    figures = {"bytes_per_request": per_request(full["bytes"], empty["bytes"], created), "tables": {}}
    if "used_bytes" in full:
        figures["used_bytes_per_request"] = per_request(full["used_bytes"], empty["used_bytes"], created)
    for table, t in sorted(full["tables"].items(), key=lambda kv: -kv[1]["bytes"]):
        e = empty["tables"].get(table, {})
        grown = t["bytes"] - e.get("bytes", 0)
        figures["tables"][table] = {
            "rows": t.get("rows"),
            "rows_added": None if t.get("rows") is None else t["rows"] - e.get("rows", 0),
            "grown": grown,
            "per_request": per_request(t["bytes"], e.get("bytes", 0), created),
            **{part: per_request(t[part], e.get(part, 0), created) for part in ("heap", "indexes", "toast")},
        }
    return figures


def load_run(args):
    """A run's meta (JSON), sizes (one JSON line per back end) and phases (one per oha run)."""
    with open(args.meta, encoding="utf-8") as f:
        meta = json.load(f)
    lines = lambda path: [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()] if os.path.exists(path) else []
    return meta, lines(args.sizes), lines(args.phases)


def cmd_report(args):
    meta, sizes, phases = load_run(args)
    out = []
    w = out.append
    w(f"# Bytes stored per request and read latency, {meta['date']}")
    w("")
    w(f"Command: `{meta['command']}`; binary {meta['binary']} ({meta['label'] or 'no label'}; tree at commit {meta['commit']}{', with local changes' if meta.get('dirty') else ''}).")
    w(f"Machine: {meta['cpus']} cores, shared; load average {meta['loadavg']} at start; load tool {meta['tool']}.")
    mix = sizes[0]["mix"] if sizes else None
    if mix:
        w(
            f"Bodies: the mix of `bench/load.sh`, {mix['created']} distinct cases (of {mix['posted']}) posted once each, then "
            f"`oha -n {meta['requests'] - mix['posted']:,} -c {meta['connections']}` picking one at random per request; outcomes of the distinct cases "
            + ", ".join(f"{k} {v}" for k, v in sorted(mix["outcomes"].items()))
            + "."
        )
    w("")
    w("Bytes per request = (size after the requests − size of the same database before them, migrated, one key) / requests answered 201, with the server stopped. "
      "SQLite: the file after `PRAGMA wal_checkpoint(TRUNCATE)`, and the pages in use ((page_count − freelist_count) × page_size). "
      "PostgreSQL: `pg_database_size`; per table `pg_total_relation_size` (heap with its free-space and visibility maps, indexes, TOAST).")
    w("")
    w("| back end | answered 201 | rows in `requests` | errors | submit req/s | empty | after | **bytes / request** | pages in use / request | aim ≤ 2,048 B |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for entry in sizes:
        f = backend_figures(entry)
        submit = entry.get("submit") or {}
        w(
            f"| {entry['backend']} | {entry['created']:,} | {entry['rows']:,} ({'equal' if entry['rows'] == entry['created'] else '**NOT EQUAL**'}) "
            f"| {submit.get('errors', '–')} | {fmt(submit.get('rps'))} | {entry['empty']['bytes']:,} | {entry['full']['bytes']:,} | **{fmt(f['bytes_per_request'], 0)}** "
            f"| {fmt(f.get('used_bytes_per_request'), 0)} | {'met' if f['bytes_per_request'] is not None and f['bytes_per_request'] <= AIM_BYTES else '**not met**'} |"
        )
    for entry in sizes:
        f = backend_figures(entry)
        w("")
        w(f"Per table, {entry['backend']} (growth over the empty database, per request answered 201; tables that did not grow left out):")
        w("")
        w("| table | rows | rows added | grown, bytes | bytes / request | heap | indexes | TOAST |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        for table, t in f["tables"].items():
            if t["grown"] == 0:
                continue
            w(
                f"| `{table}` | {fmt(t['rows'])} | {fmt(t['rows_added'])} | {t['grown']:,} | {fmt(t['per_request'], 0)} "
                f"| {fmt(t['heap'], 0)} | {fmt(t['indexes'], 0)} | {fmt(t['toast'], 0)} |"
            )
        columns = entry["full"].get("columns", {})
        if columns:
            w("")
            w(
                "Mean bytes per row of the text columns"
                + (" (as stored, after compression where PostgreSQL compressed; in brackets, where it differs, the text's length and the compression methods found)" if entry["backend"] == "postgres" else "")
                + ": "
                + "; ".join(
                    f"`{table}` "
                    + ", ".join(
                        f"{c} {fmt(v['stored'], 0)}"
                        + (f" ({fmt(v['text'], 0)}{', ' + v['compression'] if v.get('compression') else ''})" if "text" in v and abs(v["text"] - v["stored"]) >= 4 else "")
                        for c, v in cols.items()
                        if v["stored"] >= 1
                    )
                    for table, cols in columns.items()
                    if cols
                )
                + "."
            )
        w("")
        w(
            f"- {entry['backend']}: {entry['rows']:,} rows in `requests` for {entry['created']:,} answers 201 after the server stopped: "
            f"{'equal' if entry['rows'] == entry['created'] else '**NOT EQUAL**'}; `priorauth audit verify`: {'intact' if entry['audit_ok'] else '**FAILED**'} ({entry['audit']})."
        )
        if entry["backend"] == "sqlite":
            full = entry["full"]
            w(f"- SQLite file {full['file_bytes']:,} bytes, WAL {full['wal_bytes']:,} after the checkpoint, page size {full['page_size']:,}.")
        else:
            w(f"- PostgreSQL's `default_toast_compression` is `{entry['full'].get('server_default_toast_compression')}` on this server; the service sets `lz4` on its sessions where the server has it.")
        submit = entry.get("submit")
        if submit:
            w(
                f"- The submissions: {submit['ok']:,} answers 201 in {submit['seconds']} s ({fmt(submit['rps'])} req/s), p50 {fmt(submit['p50_ms'], 2)} ms, p99 {fmt(submit['p99_ms'], 2)} ms "
                f"(closed loop, {meta['connections']} connections; not a latency measurement); rows added during the run {fmt(submit.get('rows_added'))} "
                f"({'= the 201s' if submit.get('rows_ok') else '**MISMATCH**'})."
            )
    reads = [p for p in phases if p.get("endpoint", "").startswith("GET")]
    if reads:
        w("")
        w("## Reads: `GET /v1/requests/{id}`")
        w("")
        w(
            f"After the submissions, with the server restarted on the same database: {meta['read_ids']} request ids per outcome, the lowest ids of each "
            "(random, so a sample), one URL a line for oha's `--urls-from-file` (a URL at random per request). Each read is audited (`request.read`): "
            "a write transaction, committed before the answer (since 2026-12-05 without waiting for the disk: SECURITY.md). "
            f"Fixed rate: `oha -q {meta['read_rate']} --latency-correction -c 16 -z {meta['read_seconds']}s` over all the ids, then over each outcome's for {meta['read_kind_seconds']} s; "
            f"closed loop: `oha -c {meta['read_connections']} -z {meta['read_max_seconds']}s`. Warm-up: {meta['warmup_seconds']} s closed loop first."
            + (
                f" Runs marked *+ setup*: the same, after the server stopped, `{meta['read_setup_sql']}` ran on the database and it started again (a change measured without a rebuild)."
                if meta.get("read_setup_sql")
                else ""
            )
        )
        w("")
        w("| back end | ids | load | req/s (200) | p50 ms | p99 ms | p99.9 ms | max ms | errors | reads audited | server CPU ms / read | other CPU |")
        w("|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
        for p in reads:
            d = p.get("counts_delta") or {}
            audited = d.get("audit request.read", 0)
            w(
                f"| {p['backend']} | {p['mode'].split(', ')[-1]} | {p['mode'].rsplit(', ', 1)[0]} | {fmt(p['rps'])} | {fmt(p['p50_ms'], 3)} | {fmt(p['p99_ms'], 3)} | {fmt(p['p999_ms'], 3)} "
                f"| {fmt(p['max_ms'], 2)} | {p['errors']:,} | {audited:,} / {p['ok']:,} {'' if audited == p['ok'] else '**MISMATCH**'} "
                f"| {fmt(p.get('server_cpu_ms_per_req'), 3)} | {fmt(p['cpu_other_pct'])}% |"
            )
        noisy = [p for p in reads if p.get("cpu_other_pct", 0) > 20]
        if noisy:
            w("")
            w("- **Disturbed**: processes outside the benchmark took more than 20% of a core during " + ", ".join(f"{p['backend']} / {p['mode']} ({p['cpu_other_pct']}%)" for p in noisy) + ".")
        w("")
        for entry, key, mark in [(e, k, m) for e in sizes for k, m in (("read_check", ""), ("read_check_setup", " + setup"))]:
            check = entry.get(key)
            if not check:
                continue
            w(
                f"- {entry['backend']}{mark}, each id read once before the runs: "
                + "; ".join(
                    f"{o} {c['ok']}/{c['ids']} answered 200, {fmt(c['mean_bytes'])} bytes on average, "
                    + (f"{c['verified']} of {c['events']} decision events `decision_verified: true`" + (f", **{c['not_verified']} false**" if c["not_verified"] else "") if c["verified"] or c["not_verified"] else f"{c['events']} events, no `decision_verified` (stored decisions)")
                    for o, c in sorted(check.items())
                )
                + "."
            )
        for p in reads:
            if p["mode"].startswith("fixed") and p["mode"].endswith(", all"):
                met = p["p99_ms"] is not None and p["p99_ms"] < AIM_READ_P99_MS and p["errors"] == 0
                w(f"- Aim (a read under {AIM_READ_P99_MS:g} ms at p99) on {p['backend']}, {p['mode']}: **{'met' if met else 'not met'}** (p99 {fmt(p['p99_ms'], 3)} ms, p99.9 {fmt(p['p999_ms'], 3)} ms, {p['errors']} errors).")
    text = "\n".join(out) + "\n"
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    sys.stdout.write(text)


def cmd_compare(args):
    """Before and after, from two runs' JSON: bytes per request per back end and table, and
    the reads' latencies."""
    runs = []
    for path in (args.before, args.after):
        with open(path, encoding="utf-8") as f:
            runs.append(json.load(f))
    before, after = runs
    label = lambda r: r["meta"]["label"] or r["meta"]["binary"]
    out = []
    w = out.append
    w(f"| back end | {label(before)}: bytes / request | {label(after)}: bytes / request | after ÷ before |")
    w("|---|---:|---:|---:|")
    by_backend = lambda r: {e["backend"]: e for e in r["sizes"]}
    b_sizes, a_sizes = by_backend(before), by_backend(after)
    for backend in [b for b in a_sizes if b in b_sizes]:
        fb, fa = backend_figures(b_sizes[backend]), backend_figures(a_sizes[backend])
        ratio = fa["bytes_per_request"] / fb["bytes_per_request"] if fb["bytes_per_request"] else None
        w(f"| {backend} | {fmt(fb['bytes_per_request'], 0)} | {fmt(fa['bytes_per_request'], 0)} | {fmt(ratio, 3)} |")
    for backend in [b for b in a_sizes if b in b_sizes]:
        fb, fa = backend_figures(b_sizes[backend]), backend_figures(a_sizes[backend])
        w("")
        w(f"{backend}, bytes per request by table (before → after; heap / indexes / TOAST after):")
        w("")
        w("| table | before | after | after: heap / indexes / TOAST |")
        w("|---|---:|---:|---|")
        for table in sorted(set(fb["tables"]) | set(fa["tables"]), key=lambda t: -(fb["tables"].get(t, {}).get("grown", 0))):
            tb, ta = fb["tables"].get(table), fa["tables"].get(table)
            if not (tb and tb["grown"]) and not (ta and ta["grown"]):
                continue
            parts = "–" if not ta else f"{fmt(ta['heap'], 0)} / {fmt(ta['indexes'], 0)} / {fmt(ta['toast'], 0)}"
            w(f"| `{table}` | {fmt(tb and tb['per_request'], 0)} | {fmt(ta and ta['per_request'], 0)} | {parts} |")
    reads = {}
    for which, run in (("before", before), ("after", after)):
        for p in run["phases"]:
            if p.get("endpoint", "").startswith("GET"):
                reads.setdefault((p["backend"], p["mode"]), {})[which] = p
    if reads:
        w("")
        w("| back end | load | before: p50 / p99 / p99.9 ms | after: p50 / p99 / p99.9 ms | before → after, req/s |")
        w("|---|---|---|---|---|")
        show = lambda p: "–" if not p else f"{fmt(p['p50_ms'], 3)} / {fmt(p['p99_ms'], 3)} / {fmt(p['p999_ms'], 3)}"
        for (backend, mode), pair in reads.items():
            b, a = pair.get("before"), pair.get("after")
            w(f"| {backend} | {mode} | {show(b)} | {show(a)} | {fmt(b and b['rps'])} → {fmt(a and a['rps'])} |")
    sys.stdout.write("\n".join(out) + "\n")


def cmd_bundle(args):
    """One JSON of a run (meta, sizes, phases): what `compare` reads."""
    meta, sizes, phases = load_run(args)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "sizes": sizes, "phases": phases}, f, indent=1)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def database(p):
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--sqlite", help="the SQLite file")
        where.add_argument("--psql", help="psql command line for the bench database")

    p = sub.add_parser("size")
    database(p)
    p.set_defaults(func=cmd_size)

    p = sub.add_parser("exec")
    database(p)
    p.add_argument("sql")
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("pick-ids")
    database(p)
    p.add_argument("--per-outcome", type=int, required=True)
    p.add_argument("--base", required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_pick_ids)

    p = sub.add_parser("check-reads")
    p.add_argument("--base", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ids", required=True)
    p.set_defaults(func=cmd_check_reads)

    for name, func in (("report", cmd_report), ("bundle", cmd_bundle)):
        p = sub.add_parser(name)
        p.add_argument("--meta", required=True)
        p.add_argument("--sizes", required=True)
        p.add_argument("--phases", required=True)
        p.add_argument("--out", required=True)
        p.set_defaults(func=func)

    p = sub.add_parser("compare")
    p.add_argument("before")
    p.add_argument("after")
    p.set_defaults(func=cmd_compare)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
