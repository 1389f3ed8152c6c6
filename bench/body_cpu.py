#!/usr/bin/env python3
"""CPU time one request body costs frontdoor, accepted or refused, for the body shapes that
cost a parser most (issue #14: every body within 100 ms of CPU), and the densest bodies again as
updates of a stored object (a PUT and a merge patch, each against the whole object). Starts the release binary on
embedded defaults in a temporary directory, sends each body ROUNDS times as admin, and prints
the median CPU time of the whole process per request (every thread, from
/proc/PID/task/*/schedstat) with the answer's code. Loopback only; bounded.

    bench/body_cpu.py [rounds=5]          (builds with `cargo build --release` first; NO_BUILD=1 skips it;
                                          ONLY=<part of a shape's name> runs that shape alone)

Measured 2026-12-05 (2-core shared machine, medians of 5, two builds in one session): the densest
3 MiB ConfigMap (265k keys) create 113 -> 103 ms, its PUT 132 -> 89 ms, once mimalloc keeps freed
memory 10 s (src/allocator.rs: ~20k -> ~10k page faults per create); the same keys shuffled,
create 124 -> 114 ms and PUT 116 -> 111 ms with the gather into key order prefetched. Where the
sorted create's ~100 ms goes (perf): decoding ~40 (the map's tree ~10), the managedFields tree
~20, serializing the stored object ~12, lz4 ~8, redb ~8, validation ~6, page faults for the
~44 MB the stored object keeps (two trees of 265k entries and its bytes) spread over all of them.

Measured 2026-12-05 (third session; same machine, three rounds of medians of 5, the previous build
and this one interleaved), once managedFields' sets are held as text (src/store/fields_v1.rs) and
an update's diff compares empty strings by length (glibc's AVX-512 memcmp costs a microcode assist
on an empty String's dangling pointer, ~50 ns a call):
    densest create            109-113 -> 84-95 ms
    densest create, shuffled  118-135 -> 102-121 ms
    densest PUT                89-96  -> 76-82 ms
    densest PUT, shuffled     109-114 -> 99-102 ms
    merge patch (either)       62-73  -> 44-51 ms
What remains of the shuffled create is walks over keys held in no memory order: the decode's
sort and the map's own sort and dedup (~15%), validation (~7%), writing the set and the object
(~10%), lz4 (~6%). Copying the keys into sorted order after the sort ("rehoming") was tried twice
and costs what it saves.
"""
import os, random, shutil, socket, ssl, statistics, subprocess, sys, tempfile, time, http.client, json
from benchlib import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
MIB3 = 3 * 1024 * 1024 - 8192  # under kube's 3 MiB body limit, room for the envelope


def cm_json(data):
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "b-"}, "data": data})


def fill(unit, size=MIB3, head="", tail=""):
    n = (size - len(head) - len(tail)) // len(unit)
    return head + unit * n + tail


