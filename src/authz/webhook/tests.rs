//! The webhook authorizer against a real local HTTPS server (rcgen CA, rustls).

use super::*;
use crate::authn::UserInfo;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the fake webhook answers: by user name "allow-*", "deny-*", "hang-*", "bad-*", else no opinion.
async fn serve_webhook(dir: &Path) -> (PathBuf, Arc<AtomicUsize>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();

    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let h = h.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let Ok(n) = tls.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(i) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= i + 4 + len {
                            break buf[i + 4..i + 4 + len].to_vec();
                        }
                    }
                };
                h.fetch_add(1, Ordering::SeqCst);
                let review: Value = serde_json::from_slice(&body).unwrap();
                let user = review["spec"]["user"].as_str().unwrap_or_default().to_string();
                if user.starts_with("hang-") {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
                let (code, out) = if user.starts_with("bad-") {
                    ("500 Internal Server Error", "oops".to_string())
                } else {
                    let status = if user.starts_with("allow-") {
                        json!({"allowed": true, "reason": "webhook says yes"})
                    } else if user.starts_with("deny-") {
                        json!({"allowed": false, "denied": true, "reason": "webhook says no"})
                    } else {
                        json!({"allowed": false})
                    };
                    (
                        "200 OK",
                        json!({"apiVersion": review["apiVersion"], "kind": "SubjectAccessReview", "status": status})
                            .to_string(),
                    )
                };
                let resp = format!("HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{out}", out.len());
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let ca_file = dir.join("webhook-ca.crt");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let kc = dir.join("webhook.kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: authz\n  cluster:\n    server: https://127.0.0.1:{port}/authorize\n    certificate-authority: webhook-ca.crt\nusers:\n- name: apiserver\n  user:\n    token: not-a-secret\ncontexts:\n- name: webhook\n  context: {{cluster: authz, user: apiserver}}\ncurrent-context: webhook\n"
        ),
    )
    .unwrap();
    (kc, hits)
}

fn opts(kc: PathBuf, failure: Decision) -> Options {
    Options {
        name: "test".into(),
        kubeconfig: kc,
        version: "v1".into(),
        authorized_ttl: Some(Duration::from_secs(300)),
        unauthorized_ttl: Some(Duration::from_secs(30)),
        timeout: Duration::from_millis(500),
        failure_policy: failure,
    }
}

fn attrs(user: &str) -> Attributes<'static> {
    Attributes {
        user: std::borrow::Cow::Owned(UserInfo::new(user, vec!["g".into()])),
        verb: "get".into(),
        namespace: "ns".into(),
        resource: "pods".into(),
        resource_request: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn decisions_caches_and_failure_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (kc, hits) = serve_webhook(dir.path()).await;
    let w = WebhookAuthorizer::new(opts(kc.clone(), Decision::NoOpinion)).unwrap();

    assert_eq!(w.authorize(&attrs("allow-a")).await, (Decision::Allow, "webhook says yes".into()));
    assert_eq!(w.authorize(&attrs("deny-a")).await, (Decision::Deny, "webhook says no".into()));
    assert_eq!(w.authorize(&attrs("someone")).await.0, Decision::NoOpinion);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // answered from the caches
    assert_eq!(w.authorize(&attrs("allow-a")).await.0, Decision::Allow);
    assert_eq!(w.authorize(&attrs("deny-a")).await.0, Decision::Deny);
    assert_eq!(hits.load(Ordering::SeqCst), 3, "cached answers do not call the webhook");

    // errors and timeouts take the failure policy, within the timeout
    let start = Instant::now();
    let (d, reason, error) = w.authorize_or_error(&attrs("hang-a")).await;
    assert_eq!(d, Decision::NoOpinion);
    assert_eq!(&*reason, "", "kube's webhook gives no reason with its error");
    let error = error.expect("the failure is reported beside the decision");
    assert!(error.contains("timed out"), "{error}");
    assert!(start.elapsed() < Duration::from_secs(3), "bounded by the timeout");
    assert_eq!(w.authorize(&attrs("bad-a")).await.0, Decision::NoOpinion);

    let deny = WebhookAuthorizer::new(opts(kc, Decision::Deny)).unwrap();
    let (d, _, error) = deny.authorize_or_error(&attrs("bad-b")).await;
    assert_eq!(d, Decision::Deny);
    assert!(error.is_some());
    assert_eq!(deny.authorize_or_error(&attrs("allow-b")).await.2, None);
    assert_eq!(deny.authorize(&attrs("allow-b")).await.0, Decision::Allow);
}

#[tokio::test]
async fn unreachable_webhook_is_a_failure_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let kc = dir.path().join("kc");
    std::fs::write(&kc, format!("clusters:\n- name: c\n  cluster: {{server: \"https://127.0.0.1:{port}/\", insecure-skip-tls-verify: true}}\n")).unwrap();
    let w = WebhookAuthorizer::new(opts(kc, Decision::Deny)).unwrap();
    let (d, _, error) = w.authorize_or_error(&attrs("x")).await;
    assert_eq!(d, Decision::Deny);
    let error = error.unwrap_or_default();
    assert!(error.contains("\"test\" failed"), "{error}");
}

#[test]
fn bad_kubeconfig_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kc");
    std::fs::write(&kc, "clusters: []\n").unwrap();
    assert!(WebhookAuthorizer::new(opts(kc, Decision::Deny)).is_err());
    assert!(parse_failure_policy("Allow").is_err());
}
