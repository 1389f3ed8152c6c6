//! Raw TLS connections to frontdoor, for requests whose exact bytes matter: HTTP/1.1 written by
//! hand (smuggling, odd request lines, duplicate or malformed headers) and HTTP/2 frames built
//! by hand (header names and pseudo-headers that client libraries refuse to send).
#![allow(dead_code)]

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A TLS client config trusting `ca`, presenting `cert` (PEM chain, PEM key) if given, offering `alpn`.
pub fn tls_config(ca: &Path, cert: Option<(&str, &str)>, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut std::fs::read(ca).unwrap().as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut c = match cert {
        Some((chain, key)) => {
            let chain: Vec<CertificateDer<'static>> =
                rustls_pemfile::certs(&mut chain.as_bytes()).map(|c| c.unwrap()).collect();
            let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key.as_bytes()).unwrap().unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

pub type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects and completes the handshake; `Err` if the server refused it.
pub fn connect(port: u16, config: Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ClientConnection::new(config, ServerName::try_from("127.0.0.1").unwrap().to_owned())
        .map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    // TLS 1.3: the server's verdict on our client cert arrives after our Finished
    tls.conn.complete_io(&mut tls.sock)?;
    Ok(tls)
}

/// One HTTP/1.1 response read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// What came back for a raw exchange: every complete response in order (several when the bytes
/// held several requests), or none if the connection failed or closed first.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    pub responses: Vec<Response>,
    pub error: Option<String>,
}

impl Exchange {
    /// The first response's status; 0 for none.
    pub fn status(&self) -> u16 {
        self.responses.first().map_or(0, |r| r.status)
    }
}

/// Writes `bytes` on a fresh TLS connection and reads the responses: until the server closes,
/// or until no more bytes come for `quiet` after at least one complete response.
pub fn http1(port: u16, config: Arc<rustls::ClientConfig>, bytes: &[u8]) -> Exchange {
    let mut tls = match connect(port, config) {
        Ok(t) => t,
        Err(e) => return Exchange { responses: vec![], error: Some(format!("handshake: {e}")) },
    };
    if let Err(e) = tls.write_all(bytes).and_then(|_| tls.flush()) {
        return Exchange { responses: vec![], error: Some(format!("write: {e}")) };
    }
    let quiet = Duration::from_millis(300);
    let end = Instant::now() + Duration::from_secs(8);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let mut error = None;
    loop {
        let (responses, used) = parse_responses(&buf);
        let head_in = find(&buf[used..], b"\r\n\r\n").is_some();
        let wait = if responses.is_empty() && !head_in { Duration::from_secs(8) } else { quiet };
        let _ = tls.sock.set_read_timeout(Some(
            wait.min(end.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))),
        ));
        match tls.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
        if Instant::now() > end {
            break;
        }
    }
    let (mut responses, used) = parse_responses(&buf);
    // an incomplete last response (a watch streaming on, a body cut short): its head counts
    if let Some(end) = find(&buf[used..], b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&buf[used..used + end]).into_owned();
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = String::from_utf8_lossy(&buf[used + end + 4..]).into_owned();
        responses.push(Response { status, head, body });
    }
    Exchange { responses, error }
}

/// Reads one whole HTTP/1.1 response off `tls` (a connection kept for more requests); panics if
/// the connection closes or fails first, or after `limit`.
pub fn read_response(tls: &mut Tls, limit: Duration) -> Response {
    let end = Instant::now() + limit;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let (mut responses, used) = parse_responses(&buf);
        if !responses.is_empty() {
            assert_eq!(used, buf.len(), "bytes after the response: {}", String::from_utf8_lossy(&buf[used..]));
            return responses.remove(0);
        }
        let left = end.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no whole response within {limit:?}: {}", String::from_utf8_lossy(&buf));
        tls.sock.set_read_timeout(Some(left)).unwrap();
        match tls.read(&mut chunk) {
            Ok(0) => panic!("connection closed: {}", String::from_utf8_lossy(&buf)),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("read: {e}: {}", String::from_utf8_lossy(&buf)),
        }
    }
}

