#!/usr/bin/env python3
# ruff: noqa
# Copied from ../shared/bench/serving (see README.md here); change: in the python engine each
# connection starts at its own offset in the bodies (they used to send the same bodies in step).
"""Bounded closed-loop HTTP load generator for any scoring server on loopback.

For each case BATCHxCONC it renders request bodies of BATCH rows from a template
(see render_bodies.py), checks one request returns 2xx, runs a warm-up, then
measures for --duration seconds with CONC concurrent keep-alive connections,
each sending its next request as soon as the previous answer arrives.

Reported per case: requests/s, rows/s, latency p50/p90/p99/max, errors, and CPU
(cores) used by the server process tree, by the load generator, and by anything
else on the machine during the run (noise indicator).

Engines: `wrk` (Debian package `wrk`; C, cheap on CPU; default when installed)
or `python` (asyncio raw HTTP/1.1 keep-alive client; uses more CPU).

Every run is bounded: --duration seconds and --max-requests per case (wrk: cap per
thread). Only loopback targets (127.0.0.0/8, ::1, localhost) are accepted.

  python loadgen.py --url http://127.0.0.1:5001/invocations \
      --template templates/mlflow_dataframe_split.json.tmpl --rows WORKDIR/rows_codes.jsonl \
      --case 1x1 --case 1x8 --case 1x32 --case 1000x1 --case 10000x1 \
      --duration 20 --warmup 3 --server-pid PID --label mlflow-1w --out results.jsonl
"""
import argparse
import asyncio
import ipaddress
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from render_bodies import load_rows, render_files  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- CPU accounting
def proc_tree_cpu(root_pid):
    """CPU seconds (user+sys) of root_pid and all its live descendants."""
    if not root_pid:
        return 0.0
    children, cpu = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        ppid = int(rest[1])
        children.setdefault(ppid, []).append(int(d))
        cpu[int(d)] = (int(rest[11]) + int(rest[12])) / CLK
    total, stack = 0.0, [root_pid]
    while stack:
        p = stack.pop()
        total += cpu.get(p, 0.0)
        stack.extend(children.get(p, []))
    return total


