#!/usr/bin/env python3
"""LIST cost against a baseline binary (issue #19: lists served from stored bytes, >= 10x
kube-apiserver on the 100-item list, linear cost in items). Starts this build's release binary
and BASELINE (a path) on embedded redb in temporary directories, fills a namespace with 10, 100
and 1000 small ConfigMaps in each (created through the API, managedFields and all), then loads
`GET /api/v1/namespaces/lN/configmaps` with wrk (a bearer token in system:masters), the two
binaries interleaved round by round, and prints medians of req/s, p50 and p99 per size, the
ratio to the baseline, and the cost per item (microseconds of wall time per item at that
throughput: flat or falling with N means linear cost). With RSS_OBJECTS=N it also prints each
binary's RSS with N more ConfigMaps stored. Loopback only; bounded (wrk -d).

    bench/list_items.py BASELINE [rounds=3] [seconds=5]
        env: CONNS=8 THREADS=2 SIZES=10,100,1000 RSS_OBJECTS=0 NO_BUILD=1 (skip cargo build --release)
             ACCEPT=application/json (e.g. application/vnd.kubernetes.protobuf, or a Table)

Measured 2026-12-03 (2-core shared machine, 3 rounds of 5 s, JSON), lists served from stored bytes
against the build before them (9b2dc2d): req/s 23.6k vs 17.8k (10 items), 11.6k vs 4.9k (100),
1.54k vs 0.22k (1000); 4.2 / 0.86 / 0.65 us per item vs 5.6 / 2.0 / 4.7. Protobuf and Table lists
are still serialized from trees (100 items: ~1.2k and ~0.3k req/s on a loaded machine).
Measured 2026-12-04, same machine, against 325f018: Tables and protobuf from stored bytes and one
buffer. JSON 38.0k / 18.9k / 2.05k req/s (10 / 100 / 1000 items; 1.06 / 1.09 / 0.94x, unchanged
path); protobuf 28.8k / 10.6k / 1.33k (1.09 / 1.25 / 1.28x); Table 32.3k / 9.6k / 1.07k
(1.99 / 3.42 / 3.92x; 3.1 / 1.04 / 0.93 us per item).
"""
import http.client, json, os, re, socket, ssl, statistics, subprocess, sys, tempfile, time
from benchlib import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
TOKEN = "list-bench-token"
SIZES = [int(n) for n in os.environ.get("SIZES", "10,100,1000").split(",")]
CONNS = os.environ.get("CONNS", "8")
THREADS = os.environ.get("THREADS", "2")
ACCEPT = os.environ.get("ACCEPT", "application/json")


class Server:
    def __init__(self, name, binary, work):
        self.name, self.port, self.dir = name, free_port(), os.path.join(work, name)
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "tokens.csv"), "w") as f:
            f.write(f'{TOKEN},bench,bench-uid,"system:masters"\n')
        self.proc = subprocess.Popen(
            [binary, "serve", "--bind-address", "127.0.0.1", "--secure-port", str(self.port),
             "--cert-dir", f"{self.dir}/certs", "--data-dir", f"{self.dir}/data",
             "--policy-dir", f"{self.dir}/none", "--token-auth-file", f"{self.dir}/tokens.csv"],
            stdout=subprocess.DEVNULL, stderr=open(f"{self.dir}/log", "w"))
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname, self.ctx.verify_mode = False, ssl.CERT_NONE
        for _ in range(200):
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"{name} did not start; see {self.dir}/log")

    def conn(self):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=60)

    def request(self, method, path, body=None, conn=None):
        c = conn or self.conn()
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()

    def fill(self, ns, n):
        c = self.conn()
        self.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, c)
        for i in range(n):
            cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}", "labels": {"app": "bench"}},
                  "data": {"key": f"value-{i}", "other": "x" * 32}}
            code, body = self.request("POST", f"/api/v1/namespaces/{ns}/configmaps", cm, c)
            if code != 201:
                raise SystemExit(f"{self.name}: create answered {code}: {body[:200]}")

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(next(l for l in f if l.startswith("VmRSS:")).split()[1])

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def ms(v):
    n = float(re.match(r"[\d.]+", v).group())
    return n / 1000 if v.endswith("us") else n * 1000 if v.endswith("s") and not v.endswith("ms") else n


def wrk(server, n, secs):
    out = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{CONNS}", f"-d{secs}s", "--latency", "-H", f"Authorization: Bearer {TOKEN}",
         "-H", f"Accept: {ACCEPT}", f"https://127.0.0.1:{server.port}/api/v1/namespaces/l{n}/configmaps"],
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise SystemExit(f"{server.name}: {bad.group(1)} failed requests")
    return rps, p50, p99


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    baseline = os.path.abspath(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    secs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    if not os.environ.get("NO_BUILD"):
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "frontdoor"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp()
    servers = []
    try:
        servers = [Server("current", os.path.join(TARGET, "release", "frontdoor"), work),
                   Server("baseline", baseline, work)]
        for s in servers:
            for n in SIZES:
                s.fill(f"l{n}", n)
            # the same answer from both (the baseline serializes each item's tree)
            s.body = s.request("GET", f"/api/v1/namespaces/l{SIZES[0]}/configmaps")[1]
        # (the namespace also gets kube-root-ca.crt, published in the background)
        items = [[(i["metadata"]["name"], i.get("data")) for i in json.loads(s.body)["items"]
                  if i["metadata"]["name"] != "kube-root-ca.crt"] for s in servers]
        print(f"LIST of small ConfigMaps, Accept {ACCEPT}, wrk -t{THREADS} -c{CONNS} -d{secs}s, "
              f"medians of {rounds} interleaved rounds")
        if items[0] != items[1]:
            raise SystemExit(f"the two binaries' lists differ in names or data: {items[0][:2]} {items[1][:2]}")
        results = {(s.name, n): [] for s in servers for n in SIZES}
        for r in range(rounds):
            for n in SIZES:
                for s in (servers if r % 2 == 0 else servers[::-1]):
                    results[(s.name, n)].append(wrk(s, n, secs))
        print(f"{'items':>6} {'binary':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'us/item':>8} {'x baseline':>10}")
        for n in SIZES:
            base = statistics.median(x[0] for x in results[("baseline", n)])
            for s in servers:
                rs = results[(s.name, n)]
                rps = statistics.median(x[0] for x in rs)
                p50 = statistics.median(x[1] for x in rs)
                p99 = statistics.median(x[2] for x in rs)
                print(f"{n:>6} {s.name:>9} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f} {1e6 / rps / n:>8.2f} {rps / base:>10.2f}")
        extra = int(os.environ.get("RSS_OBJECTS", "0"))
        if extra:
            for s in servers:
                before = s.rss_kb()
                s.fill("rss", extra)
                filled = s.rss_kb()
                s.request("GET", "/api/v1/namespaces/rss/configmaps")
                listed = s.rss_kb()
                print(f"RSS {s.name}: {before / 1024:.1f} MB; with {extra} more ConfigMaps {filled / 1024:.1f} MB "
                      f"(+{(filled - before) / extra:.2f} KB each), after listing them {listed / 1024:.1f} MB")
    finally:
        for s in servers:
            s.stop()


if __name__ == "__main__":
    main()
