#!/usr/bin/env python3
"""frontdoor's scale curve (issue #19), against one release server on loopback:

- req/s and p99 of GET one configmap and LIST 100 configmaps at 1, 32, 256 and 2,048
  connections (wrk, a static system:masters token);
- the server's RSS with 1k, 10k and 50k idle TLS connections (handshake done, no request);
- the delivery latency of one write to 1k and 10k idle watchers (bench/store_watches.py).

Prints a table and plots it to bench/scale_curve.png (matplotlib), which the README shows.
Bounded: SECS seconds per wrk point, connection counts above the open-file limit are skipped
and said so.

  [BIN=target/release/frontdoor] [SECS=5] [CONNS=1,32,256,2048] [IDLE=1000,10000,50000]
  [WATCHERS=1000,10000] [PNG=bench/scale_curve.png] bench/scale_curve.py

Measured 2026-12-03 (release build of the lists-from-stored-bytes work; 2 cores, wrk on the
same cores, machine otherwise quiet):
  GET   1 / 32 / 256 / 2048 connections:  6,089 / 36,619 / 28,840 / 21,391 req/s,
        p99 1.5 / 5.7 / 18.6 / 628 ms
  LIST of 100 (512 B each): 3,019 / 6,674 / 7,278 / 6,200 req/s, p99 2.2 / 10.4 / 69 / 780 ms
  idle TLS connections: +45 MB for 1k (46 KB each), +388 MB for 10k (40 KB each); 50k not
        possible here (RLIMIT_NOFILE's hard limit is 20,000 and cannot be raised)
  one write to 1k watchers p50 30 ms, p99 37 ms; to 10k p50 445 ms, p99 466 ms (client-timed)
An earlier run of the build before (under two helpers' builds) gave LIST 1,804 / 3,014 / 2,946 /
1,778 req/s; different load, so see bench/list_items.py for the interleaved A/B.
Measured 2026-12-06 (release build of d446aef, after the idle-memory and proxied-path work; same
machine, quiet, one run):
  GET   1 / 32 / 256 / 2048 connections: 11,060 / 62,337 / 67,902 / 41,897 req/s,
        p99 0.37 / 2.1 / 7.4 / 323 ms
  LIST of 100 (512 B each): 5,683 / 13,336 / 13,404 / 8,227 req/s, p99 0.49 / 7.4 / 35 / 598 ms
  idle TLS connections: +6 MB for 1k (6.6 KB each), +44 MB for 10k (4.5 KB each); 50k still past
        the open-file limit (20,000)
  one write to 1k watchers p50 20 ms, p99 30 ms; to 10k p50 299 ms, p99 315 ms (client-timed)
"""
import asyncio, json, os, re, resource, signal, socket, ssl, subprocess, sys, tempfile, time
import urllib.request
from benchlib import free_port, rss_mb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "scale-token"


def env_list(name, default):
    return [int(x) for x in os.environ.get(name, default).split(",") if x]


class Server:
    """One frontdoor on its embedded defaults in a temp dir, with a static admin token."""

    def __init__(self, binary):
        self.dir = tempfile.mkdtemp(prefix="scale-")
        self.port = free_port()
        with open(f"{self.dir}/tokens.csv", "w") as f:
            f.write(f'{TOKEN},scale,scale-uid,"system:masters"\n')
        self.log = open(f"{self.dir}/frontdoor.log", "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--bind-address", "127.0.0.1", "--secure-port", str(self.port),
             "--cert-dir", f"{self.dir}/certs", "--data-dir", f"{self.dir}/data",
             "--policy-dir", f"{self.dir}/none", "--token-auth-file", f"{self.dir}/tokens.csv"],
            stdout=self.log, stderr=self.log, env={**os.environ, "FRONTDOOR_LOG": "warn"})
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        for _ in range(300):
            try:
                self.request("GET", "/readyz", raw=True)
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"frontdoor did not start; see {self.dir}/frontdoor.log")

    def request(self, method, path, body=None, raw=False):
        req = urllib.request.Request(f"https://127.0.0.1:{self.port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
            data = r.read()
        return data if raw else json.loads(data)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wrk(server, path, conns, secs):
    """(req/s, p99 ms, non-2xx) of wrk on `path` with `conns` connections."""
    threads = min(2, conns)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency", "--timeout", "10s",
         "-H", f"Authorization: Bearer {TOKEN}", f"https://127.0.0.1:{server.port}{path}"],
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\b", out, re.M)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, float(p99.group(1)) * scale, int(bad.group(1)) if bad else 0


async def idle_connections(server, n):
    """The server's RSS growth with `n` idle TLS connections, in MB, and KB per connection."""
    before = rss_mb(server.proc.pid)
    sem = asyncio.Semaphore(256)

    async def one(i):
        async with sem:
            # spread the client ends over loopback addresses: one address has ~28k ports
            _, w = await asyncio.open_connection("127.0.0.1", server.port, ssl=server.ctx,
                                                 local_addr=(f"127.0.{1 + i // 20000}.{1 + i % 200}", 0))
            return w

    writers = await asyncio.gather(*(one(i) for i in range(n)))
    await asyncio.sleep(2)
    after = rss_mb(server.proc.pid)
    for w in writers:
        w.close()
    await asyncio.sleep(1)
    return after - before, (after - before) * 1024 / n


