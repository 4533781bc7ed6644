#!/usr/bin/env python3
"""Attack benchmark of `priorauth serve` (see bench/README.md, "Attack").

Well-behaved clinics load the service while a hostile organization attacks it; the clinics'
latency and errors are compared with a run without the attack, and the server's memory is
sampled throughout. The server runs with its default limits: what is measured is what a payer
deploying it gets.

    bench/attack.py BINARY [--seconds 30] [--clients 50] [--rate 4] [--half-open 1000]
                           [--backend sqlite|postgres] [--out FILE]

Phases, each SECONDS long, on one server and database:
  1. baseline: CLIENTS clients (10 organizations, a key each), each submitting a request every
     1/RATE s on its own keep-alive connection (E01 approved, E05 pended for review, in turn).
  2. attack: the same clients, while a hostile organization (8 keys) at once
     - floods the review queue: 16 loops submitting E05 as fast as it is answered;
     - holds HALF_OPEN connections with half-sent headers, reopening any that close;
     - sends 3.9 MB FHIR Bundles: 4 loops with its key, 4 loops without a key;
     - sends the costliest valid cases (24 cycles, every field) to /v1/requests and
       /v1/evaluate: 8 loops.
Reported: the clients' p50, p99 and error rate in each phase (aim: p99 within 2x of the
baseline, no errors), /healthz latency during the attack, the hostile calls by status, and
the server's peak resident memory (aim: under 256 MB). Loopback only; bounded in time.

Standard library only.
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from loadlib import dated_today  # noqa: E402  (the load benchmark's: cases as a clinic sends them today)
CASES = ROOT / "tests" / "cases"
PAS = ROOT / "tests" / "fhir" / "pas-examples"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_key(binary, env, cwd, organization, role, name, credentials=""):
    args = [binary, "keys", "create", "--organization", organization, "--role", role, "--name", name]
    if credentials:
        args += ["--credentials", credentials]
    out = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, check=True).stdout
    return next(line[5:].strip() for line in out.splitlines() if line.startswith("key: "))


# The hostile organization calls from its own loopback address, as an attacker on the network
# would: the service limits calls without a valid key per source address.
HOSTILE_SOURCE = ("127.0.0.66", 0)


def length_and_close(lines):
    """A response's Content-Length (0 without one) and whether it closes the connection,
    from its header lines."""
    length, close = 0, False
    for line in lines:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    return length, close


class Connection:
    """One keep-alive HTTP/1.1 connection; reopened when the server closes it."""

    def __init__(self, port, source=None):
        self.port = port
        self.source = source
        self.reader = None
        self.writer = None

    async def call(self, method, path, headers, body=b""):
        for attempt in range(2):
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(
                        "127.0.0.1", self.port, local_addr=self.source)
                head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(body)}\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
                self.writer.write(head.encode() + body)
                await self.writer.drain()
                status_line = await self.reader.readline()
                if not status_line:
                    raise ConnectionError("closed")
                status = int(status_line.split()[1])
                lines = []
                while (line := await self.reader.readline()) not in (b"\r\n", b""):
                    lines.append(line.decode("latin-1").rstrip("\r\n"))
                length, close = length_and_close(lines)
                payload = await self.reader.readexactly(length) if length else b""
                if close:
                    self.close()
                return status, payload
            except (ConnectionError, asyncio.IncompleteReadError, OSError, ValueError, IndexError):
                self.close()
                if attempt == 1:
                    return 0, b""
        return 0, b""

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class RawConnection:
    """The hostile organization's keep-alive connection: as `Connection`, but a body is sent
    from where it lies, without copying it. asyncio's stream writer copies what the kernel does
    not take at once into a buffer of its own, so each 3.9 MB Bundle cost this script two
    copies in memory whether the server read it or not: most of a core, measured, spent on
    the machine the clinics and the server share. An attacker on a network spends that on
    its own machine; what reaches the server (the calls, their bytes) is the same."""

    def __init__(self, port, source=None):
        self.port = port
        self.source = source
        self.sock = None
        self.pending = b""

    async def _recv_until(self, loop, enough):
        """Receives until `enough(self.pending)`."""
        while not enough(self.pending):
            chunk = await loop.sock_recv(self.sock, 65536)
            if not chunk:
                raise ConnectionError("closed")
            self.pending += chunk

    async def call(self, method, path, headers, body=b""):
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            try:
                if self.sock is None:
                    sock = socket.socket()
                    sock.setblocking(False)
                    if self.source:
                        sock.bind(self.source)
                    self.sock, self.pending = sock, b""
                    await loop.sock_connect(sock, ("127.0.0.1", self.port))
                head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(body)}\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
                await loop.sock_sendall(self.sock, head.encode())
                if body:
                    await loop.sock_sendall(self.sock, body)
                await self._recv_until(loop, lambda pending: b"\r\n\r\n" in pending)
                head_bytes, _, self.pending = self.pending.partition(b"\r\n\r\n")
                lines = head_bytes.decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                length, close = length_and_close(lines[1:])
                await self._recv_until(loop, lambda pending: len(pending) >= length)
                payload, self.pending = self.pending[:length], self.pending[length:]
                if close:
                    self.close()
                return status, payload
            except (ConnectionError, OSError, ValueError, IndexError):
                self.close()
                if attempt == 1:
                    return 0, b""
        return 0, b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
        self.sock, self.pending = None, b""


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def clinic(port, key, bodies, rate, until, results):
    """One well-behaved client: a request every 1/rate s (not sent faster when one is slow)."""
    connection = Connection(port)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    interval, i = 1.0 / rate, 0
    next_at = time.monotonic() + interval * (hash(key) % 100) / 100
    while time.monotonic() < until:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        started = time.monotonic()
        status, _ = await connection.call("POST", "/v1/requests", headers, bodies[i % len(bodies)])
        results.append((time.monotonic() - started, status))
        i += 1
        next_at += interval
    connection.close()


async def flood(port, method, path, headers, body, until, counts, what):
    """As fast as the server answers."""
    connection = RawConnection(port, HOSTILE_SOURCE)
    while time.monotonic() < until:
        status, _ = await connection.call(method, path, headers, body)
        counts[(what, status)] = counts.get((what, status), 0) + 1
        if status in (0, 429, 503):
            await asyncio.sleep(0.01)  # a refused caller comes straight back
    connection.close()


async def half_open(port, count, until, counts):
    """Holds `count` connections with half-sent headers, reopening any the server closes."""

    async def hold():
        while time.monotonic() < until:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=HOSTILE_SOURCE)
                writer.write(b"POST /v1/requests HTTP/1.1\r\nHost: bench\r\nContent-Le")
                await writer.drain()
                counts[("half-open", "opened")] = counts.get(("half-open", "opened"), 0) + 1
                remaining = until - time.monotonic()
                try:
                    await asyncio.wait_for(reader.read(1024), timeout=max(0.1, remaining))
                    counts[("half-open", "closed by the server")] = counts.get(("half-open", "closed by the server"), 0) + 1
                except asyncio.TimeoutError:
                    pass
                writer.close()
            except OSError:
                counts[("half-open", "refused")] = counts.get(("half-open", "refused"), 0) + 1
                await asyncio.sleep(0.1)

    await asyncio.gather(*(hold() for _ in range(count)))


async def health(port, until, samples):
    connection = Connection(port)
    while time.monotonic() < until:
        started = time.monotonic()
        status, _ = await connection.call("GET", "/healthz", {})
        samples.append((time.monotonic() - started, status))
        await asyncio.sleep(0.2)
    connection.close()


def cpu_seconds(pid):
    """The server's CPU time so far (user + system)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def memory_kb(pid, field):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def sample_memory(pid, until, samples):
    while time.monotonic() < until:
        samples.append(memory_kb(pid, "VmRSS"))
        await asyncio.sleep(0.2)


