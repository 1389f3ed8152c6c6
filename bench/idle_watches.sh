#!/usr/bin/env bash
# Idle memory: frontdoor's RSS once started and idle (embedded defaults, temp dir, loopback),
# then the RSS growth per idle watch over HTTP/1.1 (one TLS connection each) and over HTTP/2
# (100 streams per connection), measured by bench/idle_watches.rs against a fresh server each.
# Goals (issue 19): idle RSS <= 30 MB, <= 8 KB per idle watch.
#
#   bench/idle_watches.sh                   # N=2000, release build (built if missing)
#   N=5000 BIN=/tmp/frontdoor bench/idle_watches.sh
#   MIMALLOC_ARENA_EAGER_COMMIT=0 bench/idle_watches.sh   # mimalloc options pass through
#
# Measured (release, 2 workers, N=2000, Dec 2026): idle 48 MB, HTTP/1.1 58 KB and HTTP/2 10.3 KB
# per watch; with MIMALLOC_ARENA_EAGER_COMMIT=0: idle 28 MB, HTTP/2 7.7 KB, HTTP/1.1 57 KB (an
# established idle TLS connection alone is 45 KB: MODE=tls bench/idle_connections.sh).
# mimalloc built with `no_thp` (Cargo.toml) since, same run as the build before it: idle 47 -> 28 MB,
# HTTP/2 10.2 -> 7.9 KB, HTTP/1.1 59.2 -> 57.2 KB per watch, with no environment set: committed
# arena memory is only resident once touched when it is not backed by transparent huge pages.
# HTTP/1.1 connections in frontdoor's own loop (src/connection.rs), same run as the build before
# (325f018), Dec 4 2026: HTTP/1.1 58.2 -> 30.0 KB per watch, HTTP/2 8.2 -> 8.2 KB, an idle TLS
# connection 44.1 -> 18.8 KB. What an HTTP/1.1 watch still holds: its TLS connection (rustls'
# state and 4 KiB read buffer), pingora's HTTP/1 session with the request and response headers,
# the request context and the watch.
# Where the bytes go (release build on glibc malloc under heaptrack, 300 idle TLS connections
# and 300 idle HTTP/1.1 watches, live heap by allocation site, Dec 4 2026): an idle TLS
# connection 17.9 KB: pingora's rustls TlsStream 4.8 (the server stream, and room for a client
# and a mid-handshake stream it no longer holds), rustls' deframer buffer 4.1 (4 KiB after
# every read), our connection loop 1.5 and task 0.8 (cut below), rustls' resumption cache 1.5
# at N=300 (256 entries at most), the client cert chain twice (rustls, pingora's TlsRef) 1.5,
# rustls' state and AES-GCM keys 2.0, socket/TLS digests and peer identity 0.8, tokio's I/O
# registration 0.3. An HTTP/1.1 watch on top 9.0 KB: the response header pingora keeps
# (value and case maps of 12 slots each for 8 headers) 2.8, the moved response (context,
# watch, its loop) 2.3, the request header and its buffer 1.0, pingora's HTTP/1 session 0.7,
# the context's strings and the query 0.7, the watch's subscription 0.2.
# The loop, the task and the watch's loop cut (7258eef, 9618bee, d399ca2), same run as main,
# N=2000, medians of 2 interleaved rounds: HTTP/1.1 30.1 -> 28.2 KB per watch, HTTP/2 8.4 ->
# 7.6 KB, an idle TLS connection 18.82 -> 17.56 KB; heap by site after them: a TLS connection
# 16.7 KB (loop 0.8, task 0.3), an HTTP/1.1 watch 8.5 KB on top (moved response 1.8).
# One codegen unit in the release profile (9a51633), same run as the build before, N=2000: idle
# 29 -> 26 MB, HTTP/1.1 27.9 -> 28.1 KB and HTTP/2 7.5 -> 7.5 KB per watch (the binary 37 -> 29 MB).
# A detached HTTP/1.1 watch writes its chunks to the connection itself, pingora's session (with
# the request and response headers it keeps) dropped once the header is out
# (`filters::detach::Chunked`), and the secure port's connections are frontdoor's own TLS stream
# over tokio-rustls (`tls::ServerStream`, 1.6 KB where pingora's TlsStream is 4.8 KB and keeps a
# second copy of the client's certificates); same run as the build before (4d18774), N=2000:
# HTTP/1.1 28.1 -> 20.2 KB per watch, HTTP/2 8.0 -> 8.0 KB, idle 26 -> 27 MB.
# rustls' unbuffered API under that stream (`tls::unbuffered`: no buffer held while idle, where
# rustls' buffered connection keeps 4 KiB), then stateless session tickets (rustls kept two
# tickets' sessions with the client's certificates in a cache of 256), a moved watch's session box
# freed, and an HTTP/2 watch's request headers dropped; N=2000, same run as 4d18774: HTTP/1.1
# 28.0 -> 12.5 -> 11.4 KB per watch, HTTP/2 8.1 -> 8.1 -> 7.7 KB; an established idle TLS
# connection 17.55 -> 6.06 KB (MODE=tls bench/idle_connections.sh). What an HTTP/1.1 watch still
# holds (heaptrack, glibc malloc, 300 watches, live heap by site, before the last three changes):
# the moved response (its request context, the watch and its loop) 2.3 KB, the connection's TLS
# stream 1.6, its loop 0.7 and task 0.3, an unnamed 0.65 from the connection's task, rustls'
# AES-GCM keys 1.15 and state 0.2, the client's certificates 0.95, the socket digest 0.4, the
# request's RequestInfo 0.3, query 0.2, TLS digest and identity 0.16, and smaller pieces.
# Then (N=2000, same run each, Dec 5 2026): the connection loop's wait boxed, one timer per watch,
# audit state and impersonated user boxed in the request context (856 -> 616 bytes), a moved
# response's query freed: HTTP/1.1 11.5 -> 10.4 KB per watch, HTTP/2 7.6 -> 7.0 KB (heaptrack: a
# watch on top of its connection 3,516 -> 2,652 bytes); the secure port on a socket of its own
# (src/socket.rs) instead of pingora's L4 stream and its held socket digest: HTTP/1.1 10.4 -> 9.4 KB,
# HTTP/2 6.9 -> 7.0 KB, an established idle TLS connection 6.08 -> 5.20 KB. What is left of an
# HTTP/1.1 watch is mostly rustls' (heaptrack, before the socket change): its connection 1.1 KB,
# AES-GCM keys 1.1, the client's certificate chain 0.9, its handshake deframer's spare room 0.64
# (16 spans, kept for the connection's life), its state 0.2: ~4 KB that no rustls API gives back.
# Then (Dec 6 2026, N=2000, two interleaved rounds against c6fdfef): a watch's moved response
# 1,912 -> 1,248 bytes (its body and pingora's settings held once, the initial events' writes
# boxed, no wait of its own on the drain, the context 616 -> 480 bytes), the TLS stream 1,312 ->
# 1,280 bytes and the connection's loop 312 -> 152 (debug), each past a mimalloc size class:
# HTTP/1.1 9.3-9.4 -> 8.4 KB per watch, HTTP/2 6.9 -> 6.5 KB, an established idle TLS connection
# 5.22 -> 5.02 KB, idle RSS 27-29 MB (the binary's resident text varies 11-13 MB from build to
# build: /proc/PID/smaps).
# Then (Dec 6 2026, N=2000, two interleaved rounds against 0216c8b): RequestInfo one text with
# spans (296 bytes and up to nine allocations -> 120 bytes and one), APF's watch registration
# naming its watch by the request's Arc<RequestInfo> (four String copies before), the request's
# user shared with the connection's certificate identity or the token cache (the context 480 ->
# 392 bytes, and no copy of the user's strings): HTTP/1.1 8.4-8.5 -> 7.8 KB per watch (RequestInfo
# alone 8.1), HTTP/2 6.5-6.7 -> 5.9-6.0 KB, idle RSS 27-28 MB.
# Then (Dec 6 2026, N=2000, two interleaved rounds against 1ecfd26): a watch's moved response 1,088
# -> 1,016 bytes, from mimalloc's 1,280-byte class into its 1,024 one (the selectors boxed, most
# watches have none; the apiVersion a `Box<str>`; the request log's verb a `&'static str`; the
# context 320 -> 304 bytes without the authenticator's name, which nothing read): HTTP/1.1 7.9-8.0
# -> 7.7-7.8 KB per watch, HTTP/2 5.8 -> 5.7-5.8 KB. Compare binaries written at the same time: a
# freshly copied binary's file pages are mapped ~2 MB more (RssFile, same binary) than an old copy's.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${N:-2000}
TGT=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-$TGT/release/frontdoor}
[ -x "$BIN" ] || cargo build --release --bin frontdoor >&2
cargo build --quiet --example idle_watches >&2
CLIENT=$TGT/debug/examples/idle_watches
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

