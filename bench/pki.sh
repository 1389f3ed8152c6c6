# Sourced by the benches: a backend's PKI and the APIService that routes a group to it.

# backend_pki DIR NAME HOST: DIR/NAME-ca.crt (a CA) and DIR/NAME.crt, DIR/NAME.key (its serving
# cert for HOST; webpki refuses a self-signed CA as the server's own cert)
backend_pki() {
  local dir=$1 name=$2 host=$3
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$name-ca" \
    -keyout "$dir/$name-ca.key" -out "$dir/$name-ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$host" \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$host" >"$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$name-ca.crt" -CAkey "$dir/$name-ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
}

# apiservice GROUP NAMESPACE/NAME CA_FILE: the APIService (v1) serving GROUP/v1 from that service
apiservice() {
  cat <<YAML
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1.$1}
spec:
  group: $1
  version: v1
  groupPriorityMinimum: 1000
  versionPriority: 15
  service: {namespace: ${2%/*}, name: ${2#*/}, port: 443}
  caBundle: $(base64 -w0 "$3")
YAML
}
