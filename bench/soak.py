#!/usr/bin/env python3
"""Soak: frontdoor under a bounded mixed load for DURATION, with policy reloads (some invalid)
and an aggregated backend that misbehaves; every INTERVAL it prints frontdoor's RSS, open fds,
in-flight and APF seats and the error counts, and at the end first vs last RSS and a verdict.

Run through bench/soak.sh (it picks the binary). Standard library only, plus `cryptography` for
the backend's certificate.

The load (threads, each pacing itself so the run leaves a shared machine usable):
  store    create / get / update / delete configmaps, and lists
  watch    configmap watches of a few seconds each, read to their end
  proxied  the backend's healthy path, and each of its faults in turn: reset before headers,
           EOF, garbage, reset mid-body, a hang cut by ?timeout=1s, a slow drip, 500/502/503,
           a 16 MiB body, a watch the backend drops
  reloads  every RELOAD_EVERY seconds one policy file rewritten (RBAC, flow control,
           APIServices), every fourth version invalid
A request "fails" when its answer is not the one that fault should give (the faults' 503s and
504s are expected answers, counted apart as "faults").
"""

import collections
import datetime
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from benchlib import free_port

GROUP = "faults.example.com"
THINGS = f"/apis/{GROUP}/v1/namespaces/default/things"


def log(msg):
    print(msg, flush=True)


def parse_duration(s):
    m = re.fullmatch(r"(\d+)([smh]?)", s)
    if not m:
        sys.exit(f"DURATION like 30m, 600s or 1h, not {s!r}")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


# ---------------------------------------------------------------- the backend's certificate


