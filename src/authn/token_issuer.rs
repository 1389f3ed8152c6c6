//! Issuing bound service-account tokens (the TokenRequest API, `kubectl create token`), signed
//! with `--service-account-signing-key-file` as kube's token generator does: the `kubernetes.io`
//! claim names the service account, `kid` is kube's key ID, so the service-account
//! authenticator (ours, or kube's with the matching public key) accepts them.

use super::keys;
use super::serviceaccount::make_username;
use anyhow::{anyhow, bail, Context};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use std::path::Path;

pub struct TokenIssuer {
    key: EncodingKey,
    header: Header,
    issuer: String,
}

/// The service account a token is for.
pub struct Subject<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    /// The Secret the token is bound to (name, uid): it lives only as long as that Secret.
    pub secret: Option<(&'a str, &'a str)>,
}

impl TokenIssuer {
    /// Loads a PEM private key: ECDSA P-256/P-384 (PKCS#8) or RSA (PKCS#8 or PKCS#1).
    pub fn load(key_file: &Path, issuer: &str) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(key_file).with_context(|| format!("cannot read {}", key_file.display()))?;
        let bad = |e: &dyn std::fmt::Display| anyhow!("{}: not a usable private key: {e}", key_file.display());
        let (alg, kid) = match rcgen::KeyPair::from_pem(&pem) {
            Ok(kp) => {
                let alg = if kp.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256 {
                    Algorithm::ES256
                } else if kp.algorithm() == &rcgen::PKCS_ECDSA_P384_SHA384 {
                    Algorithm::ES384
                } else if kp.algorithm() == &rcgen::PKCS_RSA_SHA256 {
                    Algorithm::RS256
                } else {
                    bail!("{}: unsupported key type (ECDSA P-256/P-384 or RSA)", key_file.display());
                };
                (alg, Some(keys::key_id(&kp.public_key_der())))
            }
            // a PKCS#1 RSA key, as kubeadm writes sa.key; signed without a kid (every
            // service-account key is tried in turn anyway)
            Err(_) if pem.contains("BEGIN RSA PRIVATE KEY") => (Algorithm::RS256, None),
            Err(e) => return Err(bad(&e)),
        };
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            _ => EncodingKey::from_ec_pem(pem.as_bytes()),
        }
        .map_err(|e| bad(&e))?;
        let mut header = Header::new(alg);
        header.kid = kid;
        Ok(TokenIssuer { key, header, issuer: issuer.to_string() })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A token for `sa`, valid from now for `seconds`, for `audiences`; with its expiry (unix).
    pub fn issue(&self, sa: &Subject<'_>, audiences: &[String], seconds: i64) -> anyhow::Result<(String, i64)> {
        let now = keys::now_unix();
        let exp = now + seconds;
        let mut claims = json!({
            "iss": self.issuer,
            "sub": make_username(sa.namespace, sa.name),
            "aud": audiences,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": {"namespace": sa.namespace, "serviceaccount": {"name": sa.name, "uid": sa.uid}},
        });
        if let Some((name, uid)) = sa.secret {
            claims["kubernetes.io"]["secret"] = json!({"name": name, "uid": uid});
        }
        let token = jsonwebtoken::encode(&self.header, &claims, &self.key).context("cannot sign the token")?;
        Ok((token, exp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::serviceaccount::ServiceAccounts;

    #[test]
    fn issued_tokens_authenticate_as_the_service_account() {
        let dir = tempfile::tempdir().unwrap();
        crate::certs::ensure_dev_pki(dir.path(), "https://127.0.0.1:6443").unwrap();
        let iss = "https://kubernetes.default.svc.cluster.local";
        let issuer = TokenIssuer::load(&dir.path().join("sa.key"), iss).unwrap();
        let sa = Subject { namespace: "team", name: "robot", uid: "u-1", secret: None };
        let (token, exp) = issuer.issue(&sa, &[iss.to_string()], 600).unwrap();
        assert!(exp > keys::now_unix() + 590);

        let verifier = ServiceAccounts::load(&[dir.path().join("sa.pub")], &[iss.into()], &[]).unwrap();
        let peeked = keys::peek(&token).unwrap();
        assert_eq!(peeked.header.kid, verifier_kid(&dir.path().join("sa.pub")), "kube's key ID");
        let user = verifier.authenticate(&token, &peeked).unwrap().unwrap();
        assert_eq!(user.username, "system:serviceaccount:team:robot");
        assert_eq!(user.uid, "u-1");
        assert!(user.groups.contains(&"system:serviceaccounts:team".to_string()));

        // another audience is not accepted by the API
        let (other, _) = issuer.issue(&sa, &["vault".to_string()], 600).unwrap();
        assert!(verifier.authenticate(&other, &keys::peek(&other).unwrap()).is_err());
    }

    fn verifier_kid(pub_file: &Path) -> Option<String> {
        keys::parse_pem_keys(&std::fs::read(pub_file).unwrap()).unwrap().remove(0).kid
    }

    #[test]
    fn bad_keys_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k.pem");
        std::fs::write(&f, "not a key").unwrap();
        assert!(TokenIssuer::load(&f, "i").err().unwrap().to_string().contains("not a usable private key"));
        assert!(TokenIssuer::load(&dir.path().join("missing"), "i").err().unwrap().to_string().contains("cannot read"));
    }
}
