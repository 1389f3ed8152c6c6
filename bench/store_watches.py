#!/usr/bin/env python3
"""End-to-end watch load on a running frontdoor: opens N idle watches (one TLS connection
each, HTTP/1.1, admin client cert), reports the server's RSS growth, then writes one
configmap change and reports how long the event took to reach every watcher (p50/p99/max).

usage: store_watches.py --port P --certs DIR --pid PID [--watches 10000]
"""
import argparse, asyncio, json, ssl, time, urllib.request
from benchlib import rss_mb


def tls(certs):
    ctx = ssl.create_default_context(cafile=f"{certs}/ca.crt")
    ctx.load_cert_chain(f"{certs}/admin.crt", f"{certs}/admin.key")
    return ctx


def request(port, ctx, method, path, body=None):
    req = urllib.request.Request(f"https://127.0.0.1:{port}{path}", method=method,
                                 data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx) as r:
        return json.loads(r.read())


async def open_watch(port, ctx, rv, sem):
    async with sem:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1")
        path = f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n".encode())
        await writer.drain()
        status = await reader.readline()
        assert b" 200 " in status, status
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        return reader, writer


async def first_event(reader):
    # chunked: a size line, then the event line
    while True:
        line = await reader.readline()
        if line.startswith(b"{"):
            return time.perf_counter()
        if not line:
            return None


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--certs", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--watches", type=int, default=10000)
    a = ap.parse_args()
    ctx = tls(a.certs)
    base = request(a.port, ctx, "POST", "/api/v1/namespaces/default/configmaps",
                   {"metadata": {"name": f"bench-{int(time.time())}"}, "data": {"v": "0"}})
    name, rv = base["metadata"]["name"], base["metadata"]["resourceVersion"]
    before = rss_mb(a.pid)
    t0 = time.perf_counter()
    sem = asyncio.Semaphore(200)
    conns = await asyncio.gather(*(open_watch(a.port, ctx, rv, sem) for _ in range(a.watches)))
    opened = time.perf_counter() - t0
    await asyncio.sleep(2)
    after = rss_mb(a.pid)
    print(f"{a.watches} watches open in {opened:.1f}s; server RSS {before:.0f} MB -> {after:.0f} MB "
          f"(+{after - before:.0f} MB, {(after - before) * 1024 / a.watches:.1f} KB per watch)")
    waits = [asyncio.create_task(first_event(r)) for r, _ in conns]
    await asyncio.sleep(0.5)
    sent = time.perf_counter()
    await asyncio.get_running_loop().run_in_executor(None, lambda: request(
        a.port, ctx, "PUT", f"/api/v1/namespaces/default/configmaps/{name}",
        {"metadata": {"name": name}, "data": {"v": "1"}}))
    got = await asyncio.gather(*waits)
    lat = sorted((t - sent) * 1000 for t in got if t)
    if lat:
        pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))]
        print(f"event delivered to {len(lat)}/{a.watches} watchers (write included): "
              f"p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, max {lat[-1]:.1f} ms "
              "(client-side timing; the client process is the bottleneck at high counts)")
    for _, w in conns:
        w.close()


if __name__ == "__main__":
    asyncio.run(main())