def summarize(results):
    latencies = [l * 1000 for l, s in results if s == 201]
    errors = sum(1 for _, s in results if s != 201)
    return {
        "requests": len(results),
        "errors": errors,
        "error_rate": errors / len(results) if results else float("nan"),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
        "statuses": {str(s): sum(1 for _, x in results if x == s) for s in sorted({s for _, s in results})},
    }


async def hostile_tasks(port, hostile, attack, half_open_count, until, counts, without=()):
    json_headers = lambda key: {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    fhir_headers = lambda key: {"Authorization": f"Bearer {key}", "Content-Type": "application/fhir+json"}
    tasks = []
    if "queue" not in without:
        for i in range(16):
            tasks.append(flood(port, "POST", "/v1/requests", json_headers(hostile[i % len(hostile)]),
                               attack["review"], until, counts, "queue flood"))
    if "half-open" not in without:
        tasks.append(half_open(port, half_open_count, until, counts))
    for i in range(4):
        if "bundles" not in without:
            tasks.append(flood(port, "POST", "/fhir/Claim/$submit", fhir_headers(hostile[i % len(hostile)]),
                               attack["bundle"], until, counts, "3.9 MB Bundle, with a key"))
            tasks.append(flood(port, "POST", "/fhir/Claim/$submit", {"Content-Type": "application/fhir+json"},
                               attack["bundle"], until, counts, "3.9 MB Bundle, no key"))
        if "heavy" not in without:
            tasks.append(flood(port, "POST", "/v1/requests", json_headers(hostile[i % len(hostile)]),
                               attack["heavy"], until, counts, "costliest case, submitted"))
            tasks.append(flood(port, "POST", "/v1/evaluate", json_headers(hostile[i % len(hostile)]),
                               attack["heavy_evaluate"], until, counts, "costliest case, evaluated"))
    await asyncio.gather(*tasks)


def attacker(port, hostile, attack, half_open_count, seconds, queue, without):
    """The hostile organization, in a process of its own (niced: on a real network its
    CPU would be its own machine's, not the server's), so that the clinics' measured latency
    is the server's and not this script's event loop's."""
    os.nice(10)
    counts = {}
    until = time.monotonic() + seconds
    asyncio.run(hostile_tasks(port, hostile, attack, half_open_count, until, counts, without))
    queue.put(counts)


async def phase(port, pid, clinics, bodies, args, attack, hostile):
    until = time.monotonic() + args.seconds
    results, healthz, memory = [], [], []
    counts = {}
    process = None
    if attack:
        import multiprocessing

        queue = multiprocessing.Queue()
        process = multiprocessing.Process(
            target=attacker, args=(port, hostile, attack, args.half_open, args.seconds, queue, args.without))
        process.start()
    cpu_before = cpu_seconds(pid)
    tasks = [clinic(port, key, bodies, args.rate, until, results) for key in clinics]
    tasks.append(health(port, until, healthz))
    tasks.append(sample_memory(pid, until, memory))
    await asyncio.gather(*tasks)
    summary = summarize(results)
    summary["server_cpu_percent"] = 100 * (cpu_seconds(pid) - cpu_before) / args.seconds
    if process is not None:
        counts = await asyncio.get_running_loop().run_in_executor(None, queue.get)
        process.join()
    return summary, counts, healthz, memory


def bodies_for(plan, names):
    out = []
    for name in names:
        case = json.loads((CASES / f"{name}.json").read_text())
        case = dated_today(case.get("case", case))
        out.append(json.dumps({"plan": plan, "case": case}).encode())
    return out


def heavy_case():
    case = json.loads((CASES / "E01.json").read_text())
    case = dated_today(case.get("case", case))
    request = case.setdefault("request", {})
    request["cycles"] = 24
    diagnosis = case.setdefault("diagnosis", {})
    diagnosis["icd10"] = [f"C91.{i:02d}" for i in range(3)] + [f"C83.{i}{j}" for i in range(10) for j in range(10)][:60]
    return case


def big_bundle():
    bundle = json.loads((PAS / "Bundle-HomecareAuthorizationBundleExample.json").read_text())
    entry = bundle["entry"][1]
    copies = []
    size = len(json.dumps(bundle))
    i = 0
    while size < 3_900_000:
        copy = json.loads(json.dumps(entry))
        copy["fullUrl"] = f"urn:uuid:00000000-0000-0000-0000-{i:012d}"
        size += len(json.dumps(copy)) + 1
        copies.append(copy)
        i += 1
    bundle["entry"].extend(copies[:-1])
    return json.dumps(bundle).encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=4.0, help="requests per second per client")
    parser.add_argument("--half-open", type=int, default=1000)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--out", default="")
    parser.add_argument("--without", default="", help="attacks left out, comma-separated: queue, half-open, bundles, heavy (to see what each costs)")
    args = parser.parse_args()
    args.without = tuple(w for w in args.without.split(",") if w)
    if not (1 <= args.seconds <= 120 and 1 <= args.clients <= 200 and args.half_open <= 4000):
        sys.exit("bounded: at most 120 s, 200 clients, 4,000 half-open connections")

    work = Path(tempfile.mkdtemp(prefix="priorauth-attack."))
    env = dict(os.environ)
    database = None
    if args.backend == "sqlite":
        env["DATABASE_URL"] = f"sqlite://{work}/attack.sqlite?mode=rwc"
    else:
        database = f"priorauth_attack_{os.getpid()}"
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", database], check=True)
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{database}"
    # The service's defaults: the limits are what is measured.
    for name in ("PRIORAUTH_RATE_PER_KEY", "PRIORAUTH_RATE_PER_ORGANIZATION", "PRIORAUTH_IN_FLIGHT_PER_ORGANIZATION", "PRIORAUTH_MAX_CONNECTIONS"):
        env.pop(name, None)
    binary = shutil.copy(args.binary, work / "priorauth")
    server = None
    try:
        clinics = [create_key(binary, env, work, f"clinic-{i % 10}", "submitter", f"clinic {i}") for i in range(args.clients)]
        hostile = [create_key(binary, env, work, "hostile", "submitter", f"hostile {i}") for i in range(8)]
        port = free_port()
        server = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}"], env=env, cwd=work,
                                  stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "w"))
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        bodies = bodies_for("masshealth", ["E01", "E05"])
        heavy = heavy_case()
        attack = {
            "review": bodies_for("masshealth", ["E05"])[0],
            "bundle": big_bundle(),
            "heavy": json.dumps({"plan": "masshealth", "case": heavy}).encode(),
            "heavy_evaluate": json.dumps({"case": heavy}).encode(),
        }
        asyncio.run(phase(port, server.pid, clinics[:5], bodies, argparse.Namespace(seconds=3, rate=args.rate, half_open=0, without=()), None, hostile))  # warm-up
        baseline = asyncio.run(phase(port, server.pid, clinics, bodies, args, None, hostile))
        attacked = asyncio.run(phase(port, server.pid, clinics, bodies, args, attack, hostile))
        peak_kb = memory_kb(server.pid, "VmHWM")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=40)
            except subprocess.TimeoutExpired:
                server.kill()
        if database:
            subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--force", database], check=False)
    report = render(args, baseline, attacked, peak_kb)
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    shutil.rmtree(work, ignore_errors=True)


