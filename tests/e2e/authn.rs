//! Authentication and impersonation through the real binary: static tokens, service-account
//! JWTs, a JWT issuer whose JWKS the test serves over TLS (discovery included), a TokenReview
//! webhook started by the test, x509 and front-proxy certs, kubectl `auth whoami`, and the
//! bad inputs of issue 5.

use crate::common::*;

use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SA_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A 2048-bit RSA key (private PKCS#8 PEM, public SPKI PEM) from the openssl CLI.
fn rsa_key() -> (Vec<u8>, Vec<u8>) {
    let out = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut child = std::process::Command::new("openssl")
        .args(["pkey", "-pubout"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    (out.stdout, child.wait_with_output().unwrap().stdout)
}

fn rsa_jwk(public_pem: &[u8], kid: &str) -> Value {
    use x509_parser::prelude::FromDer;
    let Some(rustls_pemfile::Item::SubjectPublicKeyInfo(spki)) =
        rustls_pemfile::read_one(&mut &public_pem[..]).unwrap()
    else {
        panic!()
    };
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki.as_ref()).unwrap();
    let x509_parser::public_key::PublicKey::RSA(r) = spki.parsed().unwrap() else { panic!() };
    let n: Vec<u8> = r.modulus.iter().skip_while(|b| **b == 0).copied().collect();
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64url(&n), "e": b64url(r.exponent)})
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    encode(&h, claims, key).unwrap()
}

/// A JWT with a header of the test's own (jsonwebtoken's Header cannot carry `crit`).
fn sign_with_header(header: &Value, key: &EncodingKey, claims: &Value) -> String {
    let signed = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let signature = jsonwebtoken::crypto::sign(signed.as_bytes(), key, Algorithm::RS256).unwrap();
    format!("{signed}.{signature}")
}

/// Waits (past the JWKS refresh floor) for `token` to authenticate.
fn wait_until_accepted(fd: &Frontdoor, c: &reqwest::blocking::Client, token: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(25);
    while whoami(fd, c, &[("Authorization", &bearer(token))]).0 != 201 {
        assert!(Instant::now() < deadline, "{what} never accepted");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A CA and a leaf it signs, as PEM (cert, key), from rcgen.
struct TestPki {
    ca_pem: String,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl TestPki {
    fn new(cn: &str) -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let ca = p.self_signed(&ca_key).unwrap();
        TestPki { ca_pem: ca.pem(), ca, ca_key }
    }

    fn leaf(&self, cn: &str, sans: &[&str], client: bool) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let c = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (c.pem(), key.serialize_pem())
    }
}

/// An HTTPS server run by the test: OIDC discovery + JWKS, and a TokenReview webhook.
struct TestServer {
    url: String,
    ca_pem: String,
    webhook_calls: Arc<AtomicUsize>,
    jwks: Arc<Mutex<Value>>,
    _rt: tokio::runtime::Runtime,
}

impl TestServer {
    fn start(jwks: Value) -> TestServer {
        let pki = TestPki::new("test-idp-ca");
        let (cert, key) = pki.leaf("127.0.0.1", &["127.0.0.1"], false);
        let certs = rustls_pemfile::certs(&mut cert.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        let key = rustls_pemfile::private_key(&mut key.as_bytes()).unwrap().unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let webhook_calls = Arc::new(AtomicUsize::new(0));
        let jwks = Arc::new(Mutex::new(jwks));
        let (u, calls, keys) = (url.clone(), webhook_calls.clone(), jwks.clone());
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, u, calls, keys) = (acceptor.clone(), u.clone(), calls.clone(), keys.clone());
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(tcp).await else { return };
                    let Some((path, body)) = read_request(&mut s).await else { return };
                    let reply = match path.as_str() {
                        "/.well-known/openid-configuration" => json!({"issuer": u, "jwks_uri": format!("{u}/keys")}),
                        "/keys" => keys.lock().unwrap().clone(),
                        "/review" => {
                            calls.fetch_add(1, Ordering::SeqCst);
                            let review: Value = serde_json::from_slice(&body).unwrap_or_default();
                            let token = review["spec"]["token"].as_str().unwrap_or_default();
                            let asked = review["spec"]["audiences"].as_array().cloned().unwrap_or_default();
                            let status = if token == "webhook-token" {
                                json!({"authenticated": true, "user": {"username": "hook-user", "uid": "h1", "groups": ["hooked"]}})
                            } else if token.starts_with("vault-only") {
                                // a token for another service, which says so (status.audiences)
                                json!({"authenticated": true, "user": {"username": "vault-user", "groups": ["system:masters"]},
                                    "audiences": ["vault"]})
                            } else if token.starts_with("asks-vault") && asked.contains(&json!("vault")) {
                                // authenticated only when reviewed for vault, and says so
                                json!({"authenticated": true, "user": {"username": "vault-user", "groups": ["system:masters"]},
                                    "audiences": ["vault"]})
                            } else {
                                json!({"authenticated": false})
                            };
                            json!({"apiVersion": review["apiVersion"], "kind": "TokenReview", "status": status})
                        }
                        _ => json!({}),
                    };
                    let body = reply.to_string();
                    let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                    let _ = s.write_all(resp.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        TestServer { url, ca_pem: pki.ca_pem, webhook_calls, jwks, _rt: rt }
    }
}

async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let path = head.split(' ').nth(1)?.to_string();
            return Some((path, buf[end + 4..].to_vec()));
        }
    }
}