TMP=$(mktemp -d)
FD_PID=""
cleanup() {
  [ -n "$FD_PID" ] && kill "$FD_PID" 2>/dev/null && wait "$FD_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

start() {
  rm -rf "$TMP/data"
  PORT=$((30000 + RANDOM % 2000))
  FRONTDOOR_LOG=warn "$BIN" serve --secure-port "$PORT" --cert-dir "$TMP/certs" --data-dir "$TMP/data" \
    --policy-dir "$TMP/policies" >"$TMP/log" 2>&1 &
  FD_PID=$!
  for _ in $(seq 200); do
    [ -f "$TMP/certs/admin.kubeconfig" ] && curl -sk -o /dev/null "https://127.0.0.1:$PORT/readyz" && break
    sleep 0.1
  done
}
stop() { kill "$FD_PID"; wait "$FD_PID" 2>/dev/null || true; FD_PID=""; }

start
sleep 3
echo "idle RSS after start: $(( $(rss_kb "$FD_PID") / 1024 )) MB ($(rss_kb "$FD_PID") KB; goal <= 30 MB)"
for mode in h1 h2; do
  [ -n "$FD_PID" ] || start
  "$CLIENT" "$FD_PID" "$PORT" "$TMP/certs" "$mode" "$N"
  stop
done
