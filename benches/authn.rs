//! Authentication micro-benchmarks: a cached bearer-token authentication, a static-token
//! lookup, and uncached RS256 and ES256 service-account token verification.

use criterion::{criterion_group, criterion_main, Criterion};
use frontdoor::authn::token_file::TokenFile;
use frontdoor::authn::{Authentication, AuthnArgs};
use futures::FutureExt;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use std::io::Write;

const ISS: &str = "https://kubernetes.default.svc.cluster.local";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// (private PEM, public PEM) for an RSA-2048 key from the openssl CLI.
fn rsa_key() -> (Vec<u8>, Vec<u8>) {
    let out = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .output()
        .unwrap();
    let mut child = std::process::Command::new("openssl")
        .args(["pkey", "-pubout"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    (out.stdout, child.wait_with_output().unwrap().stdout)
}

fn sa_token(alg: Algorithm, key: &EncodingKey) -> String {
    let claims = json!({"iss": ISS, "aud": [ISS], "sub": "system:serviceaccount:default:bench", "exp": now() + 3600, "iat": now(),
        "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "bench", "uid": "0d4b6c1e-4f0a-4a53-9b7e-7c1f3f1a2b3c"},
        "pod": {"name": "bench-7d9f8", "uid": "5b1c2d3e-1111-2222-3333-444455556666"}}});
    encode(&Header::new(alg), &claims, key).unwrap()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let ec = rcgen::KeyPair::generate().unwrap();
    let (rsa_private, rsa_public) = rsa_key();
    std::fs::write(dir.path().join("ec.pub"), ec.public_key_pem()).unwrap();
    std::fs::write(dir.path().join("rsa.pub"), &rsa_public).unwrap();
    let args = AuthnArgs {
        service_account_key_file: vec![dir.path().join("ec.pub"), dir.path().join("rsa.pub")],
        service_account_issuer: vec![ISS.into()],
        ..Default::default()
    };
    let authn = Authentication::from_args(&args).unwrap();
    let es256 = sa_token(Algorithm::ES256, &EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap());
    let rs256 = sa_token(Algorithm::RS256, &EncodingKey::from_rsa_pem(&rsa_private).unwrap());
    // the service-account and cached paths never await, so one poll (`now_or_never`) runs
    // them whole, without runtime overhead in the numbers

    // sanity: both verify
    assert!(authn.authenticate_token(&es256).now_or_never().unwrap().unwrap().is_some());
    assert!(authn.authenticate_token(&rs256).now_or_never().unwrap().unwrap().is_some());

    c.bench_function("cached bearer token (ES256 SA JWT)", |b| {
        b.iter(|| authn.authenticate_token(std::hint::black_box(&es256)).now_or_never().unwrap())
    });

    // the cached path's floor: hashing the token for the cache key
    c.bench_function("siphash-1-3-128 of the token (cache key)", |b| {
        use siphasher::sip128::{Hasher128, SipHasher13};
        use std::hash::Hasher;
        let key = SipHasher13::new_with_key(&[7; 16]);
        b.iter(|| {
            let mut h = key;
            h.write(std::hint::black_box(es256.as_bytes()));
            h.finish128().as_u128()
        })
    });

    let csv: String = (0..10_000).map(|i| format!("token-{i:08},user{i},uid{i},\"g1,g2\"\n")).collect();
    let file = TokenFile::parse(&csv, "bench").unwrap();
    c.bench_function("static token lookup (10k tokens)", |b| {
        b.iter(|| file.authenticate(std::hint::black_box("token-00004242")))
    });

    c.bench_function("uncached RS256 verification", |b| {
        b.iter(|| authn.authenticate_token_uncached(std::hint::black_box(&rs256)).now_or_never().unwrap())
    });
    c.bench_function("uncached ES256 verification", |b| {
        b.iter(|| authn.authenticate_token_uncached(std::hint::black_box(&es256)).now_or_never().unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
