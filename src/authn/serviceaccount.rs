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
/// kube's label on a Secret whose legacy token it no longer takes.
pub const INVALID_SINCE_LABEL: &str = "kubernetes.io/legacy-token-invalid-since";
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
            let data = crate::reload::read(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
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
        keys::verify_signature(token, t, &self.keys, true).map_err(|e| format!("invalid bearer token, {e}"))?;
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

/// kube's legacy validator with lookup: a legacy token holds only while its Secret exists,
/// is not being deleted and holds this very token, and while its service account exists with
/// the uid it names; a Secret labelled invalid ends it. Without the Secret's check, a token
/// signed once would outlive the Secret deleted (or rotated) to revoke it.
pub fn check_legacy(
    lookup: &super::ObjectUid,
    token: &str,
    ns: &str,
    name: &str,
    uid: &str,
    c: &Value,
) -> Result<(), String> {
    use sha2::Digest;
    let secret_name = str_claim(c, "kubernetes.io/serviceaccount/secret.name");
    let secret = lookup("secrets", ns, secret_name).filter(|s| s.deleting_since.is_none());
    let Some(secret) = secret else { return Err("invalid bearer token, Token has been invalidated".into()) };
    let token_sha256: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
    if secret.token_sha256 != Some(token_sha256) {
        return Err("invalid bearer token, Token does not match server's copy".into());
    }
    match lookup("serviceaccounts", ns, name) {
        None => return Err(format!("invalid bearer token, serviceaccounts \"{name}\" not found")),
        Some(sa) if sa.deleting_since.is_some() => {
            return Err(format!("invalid bearer token, ServiceAccount {ns}/{name} has been deleted"))
        }
        Some(sa) if sa.uid != uid => {
            return Err(format!("invalid bearer token, ServiceAccount UID ({}) does not match claim ({uid})", sa.uid))
        }
        Some(_) => {}
    }
    if secret.invalid_since {
        return Err(format!(
            "invalid bearer token, the token in secret {ns}/{secret_name} for service account {ns}/{name} has been \
             marked invalid. Use tokens from the TokenRequest API or manually created secret-based tokens, or \
             remove the '{INVALID_SINCE_LABEL}' label from the secret to temporarily allow use of this token"
        ));
    }
    Ok(())
}

fn bound(c: &Value, api_audiences: &[String]) -> TokenResult {
    let now = keys::now_unix();
    let auds = keys::audiences(c).ok_or_else(|| format!("invalid bearer token, {}", keys::MALFORMED_AUDIENCE))?;
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

    /// kube's legacy validator: the token lives in its Secret, and both the Secret and the
    /// service account must stand as the token names them.
    #[test]
    fn a_legacy_token_holds_while_its_secret_holds_it() {
        use super::super::CoreObject;
        use base64::Engine;
        let claims = serde_json::json!({"kubernetes.io/serviceaccount/secret.name": "robot-token"});
        let secret = |token: &str| {
            let data = base64::engine::general_purpose::STANDARD.encode(token);
            CoreObject::of(&serde_json::json!({"metadata": {"uid": "s-1"}, "data": {"token": data}}))
        };
        let sa = CoreObject { uid: "sa-1".into(), ..Default::default() };
        let check = |secret: Option<CoreObject>, sa: Option<CoreObject>| {
            let lookup = move |resource: &str, ns: &str, name: &str| {
                assert_eq!(ns, "d");
                match resource {
                    "secrets" => secret.clone().filter(|_| name == "robot-token"),
                    _ => sa.clone().filter(|_| name == "robot"),
                }
            };
            check_legacy(&lookup, "t0ken", "d", "robot", "sa-1", &claims)
        };
        assert_eq!(check(Some(secret("t0ken")), Some(sa.clone())), Ok(()));
        let invalidated = Err("invalid bearer token, Token has been invalidated".to_string());
        assert_eq!(check(None, Some(sa.clone())), invalidated, "the Secret deleted");
        let deleting = CoreObject { deleting_since: Some(chrono::Utc::now()), ..secret("t0ken") };
        assert_eq!(check(Some(deleting), Some(sa.clone())), invalidated, "its deletion began (no leeway)");
        let e = check(Some(secret("another")), Some(sa.clone())).unwrap_err();
        assert_eq!(e, "invalid bearer token, Token does not match server's copy");
        let e = check(Some(CoreObject::of(&serde_json::json!({"metadata": {}}))), Some(sa.clone())).unwrap_err();
        assert_eq!(e, "invalid bearer token, Token does not match server's copy", "a Secret without a token");
        let e = check(Some(secret("t0ken")), None).unwrap_err();
        assert_eq!(e, "invalid bearer token, serviceaccounts \"robot\" not found");
        let other = CoreObject { uid: "sa-2".into(), ..Default::default() };
        let e = check(Some(secret("t0ken")), Some(other)).unwrap_err();
        assert_eq!(e, "invalid bearer token, ServiceAccount UID (sa-2) does not match claim (sa-1)");
        let labelled = CoreObject::of(&serde_json::json!({"metadata": {"labels": {INVALID_SINCE_LABEL: "2026-01-01"}},
            "data": {"token": base64::engine::general_purpose::STANDARD.encode("t0ken")}}));
        let e = check(Some(labelled), Some(sa)).unwrap_err();
        assert!(
            e.contains("the token in secret d/robot-token for service account d/robot has been marked invalid"),
            "{e}"
        );
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
