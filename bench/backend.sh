# Sourced by the proxy benches: the TLS backend they proxy to. Expects $BIN (frontdoor), $TMP
# and $BE (the backend's port); writes frontdoor's dev PKI to $TMP/certs, a backend CA and
# serving cert for api.bench.svc, $TMP/backend.conf (nginx returning a small APIResourceList-ish
# JSON body, with $WORKERS workers) and $TMP/apiservices.yaml routing bench.example.com/v1 to it,
# plus a system:masters static token in $TMP/policies. Sets PATH_, BODY, COMMON_HTTP, HDR;
# defines urls (a curl config of N requests) and bare_bin.

PATH_=/apis/bench.example.com/v1/namespaces/default/widgets
BENCH_TOKEN=${BENCH_TOKEN:-bench-token}
HDR=(-H "Authorization: Bearer $BENCH_TOKEN")

"$BIN" certs init --dir "$TMP/certs" >/dev/null
# shellcheck source=bench/pki.sh
. "$(dirname "${BASH_SOURCE[0]}")/pki.sh"
backend_pki "$TMP" be api.bench.svc

BODY='{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"bench.example.com/v1","resources":[{"name":"widgets","singularName":"widget","namespaced":true,"kind":"Widget","verbs":["get","list"]}]}'
COMMON_HTTP="access_log off; client_body_temp_path $TMP/t1; proxy_temp_path $TMP/t2; fastcgi_temp_path $TMP/t3; uwsgi_temp_path $TMP/t4; scgi_temp_path $TMP/t5; keepalive_requests 1000000;"

cat > "$TMP/backend.conf" <<CONF
worker_processes ${WORKERS:-1}; daemon off; pid $TMP/backend.pid; error_log $TMP/backend.err warn;
events { worker_connections 8192; }
http { $COMMON_HTTP
  server {
    listen 127.0.0.1:$BE ssl;
    ssl_certificate $TMP/be.crt; ssl_certificate_key $TMP/be.key;
    ssl_client_certificate $TMP/certs/front-proxy-ca.crt; ssl_verify_client optional;
    location / { default_type application/json; return 200 '$BODY'; }
  }
}
CONF

apiservice bench.example.com bench/api "$TMP/be-ca.crt" >"$TMP/apiservices.yaml"

mkdir -p "$TMP/policies"
echo "$BENCH_TOKEN,bench,bench-uid,\"system:masters\"" > "$TMP/policies/tokens.csv"

# Sets BARE_BIN to the bare pingora proxy (bench/bare_pingora.rs): as given, or built here.
bare_bin() {
  if [ -z "${BARE_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --example bare_pingora >&2)
    BARE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bare_pingora
  fi
}

# URL N: a curl config (-K) requesting URL N times, the bodies discarded (one connection reused)
urls() { for _ in $(seq 1 "$2"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$1"; done; }