def densest(size=MIB3):
    """The most keys a ConfigMap body within kube's limit holds: the shortest keys, empty values."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    data, used, i = {}, 0, 0
    while True:
        n, key = i, ""
        while True:
            key = digits[n % 36] + key
            n //= 36
            if n == 0:
                break
        used += len(key) + 8  # "key": "", (json.dumps spacing)
        if used > size - 100:
            return data
        data[key] = ""
        i += 1


def shuffled(data):
    """The same keys in a random order: what a map sorted on the way in costs most."""
    keys = list(data)
    random.Random(14).shuffle(keys)
    return {k: data[k] for k in keys}


def yaml_cm(lines):
    return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: b-\ndata:\n" + lines


def shapes():
    keys = {f"k{i}": "v" for i in range(MIB3 // 16)}
    yield "json: configmap, ~200k keys (accepted)", "application/json", cm_json(keys)
    yield "json: configmap, densest keys (accepted)", "application/json", cm_json(densest())
    yield "json: configmap, densest keys shuffled (accepted)", "application/json", cm_json(shuffled(densest()))
    yield "json: 1.5M tiny scalars (refused)", "application/json", fill("1,", head="[", tail="1]")
    yield "json: nested 99 deep, repeated", "application/json", \
        cm_json({"a": "x"})[:-1] + ',"spec":' + fill("[" * 97 + "]" * 97 + ",", head="[", tail="1]") + "}"
    yield "yaml: configmap at the token bound (accepted)", "application/yaml", \
        yaml_cm("".join(f"  k{i}: v{i}\n" for i in range(66_000)))
    yield "yaml: 3 MiB of tiny tokens (refused)", "application/yaml", fill("- a\n", head="x:\n")
    yield "yaml: flow nested 99 deep at the bound (refused)", "application/yaml", \
        fill("- " + "[" * 99 + "]" * 99 + "\n", size=199 * 1000)
    yield "yaml: 3 MiB block scalar (accepted)", "application/yaml", \
        yaml_cm("  big: |\n" + fill("    lorem ipsum dolor sit amet consectetur\n", size=MIB3 - 100))
    yield "yaml: aliases to the node bound (refused)", "application/yaml", \
        "a: &a [" + ",".join(["x"] * 1000) + "]\nb: [" + ",".join(["*a"] * 198) + "]\n"


def cpu_ns(pid):
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def main():
    if not os.environ.get("NO_BUILD"):
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "frontdoor"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp()
    port = free_port()
    proc = subprocess.Popen(
        [os.path.join(TARGET, "release", "frontdoor"), "serve", "--secure-port", str(port),
         "--cert-dir", f"{work}/certs", "--data-dir", f"{work}/data", "--policy-dir", f"{work}/none"],
        stdout=subprocess.DEVNULL, stderr=open(f"{work}/log", "w"))
    try:
        ctx = ssl.create_default_context(cafile=None)
        for _ in range(100):
            if os.path.exists(f"{work}/certs/admin.key"):
                break
            time.sleep(0.1)
        time.sleep(0.5)
        ctx = ssl.create_default_context(cafile=f"{work}/certs/ca.crt")
        ctx.load_cert_chain(f"{work}/certs/admin.crt", f"{work}/certs/admin.key")
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
        for _ in range(100):
            try:
                conn.request("GET", "/readyz")
                if conn.getresponse().read() == b"ok":
                    break
            except OSError:
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
            time.sleep(0.1)
        print(f"{'body':52} {'bytes':>9} {'code':>4} {'cpu ms (median of ' + str(ROUNDS) + ')':>24}")
        only = os.environ.get("ONLY", "")  # a part of a shape's name, to run that one
        for name, ctype, body in shapes():
            if only not in name:
                continue
            body = body.encode()
            times, code = [], 0
            for _ in range(ROUNDS):
                before = cpu_ns(proc.pid)
                conn.request("POST", "/api/v1/namespaces/default/configmaps", body=body,
                             headers={"Content-Type": ctype})
                r = conn.getresponse()
                r.read()
                code = r.status
                time.sleep(0.2)  # let the audit, watch fan-out and drop of the request finish
                times.append((cpu_ns(proc.pid) - before) / 1e6)
            print(f"{name:52} {len(body):>9} {code:>4} {statistics.median(times):>24.1f}")
        # the same densest bodies as updates of a stored object: a PUT changing one value (its
        # resourceVersion given) and a merge patch adding one key, each against the full object
        for label, data in [("densest keys", densest()), ("densest keys shuffled", shuffled(densest()))]:
            if only and only not in "update: " + label:
                continue
            name = "upd-" + str(len(label))
            obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
            conn.request("POST", "/api/v1/namespaces/default/configmaps", body=json.dumps(obj).encode(),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            rv = json.loads(r.read())["metadata"]["resourceVersion"]
            path = f"/api/v1/namespaces/default/configmaps/{name}"
            first = next(iter(data))
            for what in ("PUT, one value changed", "merge patch, one key added"):
                times, code = [], 0
                for i in range(ROUNDS):
                    if what.startswith("PUT"):
                        obj["metadata"]["resourceVersion"] = rv
                        obj["data"][first] = str(i)
                        req = ("PUT", json.dumps(obj).encode(), "application/json")
                    else:
                        req = ("PATCH", json.dumps({"data": {f"added-{i}": "1"}}).encode(), "application/merge-patch+json")
                    before = cpu_ns(proc.pid)
                    conn.request(req[0], path, body=req[1], headers={"Content-Type": req[2]})
                    r = conn.getresponse()
                    out = r.read()
                    code = r.status
                    if code == 200:
                        rv = json.loads(out)["metadata"]["resourceVersion"]
                    time.sleep(0.2)
                    times.append((cpu_ns(proc.pid) - before) / 1e6)
                shown = f"update: {label}: {what}"
                print(f"{shown:52} {len(req[1]):>9} {code:>4} {statistics.median(times):>24.1f}")
        # a list of as many finalizers as a body holds, updated: a merge patch adding one (the
        # whole list compared with the stored one, item by item) and a server-side apply of it
        # (merged into the stored set); each item found by an index, not a search per item
        if not only or only in "update: finalizers":
            fins = [f"example.com/f{i}" for i in range(MIB3 // 24)]
            obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fins", "finalizers": fins}}
            conn.request("POST", "/api/v1/namespaces/default/configmaps", body=json.dumps(obj).encode(),
                         headers={"Content-Type": "application/json"})
            conn.getresponse().read()
            path = "/api/v1/namespaces/default/configmaps/fins"
            for what in ("merge patch, one added", "server-side apply"):
                times, code = [], 0
                for i in range(ROUNDS):
                    if what.startswith("merge"):
                        fins.append(f"example.com/added-{i}")
                        req = ("PATCH", "?", json.dumps({"metadata": {"finalizers": fins}}), "application/merge-patch+json")
                    else:
                        req = ("PATCH", f"?fieldManager=bench{i}&force=true", json.dumps(obj), "application/apply-patch+yaml")
                    before = cpu_ns(proc.pid)
                    conn.request(req[0], path + req[1], body=req[2].encode(), headers={"Content-Type": req[3]})
                    r = conn.getresponse()
                    r.read()
                    code = r.status
                    time.sleep(0.2)
                    times.append((cpu_ns(proc.pid) - before) / 1e6)
                shown = f"update: {len(fins) // 1000}k finalizers: {what}"
                print(f"{shown:52} {len(req[2]):>9} {code:>4} {statistics.median(times):>24.1f}")
        # the idle process's own CPU over the same settle time, to subtract by eye
        before = cpu_ns(proc.pid)
        time.sleep(0.2)
        print(f"{'(idle, 0.2 s)':52} {'':>9} {'':>4} {(cpu_ns(proc.pid) - before) / 1e6:>24.1f}")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)  # ~40 MB of store per run


if __name__ == "__main__":
    main()