/// Parses consecutive complete HTTP/1.1 responses; returns them and the bytes consumed.
fn parse_responses(mut buf: &[u8]) -> (Vec<Response>, usize) {
    let mut out = Vec::new();
    let mut used = 0;
    while let Some(end) = find(buf, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let lower = head.to_ascii_lowercase();
        let rest = &buf[end + 4..];
        let header = |n: &str| {
            lower
                .lines()
                .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == n).map(|(_, v)| v.trim().to_string()))
        };
        let (body, len) = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            let mut pos = 0;
            loop {
                let Some(l) = find(&rest[pos..], b"\r\n") else { return (out, used) };
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&rest[pos..pos + l]).split(';').next().unwrap_or("").trim(),
                    16,
                )
                .unwrap_or(0);
                pos += l + 2;
                if size == 0 {
                    // no trailers from frontdoor
                    if rest.len() < pos + 2 {
                        return (out, used);
                    }
                    pos += 2;
                    break;
                }
                if rest.len() < pos + size + 2 {
                    return (out, used);
                }
                body.extend_from_slice(&rest[pos..pos + size]);
                pos += size + 2;
            }
            (body, pos)
        } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            if rest.len() < n {
                return (out, used);
            }
            (rest[..n].to_vec(), n)
        } else if status == 204 || status == 304 || (100..200).contains(&status) {
            (Vec::new(), 0)
        } else {
            // delimited by close
            (rest.to_vec(), rest.len())
        };
        out.push(Response { status, head, body: String::from_utf8_lossy(&body).into_owned() });
        used += end + 4 + len;
        buf = &buf[end + 4 + len..];
    }
    (out, used)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// How an HTTP/2 stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum H2 {
    /// Response headers with this `:status`.
    Status(u16),
    /// RST_STREAM with this error code.
    Reset(u32),
    /// GOAWAY with this error code.
    GoAway(u32),
    /// The handshake failed, the connection closed or nothing came in time.
    Failed(String),
}

/// HPACK, literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2).
fn hpack_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    hpack_string(out, name);
    hpack_string(out, value);
}

fn hpack_string(out: &mut Vec<u8>, s: &[u8]) {
    // 7-bit prefix integer, H = 0
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(s);
}

/// The next whole frame in `buf`, taken out of it: (type, flags, stream, payload).
fn next_frame(buf: &mut Vec<u8>) -> Option<(u8, u8, u32, Vec<u8>)> {
    if buf.len() < 9 {
        return None;
    }
    let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
    if buf.len() < 9 + len {
        return None;
    }
    let (ty, flags) = (buf[3], buf[4]);
    let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
    let payload = buf[9..9 + len].to_vec();
    buf.drain(..9 + len);
    Some((ty, flags, stream, payload))
}

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(9 + payload.len());
    let len = payload.len() as u32;
    f.extend_from_slice(&len.to_be_bytes()[1..]);
    f.push(ty);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Sends one HTTP/2 request on stream 1, its header block exactly `headers` in order (pseudo
/// headers included, names as given), then `body` as one DATA frame; reports how stream 1 ended.
pub fn h2(port: u16, config: Arc<rustls::ClientConfig>, headers: &[(&str, &str)], body: Option<&[u8]>) -> H2 {
    let mut tls = match connect(port, config) {
        Ok(t) => t,
        Err(e) => return H2::Failed(format!("handshake: {e}")),
    };
    if tls.conn.alpn_protocol() != Some(b"h2") {
        return H2::Failed("h2 not negotiated".into());
    }
    let mut block = Vec::new();
    for (k, v) in headers {
        hpack_literal(&mut block, k.as_bytes(), v.as_bytes());
    }
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[]));
    // END_HEADERS, and END_STREAM when there is no body
    out.extend(frame(1, 0x4 | if body.is_none() { 0x1 } else { 0 }, 1, &block));
    if let Some(b) = body {
        out.extend(frame(0, 0x1, 1, b));
    }
    if let Err(e) = tls.write_all(&out).and_then(|_| tls.flush()) {
        return H2::Failed(format!("write: {e}"));
    }
    let _ = tls.sock.set_read_timeout(Some(Duration::from_secs(8)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        while let Some((ty, flags, stream, payload)) = next_frame(&mut buf) {
            match ty {
                4 if flags & 1 == 0 => {
                    let _ = tls.write_all(&frame(4, 1, 0, &[]));
                }
                1 if stream == 1 => {
                    let mut p = &payload[..];
                    if flags & 0x8 != 0 {
                        let pad = p[0] as usize;
                        p = &p[1..p.len() - pad];
                    }
                    if flags & 0x20 != 0 {
                        p = &p[5..];
                    }
                    return match status_of(p) {
                        Some(s) => H2::Status(s),
                        None => H2::Failed(format!("undecodable response headers {p:02x?}")),
                    };
                }
                3 if stream == 1 => {
                    return H2::Reset(u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]));
                }
                7 => return H2::GoAway(u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]])),
                _ => {}
            }
        }
        match tls.read(&mut chunk) {
            Ok(0) => return H2::Failed("closed".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return H2::Failed(e.to_string()),
        }
    }
}

