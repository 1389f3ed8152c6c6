//! The webhook backend's client: a kubeconfig names the receiver (server, CA, client
//! credentials); events are POSTed as an `audit.k8s.io/v1` EventList, retried with
//! exponential backoff on connection errors, 429 and 5xx (kube's webhook.WithExponentialBackoff).

use crate::kubeconfig::{Endpoint, Kubeconfig};
use anyhow::{anyhow, Context};
use bytes::Bytes;
use std::path::Path;
use std::time::Duration;

/// kube's per-request timeout for the audit webhook.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_FACTOR: f64 = 1.5;
const BACKOFF_STEPS: u32 = 5;

pub struct Webhook {
    endpoint: Endpoint,
    initial_backoff: Duration,
}

impl Webhook {
    pub fn from_kubeconfig(path: &Path, initial_backoff: Duration) -> anyhow::Result<Webhook> {
        let endpoint =
            Kubeconfig::load(path).and_then(|kc| kc.endpoint(REQUEST_TIMEOUT)).context("audit webhook kubeconfig")?;
        Ok(Webhook { endpoint, initial_backoff })
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
        match self.endpoint.post_json(body).await {
            Ok(r) if (200..300).contains(&r.code) => Ok(()),
            Ok(r) => Err((anyhow!("audit webhook answered {}", r.code), r.code == 429 || r.code >= 500)),
            Err(e) => Err((anyhow!("audit webhook {}: {e}", self.endpoint.url), true)),
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
        assert_eq!(w.endpoint.url, "https://127.0.0.1:1/b");
        assert_eq!(w.endpoint.token.as_deref(), Some("t"));
        std::fs::write(&p, "clusters: []\n").unwrap();
        assert!(Webhook::from_kubeconfig(&p, Duration::from_millis(1)).is_err());
    }
}
