# Sourced by the proxy benches: builds frontdoor unless FRONTDOOR_BIN is set, then starts the
# nginx TLS backend (bench/backend.sh), nginx as a TLS reverse proxy with upstream keepalive
# (NG_PID) and frontdoor in front of the same backend (FD_PID), on ports BE, NP and FP.
# Expects ROOT and WORKERS; CHECK_INTERVAL is frontdoor's --apiservice-check-interval.
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
BE=$(port); NP=$(port); FP=$(port)
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
