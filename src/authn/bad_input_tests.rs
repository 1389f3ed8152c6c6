//! Bad-input tests over real keys: every malformed, forged or out-of-date token is refused
//! with an error (a 401), never accepted and never a panic.

use super::keys::{self, now_unix};
use super::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use std::process::Command;

pub struct TestKey {
    pub private_pem: Vec<u8>,
    pub public_pem: Vec<u8>,
    pub alg: Algorithm,
}

pub fn ec_key() -> TestKey {
    let k = rcgen::KeyPair::generate().unwrap();
    TestKey {
        private_pem: k.serialize_pem().into_bytes(),
        public_pem: k.public_key_pem().into_bytes(),
        alg: Algorithm::ES256,
    }
}

/// A 2048-bit RSA key from the openssl CLI (ring cannot generate RSA keys).
pub fn rsa_key() -> TestKey {
    let out = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let private_pem = out.stdout;
    let mut child = Command::new("openssl")
        .args(["pkey", "-pubout"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&private_pem).unwrap();
    let public_pem = child.wait_with_output().unwrap().stdout;
    TestKey { private_pem, public_pem, alg: Algorithm::RS256 }
}

impl TestKey {
    pub fn sign(&self, kid: Option<&str>, claims: &serde_json::Value) -> String {
        let key = match self.alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&self.private_pem).unwrap(),
            _ => EncodingKey::from_rsa_pem(&self.private_pem).unwrap(),
        };
        let mut h = Header::new(self.alg);
        h.kid = kid.map(str::to_string);
        encode(&h, claims, &key).unwrap()
    }
}

const ISS: &str = "https://kubernetes.default.svc.cluster.local";

fn sa_claims() -> serde_json::Value {
    json!({
        "iss": ISS, "aud": [ISS], "sub": "system:serviceaccount:ns:builder",
        "exp": now_unix() + 600, "iat": now_unix(), "nbf": now_unix(), "jti": "j1",
        "kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "builder", "uid": "sa-uid"}, "pod": {"name": "p", "uid": "p-uid"}}
    })
}

fn sa_authn(keys: &[&TestKey]) -> (Authentication, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let f = dir.path().join(format!("sa{i}.pub"));
        std::fs::write(&f, &k.public_pem).unwrap();
        files.push(f);
    }
    let a =
        AuthnArgs { service_account_key_file: files, service_account_issuer: vec![ISS.into()], ..Default::default() };
    (Authentication::from_args(&a).unwrap(), dir)
}

async fn outcome(a: &Authentication, token: &str) -> Result<(std::sync::Arc<UserInfo>, &'static str), Failure> {
    let mut r = RequestHeader::build("GET", b"/api", None).unwrap();
    r.insert_header("Authorization", format!("Bearer {token}")).unwrap();
    a.authenticate_request(None, &mut r).await
}