/// The `:status` of a response header block: the first field (after any table size update).
fn status_of(mut p: &[u8]) -> Option<u16> {
    while let Some(&b) = p.first() {
        if b & 0xe0 == 0x20 {
            // dynamic table size update (5-bit prefix; frontdoor's sizes fit or use one more byte)
            p = if b & 0x1f == 0x1f { &p[2..] } else { &p[1..] };
            continue;
        }
        break;
    }
    let b = *p.first()?;
    let static_status = |i: u8| match i {
        8 => Some(200),
        9 => Some(204),
        10 => Some(206),
        11 => Some(304),
        12 => Some(400),
        13 => Some(404),
        14 => Some(500),
        _ => None,
    };
    if b & 0x80 != 0 {
        return static_status(b & 0x7f);
    }
    let idx = if b & 0xc0 == 0x40 { b & 0x3f } else { b & 0x0f };
    if !(8..=14).contains(&idx) {
        return None;
    }
    let s = p.get(1)?;
    let (huff, len) = (s & 0x80 != 0, (s & 0x7f) as usize);
    let v = p.get(2..2 + len)?;
    let text = if huff { huffman_digits(v)? } else { String::from_utf8_lossy(v).into_owned() };
    text.parse().ok()
}

/// Decodes a Huffman string of ASCII digits (RFC 7541 Appendix B: 0-2 are 5 bits, 3-9 six).
fn huffman_digits(v: &[u8]) -> Option<String> {
    let bits: Vec<u8> = v.iter().flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1)).collect();
    let mut out = String::new();
    let mut i = 0;
    let take = |i: usize, n: usize| bits[i..i + n].iter().fold(0u8, |a, b| (a << 1) | b);
    while i + 5 <= bits.len() {
        let five = take(i, 5);
        if five <= 2 {
            out.push((b'0' + five) as char);
            i += 5;
        } else if i + 6 <= bits.len() && (0x19..=0x1f).contains(&take(i, 6)) {
            out.push((b'0' + 3 + take(i, 6) - 0x19) as char);
            i += 6;
        } else {
            break; // padding (all ones)
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Sends one HTTP/2 request on stream 1 whose body comes in two parts: `first` with the
/// headers, `rest` only once the response has ended. Returns the response's `:status` and the
/// RST_STREAM code stream 1 got, if any, by a second after the rest was sent: a server that
/// answers early and resets the stream under a client still sending had curl drop the reply.
pub fn h2_early_reply(
    port: u16,
    config: Arc<rustls::ClientConfig>,
    headers: &[(&str, &str)],
    first: &[u8],
    rest: &[u8],
) -> (Option<u16>, Option<u32>) {
    let mut tls = connect(port, config).expect("handshake");
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    let mut block = Vec::new();
    for (k, v) in headers {
        hpack_literal(&mut block, k.as_bytes(), v.as_bytes());
    }
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[]));
    out.extend(frame(1, 0x4, 1, &block));
    out.extend(frame(0, 0, 1, first));
    tls.write_all(&out).and_then(|_| tls.flush()).expect("write");
    let _ = tls.sock.set_read_timeout(Some(Duration::from_millis(200)));
    let (mut status, mut reset, mut ended, mut rest_sent) = (None, None, false, None::<Instant>);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    while Instant::now() < deadline && reset.is_none() && rest_sent.is_none_or(|t| t.elapsed() < Duration::from_secs(1))
    {
        while let Some((ty, flags, stream, payload)) = next_frame(&mut buf) {
            match ty {
                4 if flags & 1 == 0 => {
                    let _ = tls.write_all(&frame(4, 1, 0, &[]));
                }
                1 if stream == 1 => {
                    status = status_of(&payload);
                    ended |= flags & 0x1 != 0;
                }
                0 if stream == 1 => ended |= flags & 0x1 != 0,
                3 if stream == 1 => reset = Some(u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])),
                _ => {}
            }
        }
        if ended && rest_sent.is_none() {
            let _ = tls.write_all(&frame(0, 0x1, 1, rest)).and_then(|_| tls.flush());
            rest_sent = Some(Instant::now());
        }
        match tls.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    (status, reset)
}
