//! Webhook token authentication (`--authentication-token-webhook-config-file`, kubeconfig
//! format): POSTs an `authentication.k8s.io` TokenReview to the remote service and believes
//! its `status`. Results are cached for `--authentication-token-webhook-cache-ttl`
//! (authenticated and not-authenticated alike); errors are not cached, as in kube.

use super::cache::{TokenCache, TokenResult};
use super::user::UserInfo;
use crate::kubeconfig::{Endpoint, Kubeconfig};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Webhook {
    endpoint: Endpoint,
    version: String,
    /// By audiences and token: the user and the audiences it was authenticated for.
    cache: TokenCache<(TokenResult, Vec<String>)>,
}

impl Webhook {
    pub fn load(path: &Path, ttl: Duration, version: &str) -> anyhow::Result<Self> {
        check_version(version)?;
        Self::new(Kubeconfig::load(path)?, ttl, version)
    }

    pub fn parse(text: &str, base: &Path, ttl: Duration, version: &str) -> anyhow::Result<Self> {
        check_version(version)?;
        Self::new(Kubeconfig::parse(text, base)?, ttl, version)
    }

    /// A TokenReview client of an apiserver frontdoor calls as itself (the upstream apiserver).
    pub fn for_apiserver(client: &crate::kubeconfig::ApiserverClient, ttl: Duration) -> anyhow::Result<Self> {
        let endpoint = client.endpoint("/apis/authentication.k8s.io/v1/tokenreviews", TIMEOUT)?;
        Ok(Webhook { endpoint, version: "v1".into(), cache: TokenCache::new(ttl, ttl, false) })
    }

    fn new(kc: Kubeconfig, ttl: Duration, version: &str) -> anyhow::Result<Self> {
        let endpoint = kc.endpoint(TIMEOUT)?;
        Ok(Webhook { endpoint, version: version.to_string(), cache: TokenCache::new(ttl, ttl, false) })
    }

    /// The token's user when reviewed for `audiences` (the request's: the API's, or a
    /// TokenReview's; none, no audience check), and the audiences it was authenticated for: as
    /// kube's webhook authenticator, those asked for that the review's `status.audiences` name
    /// (or, when it names none, the API's, `implicit`). A token for none of them is not
    /// authenticated.
    pub async fn authenticate(
        &self,
        token: &str,
        audiences: &[String],
        implicit: &[String],
    ) -> (TokenResult, Vec<String>) {
        if let Some(r) = self.cache.get(audiences, token) {
            return r;
        }
        let r = match self.review(token, audiences).await {
            Ok(Some((user, got))) => {
                let got = if got.is_empty() { implicit } else { &got[..] };
                let met: Vec<String> = audiences.iter().filter(|a| got.contains(a)).cloned().collect();
                match audiences.is_empty() || !met.is_empty() {
                    true => (Ok(Some(user)), met),
                    false => (Ok(None), Vec::new()),
                }
            }
            Ok(None) => (Ok(None), Vec::new()),
            Err(e) => (Err(e), Vec::new()),
        };
        self.cache.put(audiences, token, &r);
        r
    }

    /// The review's user and `status.audiences`, when it authenticated the token.
    async fn review(&self, token: &str, audiences: &[String]) -> Result<Option<(Arc<UserInfo>, Vec<String>)>, String> {
        let mut spec = json!({"token": token});
        if !audiences.is_empty() {
            spec["audiences"] = json!(audiences);
        }
        let body = json!({"apiVersion": format!("authentication.k8s.io/{}", self.version), "kind": "TokenReview", "spec": spec});
        let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        let resp = self
            .endpoint
            .post_json(body)
            .await
            .map_err(|e| format!("webhook token authentication failed: {}: {e}", self.endpoint.url))?;
        if !(200..300).contains(&resp.code) {
            return Err(format!("webhook token authentication failed: the server responded with HTTP {}", resp.code));
        }
        let review: Value =
            serde_json::from_slice(&resp.body).map_err(|e| format!("webhook token authentication failed: {e}"))?;
        let status = review.get("status").cloned().unwrap_or(Value::Null);
        if status.get("authenticated").and_then(Value::as_bool) != Some(true) {
            return match status.get("error").and_then(Value::as_str) {
                Some(e) if !e.is_empty() => Err(e.to_string()),
                _ => Ok(None),
            };
        }
        let user: UserInfo = serde_json::from_value(status.get("user").cloned().unwrap_or(Value::Null))
            .map_err(|e| format!("webhook token authentication failed: status.user: {e}"))?;
        let audiences =
            status["audiences"].as_array().into_iter().flatten().filter_map(Value::as_str).map(String::from);
        Ok(Some((Arc::new(user), audiences.collect())))
    }
}

fn check_version(version: &str) -> anyhow::Result<()> {
    if version != "v1" && version != "v1beta1" {
        anyhow::bail!("unsupported --authentication-token-webhook-version {version:?} (v1, v1beta1)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig() {
        let kc = "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: {server: 'http://127.0.0.1:1/review'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: a, user: u}\ncurrent-context: c\n";
        let w = Webhook::parse(kc, Path::new("."), Duration::from_secs(1), "v1").unwrap();
        assert_eq!(w.endpoint.url, "http://127.0.0.1:1/review");
        assert_eq!(w.endpoint.token.as_deref(), Some("t"));
        assert!(Webhook::parse("clusters: []\n", Path::new("."), Duration::ZERO, "v1").is_err());
        assert!(Webhook::parse(kc, Path::new("."), Duration::ZERO, "v2").is_err());
        assert!(Webhook::parse(": : :", Path::new("."), Duration::ZERO, "v1").is_err());
    }

    #[tokio::test]
    async fn unreachable_is_an_error_not_cached() {
        let kc = "clusters:\n- name: a\n  cluster: {server: 'http://127.0.0.1:1/'}\n";
        let w = Webhook::parse(kc, Path::new("."), Duration::from_secs(60), "v1").unwrap();
        assert!(w.authenticate("tok", &[], &[]).await.0.is_err());
        assert!(w.cache.get(&[], "tok").is_none());
    }
}