def system_busy():
    """Busy CPU seconds of the whole machine since boot (all cores)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / CLK


def wait_for_quiet(server_pid, max_wait, threshold):
    """Wait until other processes use < threshold cores (1 s samples)."""
    t_end = time.time() + max_wait
    while True:
        b0, s0, t0 = system_busy(), proc_tree_cpu(server_pid), time.time()
        time.sleep(1.0)
        dt = time.time() - t0
        other = ((system_busy() - b0) - (proc_tree_cpu(server_pid) - s0)) / dt
        if other < threshold or time.time() > t_end:
            return other
        time.sleep(1.0)


# ---------------------------------------------------------------- safety
def check_loopback(url):
    host = urllib.parse.urlsplit(url).hostname
    addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    bad = [a for a in addrs if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
    if bad or not addrs:
        raise SystemExit(f"refusing non-loopback target {host} -> {sorted(addrs)}")


# ---------------------------------------------------------------- engines
def run_wrk(url, body_files, conc, duration, content_type, headers, max_requests, timeout_s):
    threads = 1  # one C thread drives thousands of req/s; keep the client's CPU share low
    with tempfile.NamedTemporaryFile("w", suffix=".lst", delete=False) as f:
        f.write("\n".join(body_files) + "\n")
        lst = f.name
    env = dict(os.environ, BENCH_BODY_LIST=lst, BENCH_CONTENT_TYPE=content_type,
               BENCH_HEADERS="|".join(headers), BENCH_MAX_REQUESTS=str(max_requests))
    cmd = ["wrk", "-t", str(threads), "-c", str(conc), "-d", f"{max(1, int(round(duration)))}s",
           "--timeout", f"{timeout_s}s", "-s", os.path.join(HERE, "wrk_post.lua"), url]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + timeout_s + 60)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.unlink(lst)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("WRKJSON ")]
    if p.returncode != 0 or not line:
        raise RuntimeError(f"wrk failed rc={p.returncode}: {p.stdout[-2000:]} {p.stderr[-2000:]}")
    d = json.loads(line[0][8:])
    return {
        "requests": d["requests"], "seconds": d["duration_us"] / 1e6,
        "errors_status": d["err_status"],
        "errors_socket": d["err_connect"] + d["err_read"] + d["err_write"] + d["err_timeout"],
        "p50_ms": d["lat_p50_us"] / 1e3, "p90_ms": d["lat_p90_us"] / 1e3,
        "p99_ms": d["lat_p99_us"] / 1e3, "max_ms": d["lat_max_us"] / 1e3,
        "mean_ms": d["lat_mean_us"] / 1e3,
        "client_cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
    }


async def _py_worker(host, port, path, reqs, deadline, max_req, lat, errs, counter, timeout_s,
                     start=0):
    reader, writer = await asyncio.open_connection(host, port)
    i = start % len(reqs)
    try:
        while time.perf_counter() < deadline and counter[0] < max_req:
            counter[0] += 1
            req = reqs[i]
            i = (i + 1) % len(reqs)
            t0 = time.perf_counter()
            writer.write(req)
            status_line = await asyncio.wait_for(reader.readline(), timeout_s)
            status = int(status_line.split()[1])
            clen, chunked, close = None, False, False
            while True:
                h = await reader.readline()
                if h in (b"\r\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                k = k.strip().lower()
                if k == "content-length":
                    clen = int(v)
                elif k == "transfer-encoding" and "chunked" in v.lower():
                    chunked = True
                elif k == "connection" and "close" in v.lower():
                    close = True
            if chunked:
                while True:
                    size = int((await reader.readline()).split(b";")[0], 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            elif clen is not None:
                await reader.readexactly(clen)
            lat.append(time.perf_counter() - t0)
            if not 200 <= status < 300:
                errs["status"] += 1
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    except Exception:  # noqa: BLE001 - count and stop this connection
        errs["socket"] += 1
    finally:
        writer.close()


def run_python(url, body_files, conc, duration, content_type, headers, max_requests, timeout_s):
    u = urllib.parse.urlsplit(url)
    host, port = u.hostname, u.port or 80
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    reqs = []
    for bf in body_files:
        with open(bf, "rb") as f:
            body = f.read()
        head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Type: {content_type}",
                f"Content-Length: {len(body)}"] + list(headers)
        reqs.append(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    lat, errs, counter = [], {"status": 0, "socket": 0}, [0]

    async def main():
        deadline = time.perf_counter() + duration
        await asyncio.gather(*[
            _py_worker(host, port, path, reqs, deadline, max_requests, lat, errs, counter, timeout_s,
                       k * len(reqs) // conc)
            for k in range(conc)])

    c0 = time.process_time()
    t0 = time.perf_counter()
    asyncio.run(main())
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3 if lat else float("nan")
    return {"requests": len(lat), "seconds": secs, "errors_status": errs["status"],
            "errors_socket": errs["socket"], "p50_ms": q(0.50), "p90_ms": q(0.90),
            "p99_ms": q(0.99), "max_ms": lat[-1] * 1e3 if lat else float("nan"),
            "mean_ms": sum(lat) / len(lat) * 1e3 if lat else float("nan"), "client_cpu_s": cpu}


# ---------------------------------------------------------------- driver
def preflight(url, body_file, content_type, headers, timeout_s):
    with open(body_file, "rb") as f:
        body = f.read()
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Content-Type", content_type)
    for h in headers:
        k, _, v = h.partition(":")
        req.add_header(k.strip(), v.strip())
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return r.status, r.read(300).decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read(600).decode("utf-8", "replace")


def parse_case(s):
    b, _, c = s.lower().partition("x")
    return int(b), int(c or 1)


def fmt_table(results):
    lines = ["| label | rows/req | conc | req/s | rows/s | p50 ms | p90 ms | p99 ms | max ms | errors | server cores | client cores | other cores |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(
            f"| {r['label']} | {r['batch']} | {r['conc']} | {r['req_s']:,.1f} | {r['rows_s']:,.0f} | "
            f"{r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} | "
            f"{r['errors_status'] + r['errors_socket']} | {r['server_cores']:.2f} | "
            f"{r['client_cores']:.2f} | {r['other_cores']:.2f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="e.g. http://127.0.0.1:5001/invocations (loopback only)")
    ap.add_argument("--template", required=True, help="request-body template (see render_bodies.py)")
    ap.add_argument("--rows", required=True, help="JSON-lines rows file")
    ap.add_argument("--case", action="append", required=True, help="BATCHxCONC, e.g. 1x8; repeatable")
    ap.add_argument("--duration", type=float, default=20.0, help="measured seconds per case")
    ap.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per case (not measured)")
    ap.add_argument("--max-requests", type=int, default=2_000_000, help="hard cap per case")
    ap.add_argument("--timeout", type=int, default=60, help="per-request timeout, seconds")
    ap.add_argument("--content-type", default="application/json")
    ap.add_argument("--header", action="append", default=[], help="extra 'Name: value' header")
    ap.add_argument("--engine", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--server-pid", type=int, default=0, help="root PID of the server (CPU accounting)")
    ap.add_argument("--bodies-per-case", type=int, default=0, help="distinct bodies (default: 64 single-row, 8 batch, 2 for >=5000 rows)")
    ap.add_argument("--quiet-wait", type=float, default=60.0, help="max seconds to wait for a quiet machine before a case")
    ap.add_argument("--quiet-threshold", type=float, default=0.25, help="cores used by others that count as quiet")
    ap.add_argument("--label", default="server")
    ap.add_argument("--out", help="append one JSON line per case here")
    a = ap.parse_args()

    check_loopback(a.url)
    engine = a.engine
    if engine == "auto":
        engine = "wrk" if shutil.which("wrk") else "python"
    runner = run_wrk if engine == "wrk" else run_python
    rows = load_rows(a.rows)
    body_dir = tempfile.mkdtemp(prefix="bench_bodies_")
    results = []
    try:
        for case in a.case:
            batch, conc = parse_case(case)
            n_bodies = a.bodies_per_case or (64 if batch == 1 else 8 if batch < 5000 else 2)
            files = render_files(a.template, rows, batch, n_bodies, os.path.join(body_dir, f"b{batch}"))
            status, text = preflight(a.url, files[0], a.content_type, a.header, a.timeout)
            if not 200 <= status < 300:
                raise SystemExit(f"preflight {case}: HTTP {status}: {text}")
            print(f"[{a.label}] case {batch}x{conc}: body {os.path.getsize(files[0]):,} B, "
                  f"preflight {status} {text[:80]!r}", flush=True)
            if a.warmup > 0:
                runner(a.url, files, conc, a.warmup, a.content_type, a.header, a.max_requests, a.timeout)
            bg = wait_for_quiet(a.server_pid, a.quiet_wait, a.quiet_threshold)
            s0, b0, t0 = proc_tree_cpu(a.server_pid), system_busy(), time.time()
            r = runner(a.url, files, conc, a.duration, a.content_type, a.header, a.max_requests, a.timeout)
            wall = time.time() - t0
            server_cpu = proc_tree_cpu(a.server_pid) - s0
            busy = system_busy() - b0
            r.update(
                label=a.label, engine=engine, batch=batch, conc=conc,
                body_bytes=os.path.getsize(files[0]), req_s=r["requests"] / r["seconds"],
                rows_s=r["requests"] * batch / r["seconds"],
                server_cores=server_cpu / wall if a.server_pid else float("nan"),
                client_cores=r["client_cpu_s"] / wall,
                other_cores=max(0.0, (busy - server_cpu - r["client_cpu_s"]) / wall),
                background_before=bg, ts=time.strftime("%Y-%m-%dT%H:%M:%S"))
            results.append(r)
            print(f"[{a.label}] {batch}x{conc}: {r['req_s']:,.1f} req/s, {r['rows_s']:,.0f} rows/s, "
                  f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, errors "
                  f"{r['errors_status']}+{r['errors_socket']}, server {r['server_cores']:.2f} cores, "
                  f"client {r['client_cores']:.2f}, other {r['other_cores']:.2f}", flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(r) + "\n")
    finally:
        shutil.rmtree(body_dir, ignore_errors=True)
    print()
    print(fmt_table(results))


if __name__ == "__main__":
    main()