def backend_pki(dir):
    """A CA and a serving cert for api.faults.svc; returns (ca_pem, cert_path, key_path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject, issuer, key, sign_key, ca, sans=()):
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
        return b.sign(sign_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("soak-backend-ca", "soak-backend-ca", ca_key, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = cert("api.faults.svc", "soak-backend-ca", key, ca_key, False, ["api.faults.svc"])
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = os.path.join(dir, "backend.crt"), os.path.join(dir, "backend.key")
    with open(cert_path, "wb") as f:
        f.write(pem(leaf))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return pem(ca).decode(), cert_path, key_path


# ---------------------------------------------------------------- the fault backend


class FaultBackend:
    """TLS (client cert required), HTTP/1.1 by hand, one thread per connection; the same
    faults as tests/e2e/backend/faults.rs."""

    def __init__(self, cert, key, client_ca):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx = ctx
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    @staticmethod
    def reset(conn):
        """Closes with SO_LINGER 0: the peer reads a TCP reset."""
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    def serve(self, raw):
        raw.settimeout(120)
        try:
            # raw is detached by the wrap: only conn is used after it
            conn = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                target = line.split()[1].decode()
                while f.readline() not in (b"\r\n", b"\n", b""):
                    pass
                path, _, query = target.partition("?")
                q = dict(kv.split("=", 1) for kv in query.split("&") if "=" in kv)
                if not self.answer(conn, path, q):
                    return
        except (OSError, ssl.SSLError, IndexError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    @staticmethod
    def send(conn, code, body, extra=""):
        conn.sendall(
            f"HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n{body}".encode()
        )
        return True

    def answer(self, conn, path, q):
        """Answers one request; False when the connection is done."""
        if path == f"/apis/{GROUP}/v1":
            res = {"name": "things", "singularName": "thing", "namespaced": True, "kind": "Thing", "verbs": ["get", "list", "watch"]}
            return self.send(conn, 200, json.dumps({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/v1", "resources": [res]}))
        fault = path[len(THINGS) :].lstrip("/") if path.startswith(THINGS) else None
        chunked = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        if fault == "ok":
            return self.send(conn, 200, '{"kind":"Thing","metadata":{"name":"ok"}}')
        if fault == "reset-before-headers":
            self.reset(conn)
            return False
        if fault == "eof-before-headers":
            return False
        if fault == "garbage":
            conn.sendall(b"\x00\x01 this is not HTTP \xff\r\n\r\n")
            return False
        if fault == "reset-mid-body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + b" " * 65536)
            time.sleep(0.05)
            self.reset(conn)
            return False
        if fault == "hang":
            conn.settimeout(60)
            try:
                while conn.recv(1024):
                    pass
            except OSError:
                pass
            return False
        if fault == "drip":
            conn.sendall(chunked.encode())
            for i in range(int(q.get("n", "10"))):
                time.sleep(int(q.get("delay", "100")) / 1000)
                conn.sendall(b"1\r\n" + bytes([97 + i % 26]) + b"\r\n")
            conn.sendall(b"0\r\n\r\n")
            return True
        if fault and fault.startswith("status/"):
            code = int(fault[7:])
            body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": f"the backend says {code}", "code": code})
            return self.send(conn, code, body, "X-Backend: faults\r\n")
        if fault == "big":
            conn.sendall(chunked.encode())
            chunk = b"%x\r\n" % 65536 + b"x" * 65536 + b"\r\n"
            for _ in range(int(q.get("mb", "1")) * 16):
                conn.sendall(chunk)
            conn.sendall(b"0\r\n\r\n")
            return True
        if fault == "" and q.get("watch") == "true":
            ev = b'{"type":"ADDED","object":{"kind":"Thing","metadata":{"name":"t1"}}}\n'
            conn.sendall(chunked.encode() + b"%x\r\n" % len(ev) + ev + b"\r\n")
            time.sleep(0.3)
            self.reset(conn)
            return False
        return self.send(conn, 404, "{}")


# ---------------------------------------------------------------- policy files


def apiservices(ca_pem, i):
    import base64

    bundle = base64.b64encode(ca_pem.encode()).decode()
    return (
        f"apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {{name: v1.{GROUP}}}\nspec:\n"
        f"  group: {GROUP}\n  version: v1\n  groupPriorityMinimum: 1000\n  versionPriority: 15\n"
        f"  service: {{namespace: faults, name: api, port: 443}}\n  caBundle: {bundle}\n---\n"
        f"apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {{name: v1.x{i % 7}.example.com}}\nspec:\n"
        f"  group: x{i % 7}.example.com\n  version: v1\n  groupPriorityMinimum: 100\n  versionPriority: 10\n"
        f"  service: {{namespace: x, name: x, port: 443}}\n  insecureSkipTLSVerify: true\n"
    )


def rbac(i):
    return (
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: team, namespace: default}\nrules:\n"
        f"- apiGroups: [\"\"]\n  resources: [configmaps, extra{i}]\n  verbs: [get, list]\n"
    )


def flowcontrol(i):
    return (
        "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: PriorityLevelConfiguration\nmetadata: {name: team}\n"
        f"spec:\n  type: Limited\n  limited:\n    nominalConcurrencyShares: {10 + i % 5}\n    limitResponse: {{type: Reject}}\n"
    )


INVALID = {
    "rbac": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\nsubjects: []\n",
    "flowcontrol": "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: PriorityLevelConfiguration\nmetadata: {name: team}\nspec: [\n",
    "apiservices": "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1.x.example.com}\nspec: [\n",
}


def put(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp~"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


# ---------------------------------------------------------------- clients


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = collections.Counter()
        self.errors = collections.Counter()

    def add(self, key, n=1):
        with self.lock:
            self.c[key] += n

    def fail(self, what):
        with self.lock:
            self.c["failed"] += 1
            self.errors[what[:400]] += 1

    def snapshot(self):
        with self.lock:
            return collections.Counter(self.c)


class Client:
    def __init__(self, port, certs):
        ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
        ctx.load_cert_chain(os.path.join(certs, "admin.crt"), os.path.join(certs, "admin.key"))
        self.ctx, self.port, self.conn = ctx, port, None

    def request(self, method, path, body=None, timeout=30, read=True):
        """(status, body bytes); the connection is kept for the next request when it can be."""
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)
            self.conn.timeout = timeout
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read() if read else r
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # a kept-alive connection the server had closed: once more on a new one
                self.close()
                if attempt == 1:
                    raise
            except Exception:
                self.close()
                raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def store_worker(port, certs, stats, stop, n):
    c = Client(port, certs)
    base = "/api/v1/namespaces/default/configmaps"
    i = 0
    while not stop.is_set():
        i += 1
        name = f"soak-{n}-{i % 50}"
        try:
            obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"i": str(i)}}
            code, _ = c.request("POST", base, json.dumps(obj))
            if code == 409:  # left from an earlier round: replace it
                code, got = c.request("GET", f"{base}/{name}")
                if code == 200:
                    cur = json.loads(got)
                    cur["data"] = {"i": str(i)}
                    code, _ = c.request("PUT", f"{base}/{name}", json.dumps(cur))
            ok = code in (200, 201)
            code2, _ = c.request("GET", f"{base}?limit=20")
            ok = ok and code2 == 200
            if i % 2 == 0:
                code3, _ = c.request("DELETE", f"{base}/{name}")
                ok = ok and code3 == 200
            stats.add("store")
            if not ok:
                stats.fail(f"store: {code} {code2}")
        except Exception as e:
            stats.fail(f"store: {type(e).__name__}: {e}")
        stop.wait(0.05)


def watch_worker(port, certs, stats, stop):
    c = Client(port, certs)
    while not stop.is_set():
        try:
            code, data = c.request("GET", "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=5", timeout=30)
            stats.add("watch")
            stats.add("watch events", data.count(b"\n"))
            if code != 200:
                stats.fail(f"watch: {code}")
        except Exception as e:
            stats.fail(f"watch: {type(e).__name__}: {e}")
        c.close()
        stop.wait(0.2)


def expect_status(code, data, want_code, want_reason, want_prefix):
    try:
        v = json.loads(data)
    except ValueError:
        return False
    return code == want_code and v.get("kind") == "Status" and v.get("reason") == want_reason and v.get("message", "").startswith(want_prefix)


FAULTS = [
    "ok",
    "reset-before-headers",
    "eof-before-headers",
    "garbage",
    "reset-mid-body",
    "hang",
    "drip",
    "status/500",
    "status/502",
    "status/503",
    "big",
    "watch",
]


def proxy_worker(port, certs, stats, stop, n):
    c = Client(port, certs)
    i = n
    while not stop.is_set():
        i += 1
        fault = FAULTS[i % len(FAULTS)] if i % 3 else "ok"
        try:
            if fault in ("reset-before-headers", "eof-before-headers", "garbage"):
                code, data = c.request("GET", f"{THINGS}/{fault}")
                ok = expect_status(code, data, 503, "ServiceUnavailable", "error trying to reach service: ")
            elif fault == "hang":
                code, data = c.request("GET", f"{THINGS}/hang?timeout=1s")
                ok = expect_status(code, data, 504, "Timeout", "Timeout: request did not complete")
            elif fault == "reset-mid-body":
                try:
                    code, data = c.request("GET", f"{THINGS}/reset-mid-body")
                    ok = code == 200 and len(data) < 1 << 20
                except http.client.IncompleteRead:
                    ok = True
                c.close()
            elif fault == "drip":
                code, data = c.request("GET", f"{THINGS}/drip?n=5&delay=100")
                ok = code == 200 and data == b"abcde"
            elif fault.startswith("status/"):
                code, data = c.request("GET", f"{THINGS}/{fault}")
                ok = code == int(fault[7:]) and b"the backend says" in data
            elif fault == "big":
                code, data = c.request("GET", f"{THINGS}/big?mb=16", timeout=60)
                ok = code == 200 and len(data) == 16 << 20
            elif fault == "watch":
                try:
                    code, data = c.request("GET", f"{THINGS}?watch=true")
                    ok = code == 200 and b'"t1"' in data
                except http.client.IncompleteRead as e:
                    ok = b'"t1"' in e.partial
                c.close()
            else:
                code, data = c.request("GET", f"{THINGS}/ok")
                ok = code == 200
            stats.add("proxied")
            if fault != "ok":
                stats.add("faults")
            if not ok:
                stats.fail(f"{fault}: {code} {data[:300]!r}")
        except Exception as e:
            stats.fail(f"{fault}: {type(e).__name__}: {e}")
            c.close()
        stop.wait(0.05)


def reloader(root, ca_pem, stats, stop, every):
    i = 0
    files = {
        "rbac": (os.path.join(root, "policies/rbac/team.yaml"), rbac),
        "flowcontrol": (os.path.join(root, "policies/flowcontrol/team.yaml"), flowcontrol),
        "apiservices": (os.path.join(root, "policies/apiservices.yaml"), lambda i: apiservices(ca_pem, i)),
    }
    names = list(files)
    while not stop.wait(every):
        i += 1
        name = names[i % len(names)]
        path, valid = files[name]
        invalid = i % 4 == 0
        put(path, INVALID[name] if invalid else valid(i))
        stats.add("reloads invalid" if invalid else "reloads valid")
        if invalid:
            # the valid version again a moment later, so that the bad one is never left standing
            stop.wait(1)
            put(path, valid(i))


# ---------------------------------------------------------------- frontdoor's figures


def proc(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) * 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def metrics(mport):
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10) as r:
        return r.read().decode(errors="replace")


def msum(text, prefix, filt=lambda l: True):
    total = 0.0
    for l in text.splitlines():
        if l.startswith(prefix) and filt(l):
            try:
                total += float(l.rsplit(" ", 1)[1])
            except ValueError:
                pass
    return total


def figures(pid, mport):
    rss, fds = proc(pid)
    m = metrics(mport)
    return {
        "rss": rss,
        "fds": fds,
        "inflight": msum(m, "apiserver_current_inflight_requests{"),
        "seats": msum(m, "apiserver_flowcontrol_current_executing_seats{"),
        "executing": msum(m, "apiserver_flowcontrol_current_executing_requests{"),
        "5xx": msum(m, "apiserver_request_total{", lambda l: re.search(r'code="5\d\d"', l) is not None),
        "reload_fail": msum(m, "frontdoor_policy_reload_total{", lambda l: 'result="failure"' in l),
        "reload_ok": msum(m, "frontdoor_policy_reload_total{", lambda l: 'result="success"' in l),
    }


HEADER = f"{'min':>4} {'RSS MiB':>8} {'fds':>5} {'inflight':>8} {'seats':>5} {'exec':>5} {'requests':>9} {'failed':>6} {'faults':>7} {'fd 5xx':>7} {'reloads ok/fail':>15}"


def row(label, f, s):
    reqs = s["store"] * 3 + s["watch"] + s["proxied"]
    return (
        f"{label:>4} {f['rss'] / 2**20:8.1f} {f['fds']:5d} {f['inflight']:8.0f} {f['seats']:5.0f} {f['executing']:5.0f} "
        f"{reqs:9d} {s['failed']:6d} {s['faults']:7d} {f['5xx']:7.0f} {f['reload_ok']:7.0f}/{f['reload_fail']:<7.0f}"
    )


def main():
    duration = parse_duration(sys.argv[1] if len(sys.argv) > 1 else "30m")
    interval = int(os.environ.get("SOAK_INTERVAL", "60"))
    reload_every = float(os.environ.get("SOAK_RELOAD_EVERY", "3"))
    binary = os.environ["FRONTDOOR_BIN"]
    root = tempfile.mkdtemp(prefix="frontdoor-soak-")
    certs = os.path.join(root, "certs")
    subprocess.run([binary, "certs", "init", "--dir", certs], check=True, stdout=subprocess.DEVNULL)
    ca_pem, bcert, bkey = backend_pki(root)
    backend = FaultBackend(bcert, bkey, os.path.join(certs, "front-proxy-ca.crt"))
    put(os.path.join(root, "policies/apiservices.yaml"), apiservices(ca_pem, 0))
    put(os.path.join(root, "policies/rbac/team.yaml"), rbac(0))
    put(os.path.join(root, "policies/flowcontrol/team.yaml"), flowcontrol(0))
    port, mport = free_port(), free_port()
    logf = open(os.path.join(root, "frontdoor.log"), "w")
    fd = subprocess.Popen(
        [binary, "serve", "--secure-port", str(port), "--cert-dir", certs, "--data-dir", os.path.join(root, "data"),
         "--policy-dir", os.path.join(root, "policies"), "--service-endpoint", f"faults/api:443=127.0.0.1:{backend.port}",
         "--apiservice-check-interval", "2s", "--metrics-bind-address", f"127.0.0.1:{mport}", "--request-timeout", "10s",
         *os.environ.get("SOAK_ARGS", "").split()],
        stdout=logf, stderr=subprocess.STDOUT, env={**os.environ, "FRONTDOOR_LOG": os.environ.get("FRONTDOOR_LOG", "warn")},
    )
    try:
        run(fd, port, mport, certs, root, ca_pem, duration, interval, reload_every)
    finally:
        fd.send_signal(signal.SIGKILL)
        fd.wait()
        if os.environ.get("SOAK_KEEP"):
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def run(fd, port, mport, certs, root, ca_pem, duration, interval, reload_every):
    c = Client(port, certs)
    deadline = time.time() + 60
    while True:
        try:
            if c.request("GET", f"{THINGS}/ok", timeout=5)[0] == 200:
                break
        except Exception:
            pass
        if time.time() > deadline or fd.poll() is not None:
            sys.exit(f"frontdoor did not come up; log in {root}/frontdoor.log")
        time.sleep(0.2)
    c.close()
    log(f"frontdoor pid {fd.pid} on :{port} (metrics :{mport}), {sys.argv[1] if len(sys.argv) > 1 else '30m'}, a row every {interval}s")
    stats, stop = Stats(), threading.Event()
    threads = [threading.Thread(target=store_worker, args=(port, certs, stats, stop, n)) for n in range(2)]
    threads += [threading.Thread(target=watch_worker, args=(port, certs, stats, stop)) for _ in range(2)]
    threads += [threading.Thread(target=proxy_worker, args=(port, certs, stats, stop, n)) for n in range(3)]
    threads += [threading.Thread(target=reloader, args=(root, ca_pem, stats, stop, reload_every))]
    for t in threads:
        t.start()
    log(HEADER)
    rows = []
    start = time.time()
    k = 0
    try:
        while True:
            k += 1
            left = start + k * interval - time.time()
            if left > 0:
                time.sleep(left)
            if fd.poll() is not None:
                sys.exit(f"frontdoor exited ({fd.returncode}); log in {root}/frontdoor.log")
            f = figures(fd.pid, mport)
            rows.append(f)
            log(row(str(k * interval // 60) if interval % 60 == 0 else f"{k * interval}s", f, stats.snapshot()))
            if time.time() - start >= duration:
                break
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=90)
    # the load stopped: nothing may stay held
    time.sleep(3)
    end = figures(fd.pid, mport)
    s = stats.snapshot()
    log(row("end", end, s))
    first, last = rows[0]["rss"], rows[-1]["rss"]
    peak = max(r["rss"] for r in rows)
    growth = last - first
    log(f"RSS first {first / 2**20:.1f} MiB, last {last / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB, growth {growth / 2**20:+.1f} MiB")
    # the second half against the first: a leak keeps climbing, a warmed-up heap does not
    half = rows[len(rows) // 2 :]
    half_growth = half[-1]["rss"] - half[0]["rss"] if len(half) > 1 else 0
    log(f"second-half growth {half_growth / 2**20:+.1f} MiB; fds first {rows[0]['fds']}, last {rows[-1]['fds']}, after the load {end['fds']}")
    if stats.errors:
        log("failures by kind:")
        for what, n in stats.errors.most_common(10):
            log(f"  {n:6d}  {what}")
    held = end["inflight"] + end["seats"] + end["executing"]
    # flat: the second half grows by less than 8 MiB. The first minutes fill what is bounded
    # but large (the store's replayable event window, 10,000 events by default, the allocator's
    # arenas), so first vs last is printed, not judged.
    flat = len(rows) >= 4 and half_growth < 8 * 2**20
    verdict = "PASS" if flat and held == 0 and s["failed"] == 0 else "FAIL"
    reasons = [] if flat else ["memory not flat in the second half" if len(rows) >= 4 else "too short to judge (4 rows at least)"]
    if held:
        reasons.append(f"seats held after the load: inflight {end['inflight']:.0f}, seats {end['seats']:.0f}, executing {end['executing']:.0f}")
    if s["failed"]:
        reasons.append(f"{s['failed']} failed requests")
    log(f"verdict: {verdict}" + (f" ({'; '.join(reasons)})" if reasons else ": memory flat, no seat held, no failed request"))
    sys.exit(0 if verdict == "PASS" else 1)


if __name__ == "__main__":
    main()
