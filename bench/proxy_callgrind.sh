#!/usr/bin/env bash
# Instruction counts of frontdoor's proxied path: frontdoor (release) under callgrind in front of
# an nginx TLS backend; N HTTP/1.1 requests on one keep-alive connection (curl), counters zeroed after a
# warm-up. Prints instructions per request and writes the callgrind file for callgrind_annotate.
#   bench/proxy_callgrind.sh [requests=2000] [out=callgrind.out]
set -euo pipefail
N=${1:-2000}
OUT=${2:-callgrind.out}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FRONTDOOR_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/frontdoor}
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
BE=$(port); FP=$(port)
PATH_=/apis/bench.example.com/v1/namespaces/default/widgets
"$BIN" certs init --dir "$TMP/certs" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$TMP/be-ca.key" -out "$TMP/be-ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=api.bench.svc \
  -keyout "$TMP/be.key" -out "$TMP/be.csr" 2>/dev/null
printf 'subjectAltName=DNS:api.bench.svc\nextendedKeyUsage=serverAuth\n' > "$TMP/be.ext"
openssl x509 -req -in "$TMP/be.csr" -CA "$TMP/be-ca.crt" -CAkey "$TMP/be-ca.key" -CAcreateserial \
  -days 2 -extfile "$TMP/be.ext" -out "$TMP/be.crt" 2>/dev/null
BODY='{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"bench.example.com/v1","resources":[{"name":"widgets","singularName":"widget","namespaced":true,"kind":"Widget","verbs":["get","list"]}]}'
cat > "$TMP/backend.conf" <<CONF
worker_processes 1; daemon off; pid $TMP/backend.pid; error_log $TMP/backend.err warn;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $TMP/t1; proxy_temp_path $TMP/t2; fastcgi_temp_path $TMP/t3; uwsgi_temp_path $TMP/t4; scgi_temp_path $TMP/t5; keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$BE ssl;
    ssl_certificate $TMP/be.crt; ssl_certificate_key $TMP/be.key;
    ssl_client_certificate $TMP/certs/front-proxy-ca.crt; ssl_verify_client optional;
    location / { default_type application/json; return 200 '$BODY'; }
  }
}
CONF
cat > "$TMP/apiservices.yaml" <<YAML
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1.bench.example.com}
spec:
  group: bench.example.com
  version: v1
  groupPriorityMinimum: 1000
  versionPriority: 15
  service: {namespace: bench, name: api, port: 443}
  caBundle: $(base64 -w0 "$TMP/be-ca.crt")
YAML
mkdir -p "$TMP/policies"
echo 'bench-token,bench,bench-uid,"system:masters"' > "$TMP/policies/tokens.csv"
HDR=(-H "Authorization: Bearer bench-token")
nginx -p "$TMP" -e "$TMP/backend.err" -c "$TMP/backend.conf" & PIDS+=($!)
FRONTDOOR_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" --dump-instr=no \
  "$BIN" serve --secure-port "$FP" --cert-dir "$TMP/certs" --data-dir "$TMP/data" \
  --policy-dir "$TMP/policies" --apiservices-file "$TMP/apiservices.yaml" \
  --service-endpoint "bench/api:443=127.0.0.1:$BE" --worker-threads 1 \
  --apiservice-check-interval 1000s >"$TMP/frontdoor.log" 2>&1 & PIDS+=($!)
URL="https://127.0.0.1:$FP$PATH_"
for _ in $(seq 1 600); do
  if curl -skf "${HDR[@]}" -o /dev/null "$URL"; then break; fi
  sleep 0.2
done
curl -skf "${HDR[@]}" -o /dev/null "$URL" || { cat "$TMP/frontdoor.log" >&2; exit 1; }
urls() { for _ in $(seq 1 "$1"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$URL"; done; }
urls 200 > "$TMP/warm.cfg"; urls "$N" > "$TMP/run.cfg"
curl --http1.1 -sk "${HDR[@]}" -K "$TMP/warm.cfg"
callgrind_control -z >/dev/null
curl --http1.1 -sk "${HDR[@]}" -K "$TMP/run.cfg" -w '%{http_code}\n' | sort | uniq -c >&2
callgrind_control -d >/dev/null
sleep 1
F=$(ls -t "$TMP"/cg.out.* | head -1)
cp "$F" "$OUT"
IR=$(callgrind_annotate "$OUT" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
echo "requests $N  instructions $IR  per request $((IR / N))"