fn rejected(r: Result<(std::sync::Arc<UserInfo>, &'static str), Failure>, what: &str) {
    assert!(matches!(r, Err(Failure::Invalid(_))), "{what}: {r:?}");
}

#[tokio::test]
async fn service_account_tokens() {
    let (ec, rsa) = (ec_key(), rsa_key());
    let (a, _d) = sa_authn(&[&ec, &rsa]);
    for k in [&ec, &rsa] {
        let (u, how) = outcome(&a, &k.sign(None, &sa_claims())).await.unwrap();
        assert_eq!((u.username.as_str(), how, u.uid.as_str()), ("system:serviceaccount:ns:builder", "token", "sa-uid"));
        assert_eq!(u.groups, vec!["system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"]);
        assert_eq!(u.extra["authentication.kubernetes.io/pod-name"], vec!["p"]);
        assert_eq!(u.extra["authentication.kubernetes.io/credential-id"], vec!["JTI=j1"]);
    }
    let legacy = json!({"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:ns:old",
        "kubernetes.io/serviceaccount/namespace": "ns", "kubernetes.io/serviceaccount/secret.name": "old-token",
        "kubernetes.io/serviceaccount/service-account.name": "old", "kubernetes.io/serviceaccount/service-account.uid": "u"});
    assert_eq!(outcome(&a, &ec.sign(None, &legacy)).await.unwrap().0.username, "system:serviceaccount:ns:old");
}

#[tokio::test]
async fn forged_and_stale_tokens_are_401() {
    let ec = ec_key();
    let (a, _d) = sa_authn(&[&ec]);
    let good = ec.sign(None, &sa_claims());
    let with = |k: &str, v: serde_json::Value| {
        let mut c = sa_claims();
        c[k] = v;
        ec.sign(None, &c)
    };
    rejected(outcome(&a, &with("exp", (now_unix() - 120).into())).await, "expired");
    rejected(outcome(&a, &with("nbf", (now_unix() + 3600).into())).await, "not yet valid");
    rejected(outcome(&a, &with("aud", json!(["someone-else"]))).await, "wrong audience");
    rejected(outcome(&a, &with("iss", "https://evil.example".into())).await, "wrong issuer");
    rejected(outcome(&a, &ec_key().sign(None, &sa_claims())).await, "signed by another key");
    // algorithm confusion: HS256 with the public key as the HMAC secret
    let hs = encode(&Header::new(Algorithm::HS256), &sa_claims(), &EncodingKey::from_secret(&ec.public_pem)).unwrap();
    rejected(outcome(&a, &hs).await, "HS256 with the public key");
    // alg none, unsigned
    let b64 = |v: &serde_json::Value| {
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v.to_string())
    };
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&sa_claims()));
    rejected(outcome(&a, &none).await, "alg none");
    // garbage and truncated
    rejected(outcome(&a, &good[..good.len() / 2]).await, "truncated");
    rejected(outcome(&a, &good[..good.rfind('.').unwrap()]).await, "no signature");
    rejected(outcome(&a, "a.b.c").await, "garbage");
    rejected(outcome(&a, &"x".repeat(1 << 20)).await, "1 MB token");
    let mut tampered = good.clone();
    tampered.replace_range(good.len() - 4.., "AAAA");
    rejected(outcome(&a, &tampered).await, "tampered signature");
    // and the good one still works (failures were not cached under its key)
    assert!(outcome(&a, &good).await.is_ok());
}

fn jwks_for(k: &TestKey, kid: &str) -> serde_json::Value {
    use x509_parser::prelude::FromDer;
    let der = rustls_pemfile::read_one(&mut &k.public_pem[..]).unwrap().unwrap();
    let rustls_pemfile::Item::SubjectPublicKeyInfo(spki) = der else { panic!("not an SPKI") };
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki.as_ref()).unwrap();
    let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
    match spki.parsed().unwrap() {
        x509_parser::public_key::PublicKey::RSA(r) => {
            let n = r.modulus.iter().skip_while(|b| **b == 0).copied().collect::<Vec<_>>();
            json!({"keys": [{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(&n), "e": b64(r.exponent)}]})
        }
        x509_parser::public_key::PublicKey::EC(p) => {
            let d = p.data();
            json!({"keys": [{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(&d[1..33]), "y": b64(&d[33..65])}]})
        }
        _ => panic!("unexpected key"),
    }
}

#[tokio::test]
async fn jwt_issuer_with_jwks_file() {
    let rsa = rsa_key();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwks.json"), jwks_for(&rsa, "k1").to_string()).unwrap();
    let cfg = dir.path().join("authn.yaml");
    std::fs::write(&cfg, "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\njwt:\n- issuer: {url: 'https://idp.example', audiences: [frontdoor], jwksFile: jwks.json}\n  claimMappings: {username: {claim: sub, prefix: 'idp:'}, groups: {claim: groups, prefix: ''}}\n").unwrap();
    let a = Authentication::from_args(&AuthnArgs { authentication_config: Some(cfg), ..Default::default() }).unwrap();
    let claims = json!({"iss": "https://idp.example", "aud": "frontdoor", "sub": "jane", "groups": ["dev"], "exp": now_unix() + 60});
    let (u, _) = outcome(&a, &rsa.sign(Some("k1"), &claims)).await.unwrap();
    assert_eq!(
        (u.username.as_str(), u.groups.clone()),
        ("idp:jane", vec!["dev".to_string(), "system:authenticated".to_string()])
    );
    rejected(outcome(&a, &rsa.sign(Some("other"), &claims)).await, "unknown kid");
    let mut c = claims.clone();
    c["aud"] = "elsewhere".into();
    rejected(outcome(&a, &rsa.sign(Some("k1"), &c)).await, "wrong audience");
    let mut c = claims.clone();
    c["exp"] = (now_unix() - 1).into();
    rejected(outcome(&a, &rsa.sign(Some("k1"), &c)).await, "expired");
    rejected(outcome(&a, &ec_key().sign(Some("k1"), &claims)).await, "ES256 against an RSA key");
    assert!(
        keys::parse_jwks(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap().is_empty(),
        "symmetric keys are refused"
    );
}
