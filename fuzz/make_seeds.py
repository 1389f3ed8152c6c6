#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/ (the committed seed corpus) from the policies/ examples and a few
hand-picked inputs per target. Re-run after changing it; the files are small."""
import base64, json, os, pathlib, shutil

root = pathlib.Path(__file__).resolve().parent
repo = root.parent
seeds = root / "seeds"


def put(target, name, data):
    d = seeds / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def b64(o):
    return base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()


shutil.rmtree(seeds, ignore_errors=True)

# request: METHOD\nPATH\nQUERY
for i, (m, p, q) in enumerate([
    ("GET", "/api/v1/namespaces/default/pods/p", "fieldSelector=metadata.name%3Dp&labelSelector=app%20in%20(a,b),!x"),
    ("GET", "/apis/apps/v1/watch/namespaces/ns/deployments", "watch=true&resourceVersion=10&timeoutSeconds=5"),
    ("DELETE", "/api/v1/namespaces/ns/configmaps", "dryRun=All&propagationPolicy=Foreground&limit=2&continue=abc"),
    ("PATCH", "/apis/rbac.authorization.k8s.io/v1/clusterroles/system%3Aview", "fieldManager=kubectl&force=true"),
    ("GET", "/api/v1/namespaces/ns/pods/p/log", "container=c&follow=1"),
    ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", ""),
    ("GET", "/api/v1/nodes", "fieldSelector=spec.unschedulable!%3Dtrue,metadata.name%3D%3Dn%5C%2C1&labelSelector=a%3Db,c!%3Dd,e,!f,g%20notin%20(h)"),
    ("GET", "/apis/x.example.com/v1/namespaces/ns/widgets/w/status", "resourceVersionMatch=NotOlderThan&resourceVersion=0"),
]):
    put("request", f"seed{i}", f"{m}\n{p}\n{q}")

# policy: a mode byte (see fuzz_targets/policy.rs), then the file
def policy(mode, name, text):
    put("policy", name, bytes([mode]) + text.encode())

for f in sorted((repo / "policies/rbac").glob("*.yaml")):
    policy(0, "rbac-" + f.stem, f.read_text())
policy(0, "rbac-list", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: rbac.authorization.k8s.io/v1\n  kind: ClusterRoleBinding\n  metadata: {name: b}\n  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\n  subjects: [{kind: Group, name: dev, apiGroup: rbac.authorization.k8s.io}]\n")
policy(1, "abac", (repo / "policies/abac.jsonl").read_text())
policy(2, "audit", (repo / "policies/audit-policy.yaml").read_text())
policy(3, "authn", (repo / "policies/authentication-config.example.yaml").read_text())
policy(4, "authz", "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthorizationConfiguration\nauthorizers:\n- type: RBAC\n  name: rbac\n- type: Webhook\n  name: w\n  webhook: {timeout: 3s, subjectAccessReviewVersion: v1, failurePolicy: Deny, matchConditionSubjectAccessReviewVersion: v1, connectionInfo: {type: InClusterConfig}}\n- {type: AlwaysDeny, name: deny}\n")
policy(5, "apiservice", "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1beta1.metrics.k8s.io}\nspec:\n  group: metrics.k8s.io\n  version: v1beta1\n  groupPriorityMinimum: 100\n  versionPriority: 100\n  service: {namespace: kube-system, name: metrics-server, port: 443}\n  caBundle: ''\n  insecureSkipTLSVerify: true\n")
policy(6, "apf", "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: PriorityLevelConfiguration\nmetadata: {name: team}\nspec:\n  type: Limited\n  limited:\n    nominalConcurrencyShares: 10\n    lendablePercent: 50\n    limitResponse: {type: Queue, queuing: {queues: 16, handSize: 4, queueLengthLimit: 50}}\n---\napiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: FlowSchema\nmetadata: {name: team}\nspec:\n  priorityLevelConfiguration: {name: team}\n  matchingPrecedence: 500\n  distinguisherMethod: {type: ByUser}\n  rules:\n  - subjects: [{kind: Group, group: {name: dev}}]\n    resourceRules: [{verbs: ['*'], apiGroups: ['*'], resources: ['*'], namespaces: ['*']}]\n    nonResourceRules: [{verbs: [get], nonResourceURLs: ['/healthz']}]\n")
policy(7, "tokens", (repo / "policies/tokens.csv").read_text())
policy(7, "webhook", "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1/authn', insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n")

# jwt: a mode byte, then a token, claims, a JWKS or a PEM file
hdr = {"alg": "RS256", "kid": "k1", "typ": "JWT"}
sa = {"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:ns:sa", "aud": ["https://kubernetes.default.svc"], "exp": 4102444800, "iat": 1, "nbf": 1,
      "kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "sa", "uid": "u1"}, "pod": {"name": "p", "uid": "u2"}}}
legacy = {"iss": "kubernetes/serviceaccount", "kubernetes.io/serviceaccount/namespace": "ns", "kubernetes.io/serviceaccount/service-account.name": "sa",
          "kubernetes.io/serviceaccount/service-account.uid": "u", "kubernetes.io/serviceaccount/secret.name": "s", "sub": "system:serviceaccount:ns:sa"}
oidc = {"iss": "https://issuer.example", "aud": "a", "exp": 4102444800, "email": "a@b.c", "email_verified": True, "groups": ["g1", "g2"], "hd": "x", "sub": "s"}
put("jwt", "token", b"\x00" + f"{b64(hdr)}.{b64(sa)}.c2ln".encode())
put("jwt", "token-none", b"\x00" + f"{b64({'alg': 'none'})}.{b64(oidc)}.".encode())
for name, c in [("sa", sa), ("legacy", legacy), ("oidc", oidc)]:
    put("jwt", "claims-" + name, b"\x01" + json.dumps(c).encode())
put("jwt", "jwks", b"\x02" + json.dumps({"keys": [
    {"kty": "RSA", "kid": "r", "use": "sig", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
    {"kty": "EC", "crv": "P-256", "kid": "e", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
    {"kty": "oct", "k": "c2VjcmV0"}]}).encode())
put("jwt", "pem", b"\x03-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf83OJ3D2xF1Bg8vub9tLe1gHMzV7\n6e8Tus9uPHvRVEXH8UTNG72bfocs3+257rn0s2ldbqkLJK2KRiMohYjlrQ==\n-----END PUBLIC KEY-----\n")

# decode: a mode byte (0 JSON, 1 YAML, 2 protobuf, 3 CONTENT-TYPE\nBODY)
cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default", "labels": {"a": "b"}}, "data": {"k": "v"}}
put("decode", "json", b"\x00" + json.dumps(cm).encode())
put("decode", "yaml", b"\x01apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: x, labels: {a: b}}\nother: *m\ndata:\n  k: |\n    multi\n    line\n")
put("decode", "yaml-aliases", b"\x01a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\nd: [*c, *c]\n")
put("decode", "yaml-deep-alias", b"\x01a: &a [[[[[[[[[[1]]]]]]]]]]\nb: &b [[[[[[[[[[*a]]]]]]]]]]\nc: [[[[[[[[[[*b]]]]]]]]]]\n")


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


# runtime.Unknown{typeMeta{apiVersion, kind}, raw}: a ConfigMap with metadata{name, namespace} and data{k: v}
meta = field(1, b"x") + field(3, b"default")
raw = field(1, meta) + field(2, field(1, b"k") + field(2, b"v"))
unknown = field(1, field(1, b"v1") + field(2, b"ConfigMap")) + field(2, raw)
put("decode", "protobuf", b"\x02" + unknown)
put("decode", "by-type", b"\x03application/yaml; charset=utf-8\nmetadata: {name: x}\n")

# patch: a mode byte (bits 0-1: JSON, merge, strategic, apply; bits 2-3: configmaps, secrets,
# serviceaccounts; bit 7: force), then TARGET\0PATCH or the patch alone
put("patch", "json-patch", b"\x00" + json.dumps([{"op": "add", "path": "/data/c", "value": "3"}, {"op": "remove", "path": "/data/a"},
    {"op": "test", "path": "/data/b", "value": "2"}, {"op": "move", "from": "/data/b", "path": "/data/d"}, {"op": "copy", "from": "/data/d", "path": "/data/e"},
    {"op": "replace", "path": "/metadata/labels", "value": {"z": "1"}}]).encode())
put("patch", "merge", b"\x01" + json.dumps({"data": {"a": None, "n": "v"}, "metadata": {"labels": {"app": None}}}).encode())
put("patch", "strategic", b"\x0a" + json.dumps({"secrets": [{"name": "s3"}, {"name": "s1", "$patch": "delete"}], "$setElementOrder/secrets": [{"name": "s3"}, {"name": "s2"}],
    "imagePullSecrets": [{"$patch": "replace"}, {"name": "q"}], "$retainKeys": ["secrets"]}).encode())
put("patch", "apply", b"\x03apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: default}\ndata: {a: '9'}\n")
put("patch", "apply-force", b"\x87apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData: {k: other}\n")
put("patch", "with-target", b"\x02" + json.dumps({"spec": {"containers": [{"name": "a", "image": "i"}]}}).encode() + b"\x00" + json.dumps({"spec": {"containers": [{"name": "b", "image": "j"}]}}).encode())
print("seeds:", sum(1 for _ in seeds.rglob("*") if _.is_file()), "files,", sum(p.stat().st_size for p in seeds.rglob("*") if p.is_file()), "bytes")
