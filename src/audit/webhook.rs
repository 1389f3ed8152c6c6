//! The webhook backend's client: a kubeconfig names the receiver (server, CA, client
//! credentials); events are POSTed as an `audit.k8s.io/v1` EventList, retried with
//! exponential backoff on connection errors, 429 and 5xx (kube's webhook.WithExponentialBackoff).

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// kube's per-request timeout for the audit webhook.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_FACTOR: f64 = 1.5;
const BACKOFF_STEPS: u32 = 5;

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig {
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    users: Vec<Named<AuthInfo>>,
    #[serde(default)]
    contexts: Vec<Named<Context_>>,
    #[serde(default)]
    current_context: String,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    value: Option<T>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: String,
    certificate_authority: Option<PathBuf>,
    certificate_authority_data: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct AuthInfo {
    client_certificate: Option<PathBuf>,
    client_certificate_data: Option<String>,
    client_key: Option<PathBuf>,
    client_key_data: Option<String>,
    token: Option<String>,
}

#[derive(Deserialize, Default)]
struct Context_ {
    cluster: String,
    #[serde(default)]
    user: String,
}

pub struct Webhook {
    client: reqwest::Client,
    server: String,
    token: Option<String>,
    initial_backoff: Duration,
}

fn pem(path: &Option<PathBuf>, data: &Option<String>, base: &Path, what: &str) -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(d) = data {
        return Ok(Some(
            base64::engine::general_purpose::STANDARD.decode(d.trim()).with_context(|| format!("{what}-data"))?,
        ));
    }
    match path {
        Some(p) => {
            let p = if p.is_relative() { base.join(p) } else { p.clone() };
            Ok(Some(std::fs::read(&p).with_context(|| format!("reading {what} {}", p.display()))?))
        }
        None => Ok(None),
    }
}

impl Webhook {
    pub fn from_kubeconfig(path: &Path, initial_backoff: Duration) -> anyhow::Result<Webhook> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let kc: Kubeconfig =
            serde_yaml::from_str(&text).with_context(|| format!("audit webhook kubeconfig {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let ctx = kc.contexts.iter().find(|c| c.name == kc.current_context).and_then(|c| c.value.as_ref());
        let cluster = match ctx {
            Some(c) => kc.clusters.iter().find(|n| n.name == c.cluster),
            None => kc.clusters.first(),
        }
        .and_then(|n| n.value.as_ref())
        .ok_or_else(|| anyhow!("audit webhook kubeconfig {}: no cluster", path.display()))?;
        let user = match ctx {
            Some(c) => kc.users.iter().find(|n| n.name == c.user),
            None => kc.users.first(),
        }
        .and_then(|n| n.value.as_ref());
        if !cluster.server.starts_with("https://") && !cluster.server.starts_with("http://") {
            bail!("audit webhook kubeconfig {}: server {:?} is not an http(s) URL", path.display(), cluster.server);
        }
        let mut b = reqwest::Client::builder().use_rustls_tls().timeout(REQUEST_TIMEOUT);
        if let Some(ca) =
            pem(&cluster.certificate_authority, &cluster.certificate_authority_data, base, "certificate-authority")?
        {
            for c in reqwest::Certificate::from_pem_bundle(&ca).context("certificate-authority")? {
                b = b.add_root_certificate(c);
            }
        }
        if cluster.insecure_skip_tls_verify {
            b = b.danger_accept_invalid_certs(true);
        }
        let mut token = None;
        if let Some(u) = user {
            let cert = pem(&u.client_certificate, &u.client_certificate_data, base, "client-certificate")?;
            let key = pem(&u.client_key, &u.client_key_data, base, "client-key")?;
            if let (Some(mut cert), Some(key)) = (cert, key) {
                cert.extend_from_slice(b"\n");
                cert.extend_from_slice(&key);
                b = b.identity(reqwest::Identity::from_pem(&cert).context("client certificate/key")?);
            }
            token = u.token.clone();
        }
        Ok(Webhook { client: b.build()?, server: cluster.server.clone(), token, initial_backoff })
    }

    /// Posts one EventList, retrying with backoff.
    pub async fn post(&self, events: &[Bytes]) -> anyhow::Result<()> {
        let body = event_list(events);
        let mut delay = self.initial_backoff;
        let mut attempt = 1;
        loop {
            match self.post_once(body.clone()).await {
                Ok(()) => return Ok(()),
                Err((e, retry)) if !retry || attempt >= BACKOFF_STEPS => return Err(e),
                Err(_) => {}
            }
            tokio::time::sleep(delay).await;
            delay = delay.mul_f64(BACKOFF_FACTOR);
            attempt += 1;
        }
    }

    async fn post_once(&self, body: Bytes) -> Result<(), (anyhow::Error, bool)> {
        let mut req = self.client.post(&self.server).header("Content-Type", "application/json").body(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => {
                let code = r.status().as_u16();
                Err((anyhow!("audit webhook answered {code}"), code == 429 || code >= 500))
            }
            Err(e) => Err((anyhow!("audit webhook: {e}"), true)),
        }
    }
}

/// An `audit.k8s.io/v1` EventList around already serialised events.
pub fn event_list(events: &[Bytes]) -> Bytes {
    let mut b = Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + 80);
    b.extend_from_slice(br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":["#);
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        b.extend_from_slice(e);
    }
    b.extend_from_slice(b"]}");
    b.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_list_wraps_items() {
        let l = event_list(&[Bytes::from_static(br#"{"a":1}"#), Bytes::from_static(br#"{"b":2}"#)]);
        let v: serde_json::Value = serde_json::from_slice(&l).unwrap();
        assert_eq!(v["kind"], "EventList");
        assert_eq!(v["items"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn kubeconfig_picks_current_context() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wh.kubeconfig");
        std::fs::write(&p, "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: {server: 'https://127.0.0.1:1/a'}\n- name: b\n  cluster: {server: 'https://127.0.0.1:1/b', insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: b, user: u}\ncurrent-context: c\n").unwrap();
        let w = Webhook::from_kubeconfig(&p, Duration::from_millis(1)).unwrap();
        assert_eq!(w.server, "https://127.0.0.1:1/b");
        assert_eq!(w.token.as_deref(), Some("t"));
        std::fs::write(&p, "clusters: []\n").unwrap();
        assert!(Webhook::from_kubeconfig(&p, Duration::from_millis(1)).is_err());
    }
}