def render(args, baseline, attacked, peak_kb):
    (base, _, base_health, base_memory) = baseline
    (hit, counts, health_samples, memory) = attacked
    ratio = hit["p99_ms"] / base["p99_ms"] if base["p99_ms"] else float("nan")
    health_ms = [l * 1000 for l, s in health_samples if s == 200]
    lines = [
        f"# Attack benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"`bench/attack.py` on {args.backend}: {args.clients} clients (10 organizations) at {args.rate:g} requests/s each, "
        f"{args.seconds} s per phase; the server with its default limits; attacks left out: {', '.join(args.without) or 'none'}. Load average at the end: {open('/proc/loadavg').read().split()[0:3]}.",
        "",
        "| phase | requests | errors | error rate | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| baseline | {base['requests']} | {base['errors']} | {base['error_rate']:.4f} | {base['p50_ms']:.1f} | {base['p99_ms']:.1f} | {base['max_ms']:.1f} |",
        f"| under attack | {hit['requests']} | {hit['errors']} | {hit['error_rate']:.4f} | {hit['p50_ms']:.1f} | {hit['p99_ms']:.1f} | {hit['max_ms']:.1f} |",
        "",
        f"- p99 under attack / baseline: **{ratio:.2f}x** (aim: within 2x); errors under attack: **{hit['errors']}** (aim: none); statuses {hit['statuses']}.",
        f"- Server CPU, in percent of one core (200% is the machine): baseline {base['server_cpu_percent']:.0f}%, under attack {hit['server_cpu_percent']:.0f}%.",
        f"- `/healthz` during the attack: {len(health_ms)} answered of {len(health_samples)}, p50 {percentile(health_ms, 50):.1f} ms, max {max(health_ms) if health_ms else float('nan'):.1f} ms.",
        f"- Server memory: peak resident **{peak_kb / 1024:.0f} MB** (aim: under 256 MB); resident at the end of the baseline {base_memory[-1] / 1024 if base_memory else 0:.0f} MB, at the end of the attack {memory[-1] / 1024 if memory else 0:.0f} MB.",
        "",
        "Hostile calls during the attack:",
        "",
        "| what | answer | count |",
        "|---|---|---:|",
    ]
    for (what, status), n in sorted(counts.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        lines.append(f"| {what} | {status if status else 'no answer'} | {n} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
