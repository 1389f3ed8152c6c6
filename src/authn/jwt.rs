//! JWT issuers from `--authentication-config` (`apiserver.config.k8s.io/v1beta1`
//! AuthenticationConfiguration, `jwt` list), as kube's structured OIDC authenticator:
//! issuer URL and audiences, claim mappings (`claim` + `prefix`), `claim`/`requiredValue`
//! validation rules. Keys come from the issuer's JWKS, found through its discovery document
//! over TLS (cached; refetched when they fail a token, no more often than [`REFRESH_FLOOR`]), or,
//! as a frontdoor extension, from a local file named by `issuer.jwksFile`.
//! CEL `expression` fields are refused at load, never silently ignored.

use super::cache::TokenResult;
use super::keys::{self, VerifyKey};
use super::user::UserInfo;
use crate::http_client::{self, Client};
use arc_swap::ArcSwap;
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The least time between two JWKS fetches for one issuer.
pub const REFRESH_FLOOR: Duration = Duration::from_secs(10);
/// go-oidc's leeway on `nbf` (expiry is checked strictly).
const NBF_LEEWAY: i64 = 300;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticationConfiguration {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub jwt: Vec<JwtAuthenticator>,
    #[serde(default)]
    pub anonymous: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtAuthenticator {
    pub issuer: Issuer,
    #[serde(default)]
    pub claim_validation_rules: Vec<ClaimValidationRule>,
    pub claim_mappings: ClaimMappings,
    #[serde(default)]
    pub user_validation_rules: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Issuer {
    pub url: String,
    #[serde(default, rename = "discoveryURL")]
    pub discovery_url: Option<String>,
    #[serde(default)]
    pub certificate_authority: Option<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub audience_match_policy: Option<String>,
    /// frontdoor extension: verify with this local JWKS file instead of discovery.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimValidationRule {
    #[serde(default)]
    pub claim: String,
    #[serde(default)]
    pub required_value: String,
    #[serde(default)]
    pub expression: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrefixedClaim {
    #[serde(default)]
    pub claim: String,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub expression: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimMappings {
    pub username: PrefixedClaim,
    #[serde(default)]
    pub groups: PrefixedClaim,
    #[serde(default)]
    pub uid: PrefixedClaim,
    #[serde(default)]
    pub extra: Vec<Value>,
}

/// Parses and validates an AuthenticationConfiguration; relative `jwksFile` paths are
/// taken relative to the config file's directory.
/// `disallowed`: the service-account issuers, which no JWT issuer may be (kube's
/// DisallowedIssuers: its tokens would authenticate as service accounts no lookup checks).
pub fn load_config(path: &Path, disallowed: &[String]) -> anyhow::Result<Vec<Arc<JwtIssuer>>> {
    let text = crate::api::documents::read_text(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_config(&text, base, disallowed).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub fn parse_config(text: &str, base: &Path, disallowed: &[String]) -> anyhow::Result<Vec<Arc<JwtIssuer>>> {
    let cfg: AuthenticationConfiguration = serde_yaml::from_str(text)?;
    if !matches!(
        cfg.api_version.as_str(),
        "apiserver.config.k8s.io/v1" | "apiserver.config.k8s.io/v1beta1" | "apiserver.config.k8s.io/v1alpha1"
    ) {
        anyhow::bail!("apiVersion {:?} is not apiserver.config.k8s.io/v1beta1", cfg.api_version);
    }
    if cfg.kind != "AuthenticationConfiguration" {
        anyhow::bail!("kind {:?} is not AuthenticationConfiguration", cfg.kind);
    }
    if cfg.anonymous.is_some() {
        anyhow::bail!("anonymous: not supported in the authentication config by frontdoor; use --anonymous-auth");
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, j) in cfg.jwt.into_iter().enumerate() {
        let at = format!("jwt[{i}]");
        if !seen.insert(j.issuer.url.clone()) {
            anyhow::bail!("{at}.issuer.url: Duplicate value: {:?}", j.issuer.url);
        }
        out.push(Arc::new(JwtIssuer::new(j, base, disallowed).map_err(|e| anyhow::anyhow!("{at}.{e}"))?));
    }
    Ok(out)
}

/// One configured issuer, ready to verify.
pub struct JwtIssuer {
    pub url: String,
    audiences: Vec<String>,
    rules: Vec<(String, String)>,
    username: (String, String),
    groups: (String, String),
    uid: String,
    keys: KeySource,
}

enum KeySource {
    File { path: PathBuf, keys: ArcSwap<Vec<VerifyKey>> },
    Remote(Remote),
}

/// kube's validateURL of an issuer's URL or discovery URL (`field`), in its words: https, with
/// no userinfo, query or fragment (as Go reads them: any userinfo, even empty, is one; an empty
/// query or fragment is none).
fn validate_url(field: &str, raw: &str) -> anyhow::Result<url::Url> {
    let url = url::Url::parse(raw).map_err(|e| anyhow::anyhow!("{field}: Invalid value: {e}"))?;
    let invalid = |why: &str| anyhow::anyhow!("{field}: Invalid value: {raw:?}: {why}");
    if url.scheme() != "https" {
        return Err(invalid("URL scheme must be https"));
    }
    let authority = raw.split("//").nth(1).unwrap_or("").split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(invalid("URL must not contain a username or password"));
    }
    if url.query().is_some_and(|q| !q.is_empty()) {
        return Err(invalid("URL must not contain a query"));
    }
    if url.fragment().is_some_and(|f| !f.is_empty()) {
        return Err(invalid("URL must not contain a fragment"));
    }
    Ok(url)
}

struct Remote {
    discovery: url::Url,
    check_issuer: bool,
    client: Client,
    keys: ArcSwap<Vec<VerifyKey>>,
    last_fetch: Mutex<Option<Instant>>,
    fetching: tokio::sync::Mutex<()>,
}

impl JwtIssuer {
    fn new(j: JwtAuthenticator, base: &Path, disallowed: &[String]) -> anyhow::Result<Self> {
        // kube's validateURL and validateAudiences, in its words
        validate_url("issuer.url", &j.issuer.url)?;
        let invalid_url = |why: &str| anyhow::anyhow!("issuer.url: Invalid value: {:?}: {why}", j.issuer.url);
        if disallowed.contains(&j.issuer.url) {
            let mut listed = disallowed.to_vec();
            listed.sort();
            return Err(invalid_url(&format!("URL must not overlap with disallowed issuers: [{}]", listed.join(" "))));
        }
        if j.issuer.audiences.is_empty() {
            anyhow::bail!("issuer.audiences: Required value: at least one issuer.audiences is required");
        }
        let mut seen = std::collections::HashSet::new();
        for (i, a) in j.issuer.audiences.iter().enumerate() {
            if a.is_empty() {
                anyhow::bail!("issuer.audiences[{i}]: Required value: audience can't be empty");
            }
            if !seen.insert(a) {
                anyhow::bail!("issuer.audiences[{i}]: Duplicate value: {a:?}");
            }
        }
        let policy = j.issuer.audience_match_policy.as_deref().unwrap_or("");
        if j.issuer.audiences.len() > 1 && policy != "MatchAny" {
            anyhow::bail!("issuer.audienceMatchPolicy: Invalid value: audienceMatchPolicy must be MatchAny for multiple audiences");
        }
        if !matches!(policy, "" | "MatchAny") {
            anyhow::bail!("issuer.audienceMatchPolicy: Invalid value: {policy:?}: audienceMatchPolicy must be empty or MatchAny for single audience");
        }
        let mut rules = Vec::new();
        for (i, r) in j.claim_validation_rules.iter().enumerate() {
            if !r.expression.is_empty() {
                anyhow::bail!("claimValidationRules[{i}].expression: CEL expressions are not supported by frontdoor");
            }
            if r.claim.is_empty() {
                anyhow::bail!("claimValidationRules[{i}].claim: Required value: claim or expression is required");
            }
            rules.push((r.claim.clone(), r.required_value.clone()));
        }
        if !j.user_validation_rules.is_empty() || !j.claim_mappings.extra.is_empty() {
            anyhow::bail!("userValidationRules/claimMappings.extra: CEL expressions are not supported by frontdoor");
        }
        let m = &j.claim_mappings;
        for (field, pc) in [("username", &m.username), ("groups", &m.groups), ("uid", &m.uid)] {
            if !pc.expression.is_empty() {
                anyhow::bail!("claimMappings.{field}.expression: CEL expressions are not supported by frontdoor");
            }
        }
        if m.username.claim.is_empty() {
            anyhow::bail!("claimMappings.username: Required value: claim or expression is required");
        }
        if m.username.prefix.is_none() {
            anyhow::bail!("claimMappings.username.prefix: Required value: required when claim is set. It can be set to an empty string to disable prefixing");
        }
        if !m.groups.claim.is_empty() && m.groups.prefix.is_none() {
            anyhow::bail!("claimMappings.groups.prefix: Required value: required when claim is set. It can be set to an empty string to disable prefixing");
        }
        let keys = match &j.issuer.jwks_file {
            Some(p) => {
                let path = if p.is_absolute() { p.clone() } else { base.join(p) };
                let keys = read_jwks_file(&path)?;
                KeySource::File { path, keys: ArcSwap::from_pointee(keys) }
            }
            None => {
                // kube's validateIssuerDiscoveryURL: the keys come over TLS, as the issuer's would
                let (discovery, check_issuer) = match j.issuer.discovery_url.as_deref().filter(|d| !d.is_empty()) {
                    Some(d) if d.trim_end_matches('/') == j.issuer.url.trim_end_matches('/') => anyhow::bail!(
                        "issuer.discoveryURL: Invalid value: {d:?}: discoveryURL must be different from URL"
                    ),
                    Some(d) => (validate_url("issuer.discoveryURL", d)?, false),
                    None => (
                        url::Url::parse(&format!(
                            "{}/.well-known/openid-configuration",
                            j.issuer.url.trim_end_matches('/')
                        ))?,
                        true,
                    ),
                };
                let ca = j.issuer.certificate_authority.as_deref().map(str::as_bytes);
                let tls = http_client::Tls { ca_pem: ca, ..Default::default() };
                let client =
                    Client::new(tls, FETCH_TIMEOUT).map_err(|e| anyhow::anyhow!("issuer.certificateAuthority: {e}"))?;
                KeySource::Remote(Remote {
                    discovery,
                    check_issuer,
                    client,
                    keys: ArcSwap::from_pointee(Vec::new()),
                    last_fetch: Mutex::new(None),
                    fetching: tokio::sync::Mutex::new(()),
                })
            }
        };
        Ok(JwtIssuer {
            url: j.issuer.url.clone(),
            audiences: j.issuer.audiences.clone(),
            rules,
            username: (m.username.claim.clone(), m.username.prefix.clone().unwrap_or_default()),
            groups: (m.groups.claim.clone(), m.groups.prefix.clone().unwrap_or_default()),
            uid: m.uid.claim.clone(),
            keys,
        })
    }

    /// Local JWKS files this issuer reads (for the reload watcher).
    pub fn jwks_file(&self) -> Option<&Path> {
        match &self.keys {
            KeySource::File { path, .. } => Some(path),
            KeySource::Remote(_) => None,
        }
    }

    /// Re-reads a local JWKS file; a bad file keeps the old keys.
    pub fn reload_jwks_file(&self) -> anyhow::Result<()> {
        if let KeySource::File { path, keys } = &self.keys {
            keys.store(Arc::new(read_jwks_file(path)?));
        }
        Ok(())
    }

    /// Verifies a token whose `iss` is this issuer's.
    pub async fn authenticate(&self, token: &str, t: &keys::Unverified) -> TokenResult {
        self.verify(token, t).await.map_err(|e| format!("jwt: {e}"))?;
        self.claims_to_user(&t.claims).map(|u| Some(Arc::new(u)))
    }

    /// As go-oidc's remote key set: a token the cached keys do not verify (an unknown kid, or
    /// a key the issuer rotated under the same kid or without one) has the keys fetched again,
    /// no more often than [`REFRESH_FLOOR`], and is tried once more with them.
    async fn verify(&self, token: &str, t: &keys::Unverified) -> Result<(), String> {
        let r = match &self.keys {
            KeySource::File { keys, .. } => {
                return keys::verify_signature(token, t, &keys.load(), false).map_err(|e| e.to_string())
            }
            KeySource::Remote(r) => r,
        };
        let current = r.keys.load_full();
        let first = keys::verify_signature(token, t, &current, false);
        match &first {
            Ok(()) => return Ok(()),
            // no other key makes these verify
            Err(keys::VerifyError::UnsupportedAlgorithm(_) | keys::VerifyError::UnsupportedCritical) => {
                return first.map_err(|e| e.to_string())
            }
            Err(_) => {}
        }
        r.refresh(&self.url).await;
        let keys = r.keys.load_full();
        if keys.is_empty() {
            // transient: the issuer's keys could not be fetched yet
            return Err(format!("no key with kid available: JWKS of {} not fetched", self.url));
        }
        if Arc::ptr_eq(&keys, &current) {
            return first.map_err(|e| e.to_string());
        }
        keys::verify_signature(token, t, &keys, false).map_err(|e| e.to_string())
    }

    /// Maps verified claims to a user, as kube's claim mappings and validation rules do.
    pub fn claims_to_user(&self, c: &Value) -> Result<UserInfo, String> {
        let now = keys::now_unix();
        if c.get("iss").and_then(Value::as_str) != Some(self.url.as_str()) {
            return Err(format!(
                "oidc: verify token: oidc: id token issued by a different provider, expected {:?}",
                self.url
            ));
        }
        let auds = keys::audiences(c).ok_or_else(|| format!("oidc: verify token: {}", keys::MALFORMED_AUDIENCE))?;
        if !auds.iter().any(|a| self.audiences.contains(a)) {
            return Err(format!("oidc: verify token: oidc: expected audience in {:?} got {auds:?}", self.audiences));
        }
        match keys::numeric_date(c, "exp") {
            Some(exp) if now <= exp => {}
            _ => return Err("oidc: verify token: oidc: token is expired".into()),
        }
        if keys::numeric_date(c, "nbf").is_some_and(|nbf| now + NBF_LEEWAY < nbf) {
            return Err("oidc: verify token: oidc: current time before the nbf (not before) time".into());
        }
        for (claim, required) in &self.rules {
            match c.get(claim) {
                Some(Value::String(v)) if v == required => {}
                Some(Value::String(_)) => {
                    return Err(format!(
                        "oidc: required claim {claim} value does not match. Got = {:?}, want = {required}",
                        c[claim]
                    ))
                }
                Some(_) => return Err(format!("oidc: parse claim {claim}: not a string")),
                None => return Err(format!("oidc: required claim {claim} not present in ID token")),
            }
        }
        let (uclaim, uprefix) = &self.username;
        let name = match c.get(uclaim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::String(_)) => return Err(format!("oidc: claim not present: {uclaim}")),
            Some(_) => return Err(format!("oidc: parse username claims {uclaim:?}: not a string")),
            None => return Err(format!("oidc: parse username claims {uclaim:?}: claim not present")),
        };
        if uclaim == "email" {
            match c.get("email_verified") {
                None | Some(Value::Bool(true)) => {}
                Some(Value::Bool(false)) => return Err("oidc: email not verified".into()),
                Some(_) => return Err("oidc: parse 'email_verified' claim: not a boolean".into()),
            }
        }
        let mut u = UserInfo { username: format!("{uprefix}{name}"), ..Default::default() };
        let (gclaim, gprefix) = &self.groups;
        if !gclaim.is_empty() {
            match c.get(gclaim) {
                None | Some(Value::Null) => {}
                Some(Value::String(g)) => u.groups.push(format!("{gprefix}{g}")),
                Some(Value::Array(a)) => {
                    for g in a {
                        let g = g
                            .as_str()
                            .ok_or_else(|| format!("oidc: parse groups claim {gclaim:?}: not a string array"))?;
                        u.groups.push(format!("{gprefix}{g}"));
                    }
                }
                Some(_) => return Err(format!("oidc: parse groups claim {gclaim:?}: not a string or string array")),
            }
        }
        if !self.uid.is_empty() {
            match c.get(&self.uid) {
                // kube's getUID: a mapped uid claim must be there
                None => return Err(format!("oidc: parse uid claim {:?}: claim not present", self.uid)),
                Some(Value::String(s)) => u.uid = s.clone(),
                Some(_) => return Err(format!("oidc: parse uid claim {:?}: not a string", self.uid)),
            }
        }
        Ok(u)
    }
}

fn read_jwks_file(path: &Path) -> anyhow::Result<Vec<VerifyKey>> {
    let data = crate::reload::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let keys = keys::parse_jwks(&data).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if keys.is_empty() {
        anyhow::bail!("{}: no usable signing key", path.display());
    }
    Ok(keys)
}

impl Remote {
    /// Fetches discovery then JWKS, at most once per [`REFRESH_FLOOR`]; concurrent callers
    /// wait for the one fetch. A failed fetch keeps the old keys.
    async fn refresh(&self, issuer: &str) {
        let _one = self.fetching.lock().await;
        {
            let last = self.last_fetch.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < REFRESH_FLOOR) {
                return;
            }
        }
        let result = self.fetch(issuer).await;
        *self.last_fetch.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        match result {
            Ok(keys) => {
                tracing::info!(issuer, keys = keys.len(), "fetched JWKS");
                self.keys.store(Arc::new(keys));
            }
            Err(e) => {
                tracing::warn!(issuer, error = %format!("{e:#}"), "JWKS fetch failed; keeping the previous keys")
            }
        }
    }

    async fn fetch(&self, issuer: &str) -> anyhow::Result<Vec<VerifyKey>> {
        let get = |url: &url::Url| {
            let url = url.clone();
            async move { self.client.get_json(url.as_str()).await.map_err(|e| anyhow::anyhow!("{url}: {e}")) }
        };
        let d = get(&self.discovery).await?;
        if d.code != 200 {
            anyhow::bail!("{}: HTTP {}", self.discovery, d.code);
        }
        let doc: Value = serde_json::from_slice(&d.body).map_err(|e| anyhow::anyhow!("discovery document: {e}"))?;
        if self.check_issuer && doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
            anyhow::bail!(
                "oidc: issuer did not match the issuer returned by provider, expected {issuer:?} got {:?}",
                doc.get("issuer")
            );
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow::anyhow!("discovery document has no jwks_uri"))?;
        let jwks_url = url::Url::parse(jwks_uri)?;
        let k = get(&jwks_url).await?;
        if k.code != 200 {
            anyhow::bail!("{jwks_url}: HTTP {}", k.code);
        }
        keys::parse_jwks(&k.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\n";
    const SA: &str = "https://kubernetes.default.svc.cluster.local";

    fn cfg(jwt: &str) -> anyhow::Result<Vec<Arc<JwtIssuer>>> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jwks.json"), r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#).unwrap();
        parse_config(&format!("{BASE}jwt:\n{jwt}"), dir.path(), &[SA.to_string()])
    }

    #[test]
    fn validates_config() {
        let good = "- issuer: {url: https://issuer.example, audiences: [a], jwksFile: jwks.json}\n  claimMappings: {username: {claim: sub, prefix: 'oidc:'}, groups: {claim: groups, prefix: ''}}\n";
        assert_eq!(cfg(good).unwrap().len(), 1);
        let e = |s: &str| cfg(s).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e(
            "- issuer: {url: http://x, audiences: [a]}\n  claimMappings: {username: {claim: sub, prefix: ''}}\n"
        )
        .contains("https"));
        assert!(e(
            "- issuer: {url: https://x, audiences: []}\n  claimMappings: {username: {claim: sub, prefix: ''}}\n"
        )
        .contains("audiences"));
        assert!(e("- issuer: {url: https://x, audiences: [a]}\n  claimMappings: {username: {claim: sub}}\n")
            .contains("prefix"));
        assert!(e(
            "- issuer: {url: https://x, audiences: [a]}\n  claimMappings: {username: {expression: 'claims.sub'}}\n"
        )
        .contains("CEL"));
        assert!(e(&format!("{good}{good}")).contains("Duplicate"));
        // kube's validateURL and validateAudiences
        let issuer = |issuer: &str| {
            e(&format!("- issuer: {issuer}\n  claimMappings: {{username: {{claim: sub, prefix: ''}}}}\n"))
        };
        assert!(
            issuer(&format!("{{url: {SA}, audiences: [a]}}")).contains("URL must not overlap with disallowed issuers")
        );
        assert!(issuer("{url: 'https://x?y=1', audiences: [a]}").contains("URL must not contain a query"));
        assert!(issuer("{url: 'https://x#f', audiences: [a]}").contains("URL must not contain a fragment"));
        assert!(issuer("{url: 'https://u:p@x', audiences: [a]}").contains("username or password"));
        assert!(issuer("{url: 'https://@x', audiences: [a]}").contains("username or password"));
        assert!(!issuer("{url: 'https://x?', audiences: [a]}").contains("query"), "an empty query is none, as in Go");
        assert!(issuer("{url: https://x, audiences: ['']}").contains("audience can't be empty"));
        // the discovery URL as the issuer's: its keys never come over plain HTTP
        let discovery = |d: &str| issuer(&format!("{{url: https://x, audiences: [a], discoveryURL: '{d}'}}"));
        assert!(discovery("http://127.0.0.1:1/.well-known/openid-configuration").contains(
            "issuer.discoveryURL: Invalid value: \"http://127.0.0.1:1/.well-known/openid-configuration\": URL scheme must be https"
        ));
        assert!(discovery("https://u:p@idp/d").contains("username or password"));
        assert!(discovery("https://idp/d?x=1").contains("URL must not contain a query"));
        assert!(discovery("https://idp/d#f").contains("URL must not contain a fragment"));
        assert!(discovery("https://x/").contains("discoveryURL must be different from URL"));
        assert!(
            issuer("{url: https://x, audiences: [a, a], audienceMatchPolicy: MatchAny}").contains("Duplicate value")
        );
        assert!(issuer("{url: https://x, audiences: [a], audienceMatchPolicy: Bogus}")
            .contains("must be empty or MatchAny"));
        assert!(parse_config("apiVersion: v1\nkind: Pod\n", Path::new("."), &[]).is_err());
        assert!(parse_config("{{{", Path::new("."), &[]).is_err());
    }

    #[test]
    fn claim_mapping() {
        let i = cfg("- issuer: {url: https://i, audiences: [a], jwksFile: jwks.json}\n  claimValidationRules: [{claim: hd, requiredValue: example.com}]\n  claimMappings: {username: {claim: email, prefix: ''}, groups: {claim: groups, prefix: 'g:'}, uid: {claim: sub}}\n").unwrap();
        let i = &i[0];
        let exp = keys::now_unix() + 60;
        let c = serde_json::json!({"iss":"https://i","aud":"a","exp":exp,"hd":"example.com","email":"j@x","sub":"42","groups":["dev"]});
        let u = i.claims_to_user(&c).unwrap();
        assert_eq!((u.username.as_str(), u.uid.as_str(), u.groups.clone()), ("j@x", "42", vec!["g:dev".to_string()]));
        // a mapped uid claim must be there (kube's getUID)
        let mut no_sub = c.clone();
        no_sub.as_object_mut().unwrap().remove("sub");
        assert_eq!(i.claims_to_user(&no_sub).unwrap_err(), "oidc: parse uid claim \"sub\": claim not present");
        let mut bad = c.clone();
        bad["hd"] = "other".into();
        assert!(i.claims_to_user(&bad).is_err());
        let mut bad = c.clone();
        bad["email_verified"] = false.into();
        assert!(i.claims_to_user(&bad).unwrap_err().contains("email not verified"));
        let mut bad = c.clone();
        bad["aud"] = serde_json::json!(["b"]);
        assert!(i.claims_to_user(&bad).unwrap_err().contains("audience"));
        let mut bad = c.clone();
        bad["exp"] = (keys::now_unix() - 1).into();
        assert!(i.claims_to_user(&bad).unwrap_err().contains("expired"));
        let mut bad = c.clone();
        bad["nbf"] = (keys::now_unix() + 3600).into();
        assert!(i.claims_to_user(&bad).unwrap_err().contains("nbf"));
        let mut bad = c;
        bad["iss"] = "https://evil".into();
        assert!(i.claims_to_user(&bad).is_err());
    }
}
