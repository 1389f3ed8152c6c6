//! Service-account tokens (`--service-account-key-file`, `--service-account-issuer`,
//! `--api-audiences`): legacy secret-based tokens (issuer `kubernetes/serviceaccount`) and
//! bound tokens (the `kubernetes.io` claim), as kube's serviceaccount JWT authenticator.
//! A JWT from another issuer is not ours (not an error), so the union tries the next.

use super::cache::TokenResult;
use super::keys::{self, VerifyKey};
use super::user::UserInfo;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// go-jose's default leeway, which kube's claim validation uses.
const LEEWAY: i64 = 60;

pub fn make_username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

pub fn make_group_names(namespace: &str) -> Vec<String> {
    vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{namespace}")]
}

/// kube's `serviceaccount.SplitUsername`: namespace and name of a service-account username.
pub fn split_username(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let mut parts = rest.split(':');
    let (ns, name) = (parts.next()?, parts.next()?);
    if parts.next().is_some() || !is_dns1123_label(ns) || !is_dns1123_subdomain(name) {
        return None;
    }
    Some((ns, name))
}

pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

pub struct ServiceAccounts {
    keys: Vec<VerifyKey>,
    issuers: Vec<String>,
    audiences: Vec<String>,
}

impl ServiceAccounts {
    pub fn load(files: &[PathBuf], issuers: &[String], audiences: &[String]) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        for f in files {
            let data = std::fs::read(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            keys.extend(keys::parse_pem_keys(&data).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?);
        }
        Ok(Self::new(keys, issuers, audiences))
    }

    pub fn new(keys: Vec<VerifyKey>, issuers: &[String], audiences: &[String]) -> Self {
        // kube: --api-audiences defaults to the first --service-account-issuer
        let audiences =
            if audiences.is_empty() { issuers.iter().take(1).cloned().collect() } else { audiences.to_vec() };
        ServiceAccounts { keys, issuers: issuers.to_vec(), audiences }
    }

    /// Whether this authenticator owns tokens with this `iss`.
    pub fn owns(&self, iss: &str) -> bool {
        iss == LEGACY_ISSUER || self.issuers.iter().any(|i| i == iss)
    }

    pub fn authenticate(&self, token: &str, t: &keys::Unverified) -> TokenResult {
        self.authenticate_for(token, t, &self.audiences)
    }

    /// `authenticate` for `audiences` (a TokenReview's) in place of the API's.
    pub fn authenticate_for(&self, token: &str, t: &keys::Unverified, audiences: &[String]) -> TokenResult {
        let iss = t.claims.get("iss").and_then(Value::as_str).unwrap_or_default();
        if !self.owns(iss) {
            return Ok(None);
        }
        // kube tries every key: a service-account token's kid is advisory
        keys::verify_signature(token, &t.header, &self.keys, true).map_err(|e| format!("invalid bearer token, {e}"))?;
        let c = &t.claims;
        if iss == LEGACY_ISSUER {
            return legacy(c);
        }
        bound(c, audiences)
    }
}

fn str_claim<'a>(c: &'a Value, name: &str) -> &'a str {
    c.get(name).and_then(Value::as_str).unwrap_or_default()
}

fn legacy(c: &Value) -> TokenResult {
    let ns = str_claim(c, "kubernetes.io/serviceaccount/namespace");
    let name = str_claim(c, "kubernetes.io/serviceaccount/service-account.name");
    let uid = str_claim(c, "kubernetes.io/serviceaccount/service-account.uid");
    if ns.is_empty()
        || name.is_empty()
        || uid.is_empty()
        || str_claim(c, "kubernetes.io/serviceaccount/secret.name").is_empty()
    {
        return Err("invalid bearer token, token lookup failed: missing service account claims".into());
    }
    if str_claim(c, "sub") != make_username(ns, name) {
        return Err("invalid bearer token, sub does not match the service account".into());
    }
    Ok(Some(Arc::new(UserInfo {
        username: make_username(ns, name),
        uid: uid.into(),
        groups: make_group_names(ns),
        ..Default::default()
    })))
}

fn bound(c: &Value, api_audiences: &[String]) -> TokenResult {
    let now = keys::now_unix();
    let auds = keys::audiences(c);
    if !auds.iter().any(|a| api_audiences.contains(a)) {
        return Err(format!(
            "invalid bearer token, token audiences {auds:?} is invalid for the target audiences {api_audiences:?}"
        ));
    }
    match keys::numeric_date(c, "exp") {
        // `now - LEEWAY`, not `exp + LEEWAY`: a token's exp may be any i64 (found by fuzzing)
        Some(exp) if now - LEEWAY > exp => return Err("invalid bearer token, service account token has expired".into()),
        Some(_) => {}
        None => return Err("invalid bearer token, service account token has no expiry".into()),
    }
    if keys::numeric_date(c, "nbf").is_some_and(|nbf| now + LEEWAY < nbf) {
        return Err("invalid bearer token, service account token is not valid yet".into());
    }
    if keys::numeric_date(c, "iat").is_some_and(|iat| now + LEEWAY < iat) {
        return Err("invalid bearer token, service account token issued in the future".into());
    }
    let k = c.get("kubernetes.io").ok_or("invalid bearer token, token does not carry the kubernetes.io claim")?;
    let ns = str_claim(k, "namespace");
    let sa = k.get("serviceaccount").cloned().unwrap_or(Value::Null);
    let (name, uid) = (str_claim(&sa, "name"), str_claim(&sa, "uid"));
    if ns.is_empty() || name.is_empty() {
        return Err("invalid bearer token, token does not name a service account".into());
    }
    let mut u = UserInfo {
        username: make_username(ns, name),
        uid: uid.into(),
        groups: make_group_names(ns),
        ..Default::default()
    };
    let mut extra = |key: &str, v: &str| {
        if !v.is_empty() {
            u.extra.insert(format!("authentication.kubernetes.io/{key}"), vec![v.to_string()]);
        }
    };
    if let Some(pod) = k.get("pod") {
        extra("pod-name", str_claim(pod, "name"));
        extra("pod-uid", str_claim(pod, "uid"));
    }
    if let Some(node) = k.get("node") {
        extra("node-name", str_claim(node, "name"));
        extra("node-uid", str_claim(node, "uid"));
    }
    let jti = str_claim(c, "jti");
    if !jti.is_empty() {
        extra("credential-id", &format!("JTI={jti}"));
    }
    Ok(Some(Arc::new(u)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(split_username("system:serviceaccount:ns:default"), Some(("ns", "default")));
        assert_eq!(split_username("system:serviceaccount:ns:a.b"), Some(("ns", "a.b")));
        assert_eq!(split_username("system:serviceaccount:ns"), None);
        assert_eq!(split_username("system:serviceaccount:ns:a:b"), None);
        assert_eq!(split_username("system:serviceaccount:NS:a"), None);
        assert_eq!(split_username("alice"), None);
    }

    /// Any i64 expiry is compared without overflow (a fuzzed token had exp near i64::MAX).
    #[test]
    fn extreme_expiries() {
        let aud = ["api".to_string()];
        let claims = |exp: i64| {
            serde_json::json!({"aud": ["api"], "exp": exp, "sub": "system:serviceaccount:ns:sa",
            "kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "sa", "uid": "u"}}})
        };
        let user = bound(&claims(i64::MAX), &aud).unwrap().unwrap();
        assert_eq!(user.username, "system:serviceaccount:ns:sa");
        let e = bound(&claims(i64::MIN), &aud).unwrap_err();
        assert_eq!(e, "invalid bearer token, service account token has expired");
    }
}