/// A frontdoor with every authenticator configured, and the test's IdP/webhook.
struct Setup {
    fd: Frontdoor,
    idp: TestServer,
    rsa_private: Vec<u8>,
}

fn setup() -> Setup {
    let (rsa_private, rsa_public) = rsa_key();
    let idp = TestServer::start(json!({"keys": [rsa_jwk(&rsa_public, "k1")]}));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policies");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("tokens.csv"), "static-token,alice,alice-uid,\"dev,ops\"\n").unwrap();
    let indent = |s: &str| s.lines().map(|l| format!("      {l}")).collect::<Vec<_>>().join("\n");
    std::fs::write(
        p.join("authn.yaml"),
        format!(
            "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\njwt:\n- issuer:\n    url: {}\n    audiences: [frontdoor]\n    certificateAuthority: |\n{}\n  claimMappings:\n    username: {{claim: sub, prefix: 'idp:'}}\n    groups: {{claim: groups, prefix: 'idp:'}}\n",
            idp.url,
            indent(&idp.ca_pem)
        ),
    )
    .unwrap();
    let ca_b64 = base64::engine::general_purpose::STANDARD.encode(&idp.ca_pem);
    std::fs::write(
        p.join("webhook.kubeconfig"),
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: hook\n  cluster:\n    server: {}/review\n    certificate-authority-data: {ca_b64}\ncontexts:\n- name: hook\n  context: {{cluster: hook}}\ncurrent-context: hook\n", idp.url),
    )
    .unwrap();
    // these tests look at who a request is; let anonymous ask too (kube's bootstrap policy
    // grants selfsubjectreviews only to system:authenticated)
    std::fs::create_dir_all(p.join("rbac")).unwrap();
    std::fs::write(
        p.join("rbac/whoami.yaml"),
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: whoami}\nrules:\n- apiGroups: [authentication.k8s.io]\n  resources: [selfsubjectreviews]\n  verbs: [create]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: whoami-anonymous}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: whoami}\nsubjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: 'system:unauthenticated'}\n",
    )
    .unwrap();
    let cfg = p.join("authn.yaml");
    let hook = p.join("webhook.kubeconfig");
    let fd = Frontdoor::start_in(
        dir,
        &[
            "--authentication-config",
            cfg.to_str().unwrap(),
            "--authentication-token-webhook-config-file",
            hook.to_str().unwrap(),
            "--authentication-token-webhook-version",
            "v1",
        ],
    );
    Setup { fd, idp, rsa_private }
}

/// POSTs a SelfSubjectReview with extra headers; (code, body).
fn whoami(fd: &Frontdoor, client: &reqwest::blocking::Client, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut rb = client
        .post(fd.url("/apis/authentication.k8s.io/v1/selfsubjectreviews"))
        .header("Content-Type", "application/json");
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.body(r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#).send().unwrap();
    let code = r.status().as_u16();
    (code, r.json().unwrap_or(Value::Null))
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn token_kubeconfig(fd: &Frontdoor, token: &str) -> std::path::PathBuf {
    let ca = base64::engine::general_purpose::STANDARD.encode(std::fs::read(fd.certs().join("ca.crt")).unwrap());
    let path = fd.dir.path().join(format!("token-{}.kubeconfig", &token[..6]));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fd\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: fd, user: u}}\ncurrent-context: c\n",
            fd.port
        ),
    )
    .unwrap();
    path
}