def watchers(server, n):
    """(p50, p99) ms of one write reaching `n` idle watchers, from bench/store_watches.py."""
    out = subprocess.run(
        [sys.executable, f"{ROOT}/bench/store_watches.py", "--port", str(server.port),
         "--certs", f"{server.dir}/certs", "--pid", str(server.proc.pid), "--watches", str(n)],
        capture_output=True, text=True, check=True).stdout
    m = re.search(r"p50 ([\d.]+) ms, p99 ([\d.]+) ms", out)
    return float(m.group(1)), float(m.group(2))


def plot(png, curve, idle, fan):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 4, figsize=(18, 4))
    for kind in ("GET", "LIST"):
        pts = [(c, r, p) for (k, c), (r, p, _) in sorted(curve.items()) if k == kind]
        ax[0].plot([c for c, _, _ in pts], [r for _, r, _ in pts], "o-", label=kind)
        ax[1].plot([c for c, _, _ in pts], [p for _, _, p in pts], "o-", label=kind)
    ax[0].set(xscale="log", title="req/s by connections", xlabel="connections", ylabel="req/s")
    ax[1].set(xscale="log", yscale="log", title="p99 latency", xlabel="connections", ylabel="ms")
    ax[0].legend()
    ax[1].legend()
    if idle:
        ns = sorted(idle)
        ax[2].plot(ns, [idle[n][0] for n in ns], "o-")
    ax[2].set(xscale="log", title="RSS growth, idle TLS connections", xlabel="connections", ylabel="MB")
    if fan:
        ns = sorted(fan)
        ax[3].plot(ns, [fan[n][0] for n in ns], "o-", label="p50")
        ax[3].plot(ns, [fan[n][1] for n in ns], "o-", label="p99")
        ax[3].legend()
    ax[3].set(xscale="log", title="one write to N watchers", xlabel="watchers", ylabel="ms")
    fig.suptitle("frontdoor on 2 shared cores, loopback, release build (bench/scale_curve.py)")
    fig.tight_layout()
    fig.savefig(png, dpi=80)


def main():
    # the plot is checked for before minutes of load, not after
    try:
        import matplotlib
        matplotlib.use("Agg")
    except ImportError:
        sys.exit("bench/scale_curve.py plots with matplotlib: FRONTDOOR_BENCH_TOOLS=1 .ci/setup "
                 "(or apt-get install python3-matplotlib)")
    binary = os.environ.get("BIN", f"{os.environ.get('CARGO_TARGET_DIR', ROOT + '/target')}/release/frontdoor")
    secs = int(os.environ.get("SECS", "5"))
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    server = Server(binary)
    try:
        for i in range(100):
            server.request("POST", "/api/v1/namespaces/default/configmaps",
                           {"metadata": {"name": f"cm-{i}"}, "data": {"v": "x" * 512}})
        paths = {"GET": "/api/v1/namespaces/default/configmaps/cm-1",
                 "LIST": "/api/v1/namespaces/default/configmaps"}
        curve = {}
        print(f"server: {binary}; open-file limit {limit}; {secs} s per point")
        print(f"{'':6} {'conns':>6} {'req/s':>9} {'p99 ms':>9} {'non-2xx':>8}")
        for conns in env_list("CONNS", "1,32,256,2048"):
            if conns + 100 > limit:
                print(f"{'':6} {conns:>6} skipped: above the open-file limit {limit}")
                continue
            for kind, path in paths.items():
                curve[(kind, conns)] = wrk(server, path, conns, secs)
                r, p, bad = curve[(kind, conns)]
                print(f"{kind:6} {conns:>6} {r:>9.0f} {p:>9.2f} {bad:>8}")
        # a fresh server for memory: the allocator holds what the load above left
        server.stop()
        server = Server(binary)
        idle = {}
        base = rss_mb(server.proc.pid)
        print(f"idle TLS connections (a fresh server, RSS {base:.0f} MB before):")
        for n in env_list("IDLE", "1000,10000,50000"):
            if n + 200 > limit:
                print(f"  {n:>6}: skipped: a process may hold {limit} files here (RLIMIT_NOFILE hard limit)")
                continue
            idle[n] = asyncio.run(idle_connections(server, n))
            print(f"  {n:>6}: +{idle[n][0]:.0f} MB, {idle[n][1]:.1f} KB per connection")
        fan = {}
        for n in env_list("WATCHERS", "1000,10000"):
            if n + 200 > limit:
                print(f"  {n:>6} watchers: skipped: above the open-file limit {limit}")
                continue
            fan[n] = watchers(server, n)
            print(f"one write to {n:>6} watchers: p50 {fan[n][0]:.1f} ms, p99 {fan[n][1]:.1f} ms")
        png = os.environ.get("PNG", f"{ROOT}/bench/scale_curve.png")
        plot(png, curve, idle, fan)
        print(f"plotted to {png}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
