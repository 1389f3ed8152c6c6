//! The one outbound HTTP client (reqwest over rustls) for frontdoor's rare calls to other
//! services: webhooks (TokenReview, SubjectAccessReview, audit EventList) and OIDC
//! discovery/JWKS. Bounded: a whole-call timeout and a response body limit.

use bytes::Bytes;
use std::time::Duration;

/// The largest response body accepted (a review, a JWKS: a few kB).
const MAX_RESPONSE: usize = 4 << 20;
/// The system trust store (Debian layout), trusted besides the built-in roots.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// TLS settings of a client, as a kubeconfig or an issuer names them.
#[derive(Default)]
pub struct Tls<'a> {
    /// Trusted roots (PEM); the built-in roots when `None`.
    pub ca_pem: Option<&'a [u8]>,
    /// A client certificate and key (PEM).
    pub identity: Option<(&'a [u8], &'a [u8])>,
    /// Skip server verification (kubeconfig's insecure-skip-tls-verify).
    pub insecure: bool,
}

#[derive(Clone)]
pub struct Client {
    inner: reqwest::Client,
    timeout: Duration,
}

/// A response: status code and whole body.
#[derive(Debug)]
pub struct Response {
    pub code: u16,
    pub body: Bytes,
}

/// Why a call got no response.
#[derive(Debug)]
pub enum Error {
    /// The whole call (connect, send, read) took longer than the client's timeout.
    Timeout(Duration),
    /// Connecting, TLS, or a broken/oversized response.
    Transport(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Timeout(d) => write!(f, "timed out after {d:?}"),
            Error::Transport(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for Error {}

impl Client {
    pub fn new(tls: Tls<'_>, timeout: Duration) -> anyhow::Result<Client> {
        let mut b = reqwest::Client::builder().use_rustls_tls().connect_timeout(timeout);
        if let Some(ca) = tls.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(ca)
                .map_err(|e| anyhow::anyhow!("invalid certificate authority PEM: {e}"))?;
            if certs.is_empty() {
                anyhow::bail!("no certificate authority found");
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
            // a named CA replaces the built-in roots, as in kube's rest.Config
            b = b.tls_built_in_root_certs(false);
        } else if let Ok(pem) = std::fs::read(SYSTEM_ROOTS) {
            // the system's trust store too (a site CA installed there), as Go's TLS uses it
            for c in reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_default() {
                b = b.add_root_certificate(c);
            }
        }
        if tls.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        if let Some((cert, key)) = tls.identity {
            let mut pem = cert.to_vec();
            pem.push(b'\n');
            pem.extend_from_slice(key);
            b = b.identity(
                reqwest::Identity::from_pem(&pem).map_err(|e| anyhow::anyhow!("client certificate and key: {e}"))?,
            );
        }
        Ok(Client { inner: b.build()?, timeout })
    }

    /// POSTs a JSON body (with a bearer token and extra headers when given).
    pub async fn post_json(
        &self,
        url: &str,
        bearer: Option<&str>,
        headers: &[(String, String)],
        body: impl Into<Bytes>,
    ) -> Result<Response, Error> {
        let mut req = self
            .inner
            .post(url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(body.into());
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        self.call(req).await
    }

    /// GETs a JSON document.
    pub async fn get_json(&self, url: &str) -> Result<Response, Error> {
        self.call(self.inner.get(url).header("Accept", "application/json")).await
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Response, Error> {
        let whole = async {
            let mut resp = req.send().await.map_err(transport)?;
            let code = resp.status().as_u16();
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(transport)? {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_RESPONSE {
                    return Err(Error::Transport(format!("response larger than {MAX_RESPONSE} bytes")));
                }
            }
            Ok(Response { code, body: body.into() })
        };
        tokio::time::timeout(self.timeout, whole).await.map_err(|_| Error::Timeout(self.timeout))?
    }
}

/// reqwest's error with its causes ("error sending request: connection refused"); callers
/// name the URL.
fn transport(e: reqwest::Error) -> Error {
    let e = e.without_url();
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    Error::Transport(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_ca_without_certificates() {
        let t = Duration::from_secs(1);
        assert!(Client::new(Tls { ca_pem: Some(b"not pem"), ..Default::default() }, t).is_err());
        assert!(Client::new(Tls::default(), t).is_ok());
    }

    #[tokio::test]
    async fn unreachable_is_a_transport_error_and_a_stall_times_out() {
        let c = Client::new(Tls::default(), Duration::from_millis(300)).unwrap();
        let e = c.post_json("http://127.0.0.1:1/", None, &[], "{}").await.unwrap_err();
        assert!(matches!(e, Error::Transport(_)), "{e}");
        // a listener that accepts and never answers
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let _hold = tokio::spawn(async move {
            let _conns: Vec<_> = vec![l.accept().await];
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let e = c.get_json(&url).await.unwrap_err();
        assert!(matches!(e, Error::Timeout(_)), "{e}");
        assert!(e.to_string().contains("timed out"));
    }
}
