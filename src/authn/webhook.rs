//! Webhook token authentication (`--authentication-token-webhook-config-file`, kubeconfig
//! format): POSTs an `authentication.k8s.io` TokenReview to the remote service and believes
//! its `status`. Results are cached for `--authentication-token-webhook-cache-ttl`
//! (authenticated and not-authenticated alike); errors are not cached, as in kube.

use super::cache::{TokenCache, TokenResult};
use super::https::{self, TlsClient};
use super::user::UserInfo;
use base64::Engine;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Webhook {
    server: url::Url,
    tls: Option<TlsClient>,
    bearer: Option<String>,
    version: String,
    cache: TokenCache,
}

impl Webhook {
    pub fn load(path: &Path, ttl: Duration, version: &str) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base, ttl, version).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str, base: &Path, ttl: Duration, version: &str) -> anyhow::Result<Self> {
        if version != "v1" && version != "v1beta1" {
            anyhow::bail!("unsupported --authentication-token-webhook-version {version:?} (v1, v1beta1)");
        }
        let kc: Value = serde_yaml::from_str(text)?;
        let pick = |list: &str, name: Option<&str>| -> Option<Value> {
            let items = kc.get(list)?.as_array()?;
            let found = name.and_then(|n| items.iter().find(|i| i.get("name").and_then(Value::as_str) == Some(n)));
            found.or(items.first()).cloned()
        };
        let ctx_name = kc.get("current-context").and_then(Value::as_str);
        let ctx = pick("contexts", ctx_name).and_then(|c| c.get("context").cloned()).unwrap_or(Value::Null);
        let cluster = pick("clusters", ctx.get("cluster").and_then(Value::as_str))
            .and_then(|c| c.get("cluster").cloned())
            .ok_or_else(|| anyhow::anyhow!("kubeconfig has no cluster"))?;
        let user = pick("users", ctx.get("user").and_then(Value::as_str))
            .and_then(|u| u.get("user").cloned())
            .unwrap_or(Value::Null);
        let server =
            cluster.get("server").and_then(Value::as_str).ok_or_else(|| anyhow::anyhow!("cluster has no server"))?;
        let server = url::Url::parse(server).map_err(|e| anyhow::anyhow!("server {server:?}: {e}"))?;
        let ca = data_or_file(&cluster, "certificate-authority", base)?;
        let cert = data_or_file(&user, "client-certificate", base)?;
        let key = data_or_file(&user, "client-key", base)?;
        let insecure = cluster.get("insecure-skip-tls-verify").and_then(Value::as_bool).unwrap_or(false);
        let tls = if server.scheme() == "https" {
            let identity = match (&cert, &key) {
                (Some(c), Some(k)) => Some((c.as_slice(), k.as_slice())),
                _ => None,
            };
            Some(TlsClient::new(ca.as_deref(), identity, insecure)?)
        } else {
            None
        };
        let bearer = user.get("token").and_then(Value::as_str).map(str::to_string);
        Ok(Webhook { server, tls, bearer, version: version.to_string(), cache: TokenCache::new(ttl, ttl, false) })
    }

    pub async fn authenticate(&self, token: &str, audiences: &[String]) -> TokenResult {
        if let Some(r) = self.cache.get(token) {
            return r;
        }
        let r = self.review(token, audiences).await;
        self.cache.put(token, &r);
        r
    }

    async fn review(&self, token: &str, audiences: &[String]) -> TokenResult {
        let mut spec = json!({"token": token});
        if !audiences.is_empty() {
            spec["audiences"] = json!(audiences);
        }
        let body = json!({"apiVersion": format!("authentication.k8s.io/{}", self.version), "kind": "TokenReview", "spec": spec});
        let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        let auth = self.bearer.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json"), ("Accept", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let resp = https::request(&self.server, "POST", &headers, &body, self.tls.as_ref(), TIMEOUT)
            .await
            .map_err(|e| format!("webhook token authentication failed: {e:#}"))?;
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
        Ok(Some(Arc::new(user)))
    }
}

/// `<field>-data` (base64) or `<field>` (a path, relative to the kubeconfig's directory).
fn data_or_file(v: &Value, field: &str, base: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(d) = v.get(format!("{field}-data")).and_then(Value::as_str) {
        return base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{field}-data: {e}"));
    }
    if let Some(p) = v.get(field).and_then(Value::as_str) {
        let p = Path::new(p);
        let p = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        return std::fs::read(&p).map(Some).map_err(|e| anyhow::anyhow!("{field} {}: {e}", p.display()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig() {
        let kc = "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: {server: 'http://127.0.0.1:1/review'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: a, user: u}\ncurrent-context: c\n";
        let w = Webhook::parse(kc, Path::new("."), Duration::from_secs(1), "v1").unwrap();
        assert_eq!(w.server.as_str(), "http://127.0.0.1:1/review");
        assert_eq!(w.bearer.as_deref(), Some("t"));
        assert!(Webhook::parse("clusters: []\n", Path::new("."), Duration::ZERO, "v1").is_err());
        assert!(Webhook::parse(kc, Path::new("."), Duration::ZERO, "v2").is_err());
        assert!(Webhook::parse(": : :", Path::new("."), Duration::ZERO, "v1").is_err());
    }

    #[tokio::test]
    async fn unreachable_is_an_error_not_cached() {
        let kc = "clusters:\n- name: a\n  cluster: {server: 'http://127.0.0.1:1/'}\n";
        let w = Webhook::parse(kc, Path::new("."), Duration::from_secs(60), "v1").unwrap();
        assert!(w.authenticate("tok", &[]).await.is_err());
        assert!(w.cache.get("tok").is_none());
    }
}
