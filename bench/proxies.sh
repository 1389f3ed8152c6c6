# Sourced by the proxy benches: builds frontdoor unless FRONTDOOR_BIN is set, then starts the
# nginx TLS backend (bench/backend.sh), nginx as a TLS reverse proxy with upstream keepalive
# (NG_PID) and frontdoor in front of the same backend (FD_PID), on ports BE, NP and FP; with
# BARE=1 also pingora as a bare proxy (bench/bare_pingora.rs) with the proxy client cert (BC_PID,
# port BCP) and without (BN_PID, port BNP), and (also with HAPROXY=1) HAProxy when installed
# (HP_PID, port HP).
# Expects ROOT and WORKERS; CHECK_INTERVAL is frontdoor's --apiservice-check-interval;
# FRONTDOOR_BASE_BIN adds a second frontdoor build (FB_PID, port FBP) for A/B runs, BARE_BASE_BIN
# a second bare pingora build with the client cert (BB_PID, port BBP).
# shellcheck shell=bash
BIN=${FRONTDOOR_BIN:-}
if [ -z "$BIN" ]; then
  (cd "$ROOT" && cargo build --release --bin frontdoor >&2)
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/frontdoor
fi
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
BE=$(port); NP=$(port); FP=$(port); BCP=$(port); BNP=$(port); HP=$(port)
# the backend, its PKI and frontdoor's, the APIService and the bench token
# shellcheck source=bench/backend.sh
. "$ROOT/bench/backend.sh"

cat > "$TMP/proxy.conf" <<CONF
worker_processes $WORKERS; daemon off; pid $TMP/proxy.pid; error_log $TMP/proxy.err warn;
events { worker_connections 8192; }
http { $COMMON_HTTP
  upstream backend { server 127.0.0.1:$BE; keepalive 128; }
  server {
    listen 127.0.0.1:$NP ssl;
    ssl_certificate $TMP/certs/apiserver.crt; ssl_certificate_key $TMP/certs/apiserver.key;
    location / {
      proxy_pass https://backend;
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_buffering off;
      proxy_ssl_certificate $TMP/certs/front-proxy-client.crt;
      proxy_ssl_certificate_key $TMP/certs/front-proxy-client.key;
      proxy_ssl_trusted_certificate $TMP/be-ca.crt;
      proxy_ssl_verify on; proxy_ssl_name api.bench.svc; proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
    }
  }
}
CONF
nginx -p "$TMP" -e "$TMP/backend.err" -c "$TMP/backend.conf" & PIDS+=($!)
nginx -p "$TMP" -e "$TMP/proxy.err" -c "$TMP/proxy.conf" & PIDS+=($!)
NG_PID=$!
FRONTDOOR_LOG=warn "$BIN" serve --secure-port "$FP" --cert-dir "$TMP/certs" --data-dir "$TMP/data" \
  --policy-dir "$TMP/policies" --apiservices-file "$TMP/apiservices.yaml" \
  --service-endpoint "bench/api:443=127.0.0.1:$BE" --worker-threads "$WORKERS" \
  --apiservice-check-interval "${CHECK_INTERVAL:-1s}" >"$TMP/frontdoor.log" 2>&1 & PIDS+=($!)
FD_PID=$!
# FRONTDOOR_BASE_BIN=path: a second frontdoor (another build, e.g. the commit before a change)
# on port FBP (FB_PID), same PKI, APIService and backend, for A/B runs in the same rounds
FB_PID=""
if [ -n "${FRONTDOOR_BASE_BIN:-}" ]; then
  FBP=$(port)
  FRONTDOOR_LOG=warn "$FRONTDOOR_BASE_BIN" serve --secure-port "$FBP" --cert-dir "$TMP/certs" --data-dir "$TMP/data-base" \
    --policy-dir "$TMP/policies" --apiservices-file "$TMP/apiservices.yaml" \
    --service-endpoint "bench/api:443=127.0.0.1:$BE" --worker-threads "$WORKERS" \
    --apiservice-check-interval "${CHECK_INTERVAL:-1s}" >"$TMP/frontdoor-base.log" 2>&1 & PIDS+=($!)
  FB_PID=$!
fi

# BIN PORT NAME [cert]: pingora as a bare proxy (bench/bare_pingora.rs) on PORT, logging to
# NAME.log, with the proxy client cert when asked
start_bare() {
  local c=$TMP/certs cert=()
  [ "${4:-}" = cert ] && cert=("$c/front-proxy-client.crt" "$c/front-proxy-client.key")
  WORKERS=$WORKERS "$1" "127.0.0.1:$2" "$c/apiserver.crt" "$c/apiserver.key" "127.0.0.1:$BE" api.bench.svc \
    "$TMP/be-ca.crt" "${cert[@]}" >"$TMP/$3.log" 2>&1 &
  PIDS+=($!)
}
if [ "${BARE:-0}" = 1 ]; then
  bare_bin
  start_bare "$BARE_BIN" "$BCP" bare-cert cert
  BC_PID=$!
  start_bare "$BARE_BIN" "$BNP" bare-nocert
  BN_PID=$!
fi
# BARE_BASE_BIN=path: another bare pingora build with the client cert (e.g. the plain build beside
# a profile-guided one, bench/pgo.sh) on port BBP (BB_PID)
BB_PID=""
if [ -n "${BARE_BASE_BIN:-}" ]; then
  BBP=$(port)
  start_bare "$BARE_BASE_BIN" "$BBP" bare-base cert
  BB_PID=$!
fi
HP_PID=""
C=$TMP/certs
if [ "${BARE:-0}" = 1 ] || [ "${HAPROXY:-0}" = 1 ]; then
  if command -v haproxy >/dev/null; then
    cat "$C/apiserver.crt" "$C/apiserver.key" > "$TMP/hp-serving.pem"
    cat "$C/front-proxy-client.crt" "$C/front-proxy-client.key" > "$TMP/hp-client.pem"
    cat > "$TMP/haproxy.cfg" <<CONF
global
  nbthread $WORKERS
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:$HP ssl crt $TMP/hp-serving.pem alpn h2,http/1.1
  default_backend be
backend be
  server s1 127.0.0.1:$BE ssl verify required ca-file $TMP/be-ca.crt sni str(api.bench.svc) verifyhost api.bench.svc crt $TMP/hp-client.pem
CONF
    haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 & PIDS+=($!)
    HP_PID=$!
  fi
fi

# URL: waits until it answers 2xx (with the bench token), or shows the logs and exits
wait_ok() {
  for _ in $(seq 1 100); do
    if curl -skf "${HDR[@]}" -o /dev/null "$1"; then return 0; fi
    sleep 0.1
  done
  echo "not ready: $1" >&2; cat "$TMP"/*.err "$TMP"/*.log >&2; exit 1
}