fn whoami_json(kubeconfig: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["auth", "whoami", "-o", "json"];
    args.extend_from_slice(extra);
    let o = kubectl(kubeconfig, &args);
    assert!(o.status.success(), "kubectl auth whoami {extra:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn kubectl_whoami_with_token_cert_and_as() {
    let s = setup();
    let fd = &s.fd;
    let v = whoami_json(&token_kubeconfig(fd, "static-token"), &[]);
    assert_eq!(v["kind"], "SelfSubjectReview");
    assert_eq!(v["status"]["userInfo"]["username"], "alice");
    assert_eq!(v["status"]["userInfo"]["groups"], json!(["dev", "ops", "system:authenticated"]));

    let v = whoami_json(&fd.kubeconfig(), &[]);
    assert_eq!(v["status"]["userInfo"]["username"], "admin");
    assert_eq!(v["status"]["userInfo"]["groups"], json!(["system:masters", "system:authenticated"]));

    let v = whoami_json(&fd.kubeconfig(), &["--as", "jane", "--as-group", "dev", "--as-uid", "j-1"]);
    assert_eq!(v["status"]["userInfo"]["username"], "jane");
    assert_eq!(v["status"]["userInfo"]["uid"], "j-1");
    assert_eq!(v["status"]["userInfo"]["groups"], json!(["dev", "system:authenticated"]));

    let v = whoami_json(&fd.kubeconfig(), &["--as", "system:serviceaccount:ns:robot"]);
    assert_eq!(
        v["status"]["userInfo"]["groups"],
        json!(["system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"])
    );

    // a bad token: kubectl shows kube's 401
    let o = kubectl(&token_kubeconfig(fd, "wrong-token"), &["auth", "whoami"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("Unauthorized"), "{}", stderr(&o));
}

#[test]
fn jwt_issuer_service_accounts_and_webhook() {
    let s = setup();
    let fd = &s.fd;
    let c = fd.anonymous_client();
    let rsa = EncodingKey::from_rsa_pem(&s.rsa_private).unwrap();
    let claims = json!({"iss": s.idp.url, "aud": ["frontdoor"], "sub": "jane", "groups": ["dev"], "exp": now() + 300});

    // JWT issuer: keys fetched through discovery over TLS
    let tok = sign(Algorithm::RS256, &rsa, Some("k1"), &claims);
    let (code, v) = whoami(fd, &c, &[("Authorization", &bearer(&tok))]);
    assert_eq!(code, 201, "{v}\n{}", fd.logs());
    assert_eq!(v["status"]["userInfo"]["username"], "idp:jane");
    assert_eq!(v["status"]["userInfo"]["groups"], json!(["idp:dev", "system:authenticated"]));

    // bad JWTs: unknown kid, wrong audience, expired, not yet valid, wrong issuer, alg none, HS256 confusion
    let with = |k: &str, val: Value| {
        let mut cl = claims.clone();
        cl[k] = val;
        sign(Algorithm::RS256, &rsa, Some("k1"), &cl)
    };
    let none = format!("{}.{}.", b64url(br#"{"alg":"none","typ":"JWT"}"#), b64url(claims.to_string().as_bytes()));
    let public_pem = serde_json::to_vec(&*s.idp.jwks.lock().unwrap()).unwrap();
    let hs = sign(Algorithm::HS256, &EncodingKey::from_secret(&public_pem), Some("k1"), &claims);
    let crit = json!({"alg": "RS256", "typ": "JWT", "kid": "k1", "crit": ["exp"], "exp": now() + 300});
    assert_eq!(
        whoami(
            fd,
            &c,
            &[("Authorization", &bearer(&sign_with_header(&json!({"alg": "RS256", "kid": "k1"}), &rsa, &claims)))]
        )
        .0,
        201
    );
    for (what, t) in [
        ("unknown kid", sign(Algorithm::RS256, &rsa, Some("k2"), &claims)),
        ("a crit header", sign_with_header(&crit, &rsa, &claims)),
        ("a numeric audience beside ours", with("aud", json!(["frontdoor", 7]))),
        ("wrong audience", with("aud", json!(["other"]))),
        ("expired", with("exp", (now() - 10).into())),
        ("not yet valid", with("nbf", (now() + 3600).into())),
        ("wrong issuer", with("iss", "https://evil.example".into())),
        ("alg none", none),
        ("HS256 with the public key", hs),
        ("truncated", tok[..tok.len() - 10].to_string()),
        ("garbage", "not.a.jwt".to_string()),
    ] {
        let (code, v) = whoami(fd, &c, &[("Authorization", &bearer(&t))]);
        assert_eq!(code, 401, "{what}: {v}");
        assert_eq!(v["reason"], "Unauthorized", "{what}");
        assert_eq!(v["message"], "Unauthorized", "{what}");
    }

    // a rotated key: the unknown kid triggers a refetch (after the refresh floor)
    let (rsa2_private, rsa2_public) = rsa_key();
    s.idp.jwks.lock().unwrap()["keys"].as_array_mut().unwrap().push(rsa_jwk(&rsa2_public, "k3"));
    let tok3 = sign(Algorithm::RS256, &EncodingKey::from_rsa_pem(&rsa2_private).unwrap(), Some("k3"), &claims);
    wait_until_accepted(fd, &c, &tok3, "a rotated key");
    // a key replaced under the same kid, and a token without a kid signed with it: a failed
    // signature refetches too (go-oidc), where frontdoor kept the old keys until a reload
    let (rsa4_private, rsa4_public) = rsa_key();
    s.idp.jwks.lock().unwrap()["keys"] = json!([rsa_jwk(&rsa4_public, "k1")]);
    let rsa4 = EncodingKey::from_rsa_pem(&rsa4_private).unwrap();
    wait_until_accepted(fd, &c, &sign(Algorithm::RS256, &rsa4, Some("k1"), &claims), "a key replaced under its kid");
    let mut later = claims.clone();
    later["jti"] = "kid-less".into();
    let (code, v) = whoami(fd, &c, &[("Authorization", &bearer(&sign(Algorithm::RS256, &rsa4, None, &later)))]);
    assert_eq!(code, 201, "a kid-less token of the new key: {v}");

    // service-account token signed with the dev sa.key (ES256)
    // (--service-account-lookup: the service account must exist with the uid the token names)
    let sa_key = EncodingKey::from_ec_pem(&std::fs::read(fd.certs().join("sa.key")).unwrap()).unwrap();
    let sa_token = |uid: &str| {
        let sa_claims = json!({"iss": SA_ISSUER, "aud": [SA_ISSUER], "sub": "system:serviceaccount:default:robot", "exp": now() + 300, "iat": now(),
            "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "robot", "uid": uid}}});
        bearer(&sign(Algorithm::ES256, &sa_key, None, &sa_claims))
    };
    let (code, v) = whoami(fd, &c, &[("Authorization", &sa_token("r-0"))]);
    assert_eq!(code, 401, "no such service account: {v}");
    let admin = fd.admin_client();
    let created: Value = admin
        .post(fd.url("/api/v1/namespaces/default/serviceaccounts"))
        .json(&json!({"metadata": {"name": "robot"}}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let uid = created["metadata"]["uid"].as_str().unwrap();
    let (code, v) = whoami(fd, &c, &[("Authorization", &sa_token(uid))]);
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["status"]["userInfo"]["username"], "system:serviceaccount:default:robot");
    let (code, v) = whoami(fd, &c, &[("Authorization", &sa_token("r-1"))]);
    assert_eq!(code, 401, "a token for an earlier service account of that name: {v}");
    fd.wait_for_log("does not match claim (r-1)");
    let (code, v) = whoami(fd, &c, &[("Authorization", &sa_token(""))]);
    assert_eq!(code, 401, "a bound token that names no uid is held to the service account's: {v}");

    // a legacy secret-based token holds while its Secret holds it (kube's legacy validator)
    let legacy = |secret: &str, jti: &str| {
        let claims = json!({"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:default:robot", "jti": jti,
            "kubernetes.io/serviceaccount/namespace": "default", "kubernetes.io/serviceaccount/secret.name": secret,
            "kubernetes.io/serviceaccount/service-account.name": "robot", "kubernetes.io/serviceaccount/service-account.uid": uid});
        sign(Algorithm::ES256, &sa_key, None, &claims)
    };
    let (code, v) = whoami(fd, &c, &[("Authorization", &bearer(&legacy("no-such-secret", "a")))]);
    assert_eq!(code, 401, "its Secret does not exist: {v}");
    fd.wait_for_log("Token has been invalidated");
    let token = legacy("robot-token", "b");
    let data = base64::engine::general_purpose::STANDARD.encode(&token);
    let r = admin
        .post(fd.url("/api/v1/namespaces/default/secrets"))
        .json(&json!({"metadata": {"name": "robot-token"}, "data": {"token": data}}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let (code, v) = whoami(fd, &c, &[("Authorization", &bearer(&token))]);
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["status"]["userInfo"]["username"], "system:serviceaccount:default:robot");
    let (code, v) = whoami(fd, &c, &[("Authorization", &bearer(&legacy("robot-token", "c")))]);
    assert_eq!(code, 401, "signed for the Secret but not the token it holds: {v}");
    fd.wait_for_log("Token does not match server's copy");
    let r = admin.delete(fd.url("/api/v1/namespaces/default/secrets/robot-token")).send().unwrap();
    assert_eq!(r.status(), 200);
    // the token's success is cached for 10 s, as kube caches it
    let deadline = Instant::now() + Duration::from_secs(20);
    while whoami(fd, &c, &[("Authorization", &bearer(&token))]).0 != 401 {
        assert!(Instant::now() < deadline, "a legacy token outlived its deleted Secret");
        std::thread::sleep(Duration::from_millis(500));
    }

    // webhook: authenticated once, then served from the cache
    let before = s.idp.webhook_calls.load(Ordering::SeqCst);
    for _ in 0..3 {
        let (code, v) = whoami(fd, &c, &[("Authorization", "Bearer webhook-token")]);
        assert_eq!(code, 201, "{v}");
        assert_eq!(v["status"]["userInfo"]["username"], "hook-user");
        assert_eq!(v["status"]["userInfo"]["groups"], json!(["hooked", "system:authenticated"]));
    }
    assert_eq!(s.idp.webhook_calls.load(Ordering::SeqCst) - before, 1, "webhook answers are cached");
    // as kube's webhook authenticator: a token the review says is for other audiences than
    // the API's is not the API's, whoever it names
    let (code, v) = whoami(fd, &c, &[("Authorization", "Bearer vault-only-1")]);
    assert_eq!(code, 401, "a token for vault at the API: {v}");
    let review = |token: &str, audiences: Value| -> Value {
        let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token, "audiences": audiences}});
        let r =
            fd.admin_client().post(fd.url("/apis/authentication.k8s.io/v1/tokenreviews")).json(&body).send().unwrap();
        r.json().unwrap()
    };
    let v = review("vault-only-1", json!(["vault", "other"]));
    assert_eq!((&v["status"]["authenticated"], &v["status"]["audiences"]), (&json!(true), &json!(["vault"])), "{v}");
    assert_ne!(review("vault-only-1", json!(["other"]))["status"]["authenticated"], true);
    // and a review for one audience is never the answer for another (the cache is by audiences)
    let v = review("asks-vault-1", json!(["vault"]));
    assert_eq!(v["status"]["authenticated"], true, "{v}");
    let (code, v) = whoami(fd, &c, &[("Authorization", "Bearer asks-vault-1")]);
    assert_eq!(code, 401, "reviewed for vault, then used at the API: {v}");
    let (code, _) = whoami(fd, &c, &[("Authorization", "Bearer asks-vault-2")]);
    assert_eq!(code, 401);
    assert_eq!(review("asks-vault-2", json!(["vault"]))["status"]["authenticated"], true, "not the API's answer");

    // TokenReview served by frontdoor
    let r = fd
        .admin_client()
        .post(fd.url("/apis/authentication.k8s.io/v1/tokenreviews"))
        .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "static-token"}}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().unwrap();
    assert_eq!(v["status"]["authenticated"], true);
    assert_eq!(v["status"]["user"]["username"], "alice");
    // a static token has no audience: reviewed for one the API does not serve, it is not
    // authenticated (kube's WrapAudienceAgnosticToken)
    let v: Value = fd
        .admin_client()
        .post(fd.url("/apis/authentication.k8s.io/v1/tokenreviews"))
        .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": "static-token", "audiences": ["vault"]}}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_ne!(v["status"]["authenticated"], true, "{v}");
    let r = fd
        .admin_client()
        .post(fd.url("/apis/authentication.k8s.io/v1/tokenreviews"))
        .json(&json!({"spec": {}}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // metrics
    let m = fd.admin_client().get(fd.url("/metrics")).send().unwrap().text().unwrap();
    assert!(m.contains("authentication_attempts{result=\"success\"}"), "{m}");
    assert!(m.contains("authentication_attempts{result=\"error\"}"));
    assert!(m.contains("authentication_duration_seconds_bucket"));
    assert!(m.contains("authenticated_user_requests{username=\"admin\"}"));
    assert!(m.contains("authenticated_user_requests{username=\"other\"}"));
}

#[test]
fn bad_headers_certs_and_spoofing() {
    let s = setup();
    let fd = &s.fd;
    let anon = fd.anonymous_client();

    // no credential / not a bearer credential: anonymous
    for h in
        [vec![], vec![("Authorization", "")], vec![("Authorization", "Bearer ")], vec![("Authorization", "Basic YTpi")]]
    {
        let (code, v) = whoami(fd, &anon, &h);
        assert_eq!(code, 201, "{h:?}: {v}");
        assert_eq!(v["status"]["userInfo"]["username"], "system:anonymous", "{h:?}");
    }
    // a 1 MB header: refused (401 or a header-size error), and the server lives on
    let big = format!("Bearer {}", "x".repeat(1 << 20));
    let r = anon.get(fd.url("/version")).header("Authorization", big).send();
    if let Ok(r) = r {
        assert!(matches!(r.status().as_u16(), 400 | 401 | 431), "{}", r.status());
    }
    assert_eq!(whoami(fd, &anon, &[]).0, 201);

    // spoofed identity headers from an untrusted client are ignored
    let spoof = [("X-Remote-User", "system:admin"), ("X-Remote-Group", "system:masters")];
    let (_, v) = whoami(fd, &anon, &spoof);
    assert_eq!(v["status"]["userInfo"]["username"], "system:anonymous");
    let (_, v) = whoami(fd, &fd.admin_client(), &spoof);
    assert_eq!(v["status"]["userInfo"]["username"], "admin");
    let (_, v) = whoami(fd, &anon, &[("X-Remote-User", "system:admin"), ("Authorization", "Bearer static-token")]);
    assert_eq!(v["status"]["userInfo"]["username"], "alice");

    // from the verified front proxy they are believed
    let proxy = fd.client_with_cert("front-proxy-client");
    let (code, v) =
        whoami(fd, &proxy, &[("X-Remote-User", "carol"), ("X-Remote-Group", "g1"), ("X-Remote-Extra-Scopes", "s")]);
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["status"]["userInfo"]["username"], "carol");
    assert_eq!(v["status"]["userInfo"]["groups"], json!(["g1", "system:authenticated"]));
    assert_eq!(v["status"]["userInfo"]["extra"]["scopes"], json!(["s"]));
    // ... and without a user header, the proxy's cert is no user's: 401 (kube's x509
    // authenticator fails to verify it), never anonymous
    let (code, v) = whoami(fd, &proxy, &[]);
    assert_eq!(code, 401, "{v}");
    let (code, v) = whoami(fd, &proxy, &[("X-Remote-User", "")]);
    assert_eq!(code, 401, "{v}");

    // a client cert from another CA fails the handshake
    let other = TestPki::new("other-ca");
    let (cert, key) = other.leaf("admin", &[], true);
    let id = reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap();
    let c = client_builder(&fd.certs()).identity(id).build().unwrap();
    assert!(c.get(fd.url("/version")).send().is_err(), "a foreign client cert must not be accepted");

    // impersonating groups without a user: kube's 500 text (responsewriters.InternalError), in
    // a Status as every error here
    let r = fd.admin_client().get(fd.url("/version")).header("Impersonate-Group", "system:masters").send().unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let s: Value = r.json().unwrap();
    assert_eq!((&s["kind"], &s["reason"]), (&json!("Status"), &json!("InternalError")), "{s}");
    assert_eq!(
        s["message"],
        r#"Internal Server Error: "/version": requested [{Group  system:masters    }] without impersonating a user"#
    );
}

#[test]
fn token_file_reloads() {
    let s = setup();
    let fd = &s.fd;
    let anon = fd.anonymous_client();
    let tokens = fd.dir.path().join("policies/tokens.csv");
    assert_eq!(whoami(fd, &anon, &[("Authorization", "Bearer new-token")]).0, 401);
    // a broken file keeps the old tokens
    std::fs::write(&tokens, "# not csv for kube\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&tokens, "static-token,alice,alice-uid\nnew-token,bob,bob-uid\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, v) = whoami(fd, &anon, &[("Authorization", "Bearer new-token")]);
        if code == 201 {
            assert_eq!(v["status"]["userInfo"]["username"], "bob");
            break;
        }
        assert!(Instant::now() < deadline, "token file never reloaded:\n{}", fd.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::fs::write(&tokens, "broken\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !fd.logs().contains("reload failed") {
        assert!(Instant::now() < deadline, "bad file not reported:\n{}", fd.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(whoami(fd, &anon, &[("Authorization", "Bearer new-token")]).0, 201, "old tokens kept");
}

/// `kubectl create token`: the TokenRequest subresource issues a bound token that
/// authenticates as the service account, with kube's validation and errors.
#[test]
fn kubectl_create_token() {
    let fd = Frontdoor::start(&[]);
    fd.kubectl_ok(&["create", "serviceaccount", "robot"]);
    let uid = fd.kubectl_ok(&["get", "sa", "robot", "-o", "jsonpath={.metadata.uid}"]);
    let token = fd.kubectl_ok(&["create", "token", "robot", "--duration=20m"]);
    let token = token.trim();
    let who = whoami_json(&token_kubeconfig(&fd, token), &[]);
    assert_eq!(who["status"]["userInfo"]["username"], "system:serviceaccount:default:robot");
    assert_eq!(who["status"]["userInfo"]["uid"], uid.as_str());
    let groups = who["status"]["userInfo"]["groups"].to_string();
    assert!(groups.contains("system:serviceaccounts:default"), "{groups}");

    let o = fd.kubectl(&["create", "token", "robot", "--duration=5m"]);
    assert!(
        stderr(&o)
            .contains("spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes"),
        "{}",
        stderr(&o)
    );
    let o = fd.kubectl(&["create", "token", "nobody"]);
    assert!(stderr(&o).contains(r#"serviceaccounts "nobody" not found"#), "{}", stderr(&o));
    // a token for another audience is not accepted by the API
    let other = fd.kubectl_ok(&["create", "token", "robot", "--audience=vault"]);
    let o = kubectl(&token_kubeconfig(&fd, other.trim()), &["auth", "whoami"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("Unauthorized"), "{}", stderr(&o));
    // ... but a TokenReview for that audience authenticates it (kube reviews a token for the
    // review's audiences), and one for another audience does not
    let review = |token: &str, audiences: Value| -> Value {
        let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token, "audiences": audiences}});
        let r =
            fd.admin_client().post(fd.url("/apis/authentication.k8s.io/v1/tokenreviews")).json(&body).send().unwrap();
        assert_eq!(r.status().as_u16(), 201);
        r.json().unwrap()
    };
    let v = review(other.trim(), json!(["vault", "elsewhere"]));
    assert_eq!(v["status"]["authenticated"], true, "{v}");
    assert_eq!(v["status"]["user"]["username"], "system:serviceaccount:default:robot");
    assert_eq!(v["status"]["audiences"], json!(["vault"]));
    let v = review(other.trim(), json!(["elsewhere"]));
    assert_ne!(v["status"]["authenticated"], true, "{v}");
    assert!(v["status"]["error"].as_str().unwrap_or_default().contains("invalid for the target audiences"), "{v}");
    // the API's own token, reviewed for another audience, is not authenticated for it
    let v = review(token, json!(["vault"]));
    assert_ne!(v["status"]["authenticated"], true, "{v}");

    // a token bound to a Secret lives as long as that Secret (kube's TokenRequest and validator)
    fd.kubectl_ok(&["create", "secret", "generic", "holder", "--from-literal=a=b"]);
    let secret_uid = fd.kubectl_ok(&["get", "secret", "holder", "-o", "jsonpath={.metadata.uid}"]);
    let bound =
        fd.kubectl_ok(&["create", "token", "robot", "--bound-object-kind=Secret", "--bound-object-name=holder"]);
    let claims = |token: &str| -> Value {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    assert_eq!(claims(bound.trim())["kubernetes.io"]["secret"], json!({"name": "holder", "uid": secret_uid}));
    let bound_kc = token_kubeconfig(&fd, bound.trim());
    assert!(kubectl(&bound_kc, &["auth", "whoami"]).status.success());
    for (args, want) in [
        (vec!["--bound-object-kind=Secret", "--bound-object-name=nothing"], r#"secrets "nothing" not found"#),
        (vec!["--bound-object-kind=Pod", "--bound-object-name=p"], r#"pods "p" not found"#),
        (
            vec!["--bound-object-kind=Secret", "--bound-object-name=holder", "--bound-object-uid=0000"],
            "the UID in the bound object reference (0000) does not match the UID in record",
        ),
    ] {
        let o = fd.kubectl(&[&["create", "token", "robot"][..], &args].concat());
        assert!(!o.status.success() && stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    fd.kubectl_ok(&["delete", "secret", "holder"]);
    wait_until("the bound token refused once its Secret is gone", std::time::Duration::from_secs(20), || {
        !kubectl(&bound_kc, &["auth", "whoami"]).status.success()
    });

    // a token does not outlive its service account
    let unused = fd.kubectl_ok(&["create", "token", "robot"]);
    fd.kubectl_ok(&["delete", "sa", "robot"]);
    let o = kubectl(&token_kubeconfig(&fd, unused.trim()), &["auth", "whoami"]);
    assert!(!o.status.success(), "the service account is gone");

    // discovery lists the subresource as kube does
    let v1: Value = fd.admin_client().get(fd.url("/api/v1")).send().unwrap().json().unwrap();
    let sub = v1["resources"].as_array().unwrap().iter().find(|r| r["name"] == "serviceaccounts/token").cloned();
    let sub = sub.expect("serviceaccounts/token in /api/v1");
    assert_eq!((sub["group"].as_str(), sub["kind"].as_str()), (Some("authentication.k8s.io"), Some("TokenRequest")));
    assert_eq!(sub["verbs"], serde_json::json!(["create"]));
}

/// The request-header CA reloads without a restart: once front-proxy-ca.crt is replaced, a front
/// proxy with a cert from the new CA is believed, and one from the old CA no longer is.
#[test]
fn rotated_requestheader_ca_takes_effect_without_restart() {
    let fd = Frontdoor::start(&[]);
    let new_ca = TestPki::new("front-proxy-ca-2");
    let (cert, key) = new_ca.leaf("front-proxy-client", &[], true);
    let id = reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap();
    let new_proxy = client_builder(&fd.certs()).identity(id).build().unwrap();
    let old_proxy = fd.client_with_cert("front-proxy-client");
    let as_carol = [("X-Remote-User", "carol")];
    assert_eq!(whoami(&fd, &old_proxy, &as_carol).1["status"]["userInfo"]["username"], "carol");
    assert!(new_proxy.get(fd.url("/version")).send().is_err(), "the new CA is not trusted yet");

    let ca_file = fd.certs().join("front-proxy-ca.crt");
    let tmp = fd.certs().join(".front-proxy-ca.crt.tmp");
    std::fs::write(&tmp, &new_ca.ca_pem).unwrap();
    std::fs::rename(&tmp, &ca_file).unwrap();
    wait_until("the new request-header CA", Duration::from_secs(20), || {
        new_proxy.get(fd.url("/version")).send().is_ok()
    });
    let (code, v) = whoami(&fd, &new_proxy, &as_carol);
    assert_eq!((code, v["status"]["userInfo"]["username"].as_str()), (201, Some("carol")), "{v}");
    // a new connection (an established one keeps its verified peer, as in kube)
    let old_proxy = fd.client_with_cert("front-proxy-client");
    assert!(old_proxy.get(fd.url("/version")).send().is_err(), "the old CA is no longer trusted");
}
