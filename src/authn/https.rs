//! A small HTTP/1.1 client over rustls for the authenticators' outbound calls (OIDC
//! discovery and JWKS, TokenReview webhooks): one request per connection, bounded body,
//! timeouts. Kept minimal on purpose: these calls are rare and cached.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest response body accepted (a JWKS or a TokenReview is a few kB).
const MAX_BODY: usize = 4 << 20;

/// TLS settings for an outbound call.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
}

impl TlsClient {
    /// `ca_pem`: trusted roots (the system bundle when `None`); `identity`: a client cert and
    /// key; `insecure`: skip server verification (kubeconfig's insecure-skip-tls-verify).
    pub fn new(ca_pem: Option<&[u8]>, identity: Option<(&[u8], &[u8])>, insecure: bool) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let builder = if insecure {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            let system;
            let pem = match ca_pem {
                Some(p) => p,
                None => {
                    system = std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
                    &system
                }
            };
            for c in rustls_pemfile::certs(&mut &pem[..]) {
                let c = c.map_err(|e| anyhow::anyhow!("invalid certificate authority PEM: {e}"))?;
                roots.add(c).map_err(|e| anyhow::anyhow!("invalid certificate authority: {e}"))?;
            }
            if roots.is_empty() {
                anyhow::bail!("no certificate authority found");
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match identity {
            Some((cert, key)) => {
                let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert[..])
                    .collect::<Result<_, _>>()
                    .map_err(|e| anyhow::anyhow!("client certificate: {e}"))?;
                let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key[..])
                    .map_err(|e| anyhow::anyhow!("client key: {e}"))?
                    .ok_or_else(|| anyhow::anyhow!("client key: no private key found"))?;
                builder.with_client_auth_cert(certs, key).map_err(|e| anyhow::anyhow!("client certificate: {e}"))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsClient { config: Arc::new(config) })
    }
}

/// A response: status code and body.
#[derive(Debug)]
pub struct Response {
    pub code: u16,
    pub body: Vec<u8>,
}

/// Sends one request to `url` (http or https) and reads the whole response.
pub async fn request(
    url: &url::Url,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    tls: Option<&TlsClient>,
    timeout: Duration,
) -> anyhow::Result<Response> {
    tokio::time::timeout(timeout, request_inner(url, method, headers, body, tls))
        .await
        .map_err(|_| anyhow::anyhow!("{method} {url}: timed out after {timeout:?}"))?
}

async fn request_inner(
    url: &url::Url,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    tls: Option<&TlsClient>,
) -> anyhow::Result<Response> {
    let host = url.host_str().ok_or_else(|| anyhow::anyhow!("{url}: no host"))?.to_string();
    let port = url.port_or_known_default().ok_or_else(|| anyhow::anyhow!("{url}: no port"))?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let connect_host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let tcp = tokio::net::TcpStream::connect((connect_host.as_str(), port))
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        url.host_str().unwrap_or_default(),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    match url.scheme() {
        "https" => {
            let tls = match tls {
                Some(t) => t.clone(),
                None => TlsClient::new(None, None, false)?,
            };
            let name = ServerName::try_from(connect_host).map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
            let stream = tokio_rustls::TlsConnector::from(tls.config)
                .connect(name, tcp)
                .await
                .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
            exchange(stream, head.as_bytes(), body).await
        }
        "http" => exchange(tcp, head.as_bytes(), body).await,
        s => anyhow::bail!("{url}: unsupported scheme {s}"),
    }
    .map_err(|e| anyhow::anyhow!("{url}: {e}"))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, head: &[u8], body: &[u8]) -> anyhow::Result<Response> {
    s.write_all(head).await?;
    s.write_all(body).await?;
    s.flush().await?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            // servers that close without close_notify: take what arrived
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        };
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > MAX_BODY {
            anyhow::bail!("response larger than {MAX_BODY} bytes");
        }
        if complete(&raw) {
            break;
        }
    }
    parse_response(&raw)
}

/// Whether a buffered response is complete by its Content-Length (so a server that keeps
/// the connection open does not stall us).
fn complete(raw: &[u8]) -> bool {
    let Some(end) = find(raw, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()))
        .is_some_and(|len| raw.len() >= end + 4 + len)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a whole HTTP/1.1 response (Content-Length, chunked, or read-to-close).
pub fn parse_response(raw: &[u8]) -> anyhow::Result<Response> {
    let end = find(raw, b"\r\n\r\n").ok_or_else(|| anyhow::anyhow!("malformed HTTP response"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| anyhow::anyhow!("malformed HTTP response head"))?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code: u16 = status
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("malformed status line"))?;
    let mut chunked = false;
    let mut length = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if k == "content-length" {
            length = v.parse::<usize>().ok();
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n).ok_or_else(|| anyhow::anyhow!("truncated HTTP response body"))?.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { code, body })
}

fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or_else(|| anyhow::anyhow!("truncated chunked body"))?;
        let size_str = std::str::from_utf8(&data[..line_end])?.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16).map_err(|_| anyhow::anyhow!("bad chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or_else(|| anyhow::anyhow!("truncated chunk"))?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or_else(|| anyhow::anyhow!("truncated chunk"))?;
    }
}

/// Accepts any server certificate (insecure-skip-tls-verify).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi").unwrap();
        assert_eq!((r.code, r.body.as_slice()), (200, &b"hi"[..]));
        let r =
            parse_response(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!((r.code, r.body.as_slice()), (201, &b"abc"[..]));
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhi").is_err());
    }
}
