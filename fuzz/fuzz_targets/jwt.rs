//! JWT parsing: the first byte picks the input's kind. 0: a bearer token (split, decoded
//! unverified, verified against fixed keys); 1: a claims set, signed with the harness's key
//! so it reaches the service-account and OIDC claim checks behind the signature; 2: a JWKS
//! document; 3: a PEM key file.
#![no_main]
use frontdoor::authn::{jwt, keys, serviceaccount::ServiceAccounts};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::{Arc, OnceLock};

struct Fixture {
    signer: jsonwebtoken::EncodingKey,
    keys: Vec<keys::VerifyKey>,
    accounts: ServiceAccounts,
    issuer: Arc<jwt::JwtIssuer>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let pair = rcgen::KeyPair::generate().unwrap();
        let keys = keys::parse_pem_keys(pair.public_key_pem().as_bytes()).unwrap();
        let signer = jsonwebtoken::EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        let issuers = ["https://kubernetes.default.svc".to_string()];
        let accounts = ServiceAccounts::new(keys.clone(), &issuers, &[]);
        let config = "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\njwt:\n\
            - issuer: {url: 'https://issuer.example', audiences: [a]}\n  claimValidationRules: [{claim: hd, requiredValue: x}]\n\
            \x20 claimMappings: {username: {claim: email, prefix: ''}, groups: {claim: groups, prefix: 'oidc:'}, uid: {claim: sub}}\n";
        let issuer = jwt::parse_config(config, Path::new("/nonexistent"), &[]).unwrap().remove(0);
        Fixture { signer, keys, accounts, issuer }
    })
}

fn check_token(token: &str) {
    let f = fixture();
    if let Some(t) = keys::peek(token) {
        let _ = keys::verify_signature(token, &t, &f.keys, false);
        let _ = f.accounts.authenticate(token, &t);
        let _ = f.issuer.claims_to_user(&t.claims);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 4 {
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                check_token(token);
            }
        }
        1 => {
            let Ok(claims) = serde_json::from_slice::<serde_json::Value>(rest) else { return };
            if !claims.is_object() {
                return;
            }
            // jsonwebtoken refuses a token whose registered dates are not numbers, or whose
            // `sub` is not a string, even when only the signature is asked about (reported as a
            // bad signature: it is refused either way, as kube refuses it)
            let claims_ok = ["exp", "nbf", "iat"].iter().all(|c| claims.get(c).is_none_or(|v| v.is_number()))
                && claims.get("sub").is_none_or(|v| v.is_string());
            let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            if let Ok(token) = jsonwebtoken::encode(&header, &claims, &fixture().signer) {
                // a token the harness signed verifies: anything else is a bug in the verifier
                let t = keys::peek(&token).expect("a signed claims object peeks");
                if claims_ok {
                    assert_eq!(keys::verify_signature(&token, &t, &fixture().keys, false), Ok(()));
                }
                check_token(&token);
            }
        }
        2 => {
            let _ = keys::parse_jwks(rest);
        }
        _ => {
            let _ = keys::parse_pem_keys(rest);
        }
    }
});
