//! Request received: the audit ID (a client-sent `Audit-ID` is kept as is, untruncated, as
//! kube's WithAuditInit does), the received time,
//! the source IPs, the user agent. kube's WithAuditInit + WithRequestReceivedTimestamp.

use crate::context::RequestContext;
use http::header::{HeaderName, USER_AGENT};
use pingora::http::RequestHeader;
use smallvec::SmallVec;
use std::net::IpAddr;
use std::time::{Instant, SystemTime};

// prebuilt names: a lookup by `&str` parses the name on every request
static AUDIT_ID: HeaderName = HeaderName::from_static("audit-id");
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// `client` is the connection's peer address, kept in the context (`client_ip`).
pub fn run(req: &RequestHeader, client: Option<IpAddr>, ctx: &mut RequestContext) {
    ctx.client_ip = client;
    ctx.received = Some(Instant::now());
    ctx.received_at = Some(SystemTime::now());
    let sent = req.headers.get(&AUDIT_ID).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    // a fresh ID is written on the stack, as `Uuid`'s `Display` writes it
    let mut fresh = uuid::Uuid::encode_buffer();
    let audit_id = match sent {
        Some(id) => id,
        None => uuid::Uuid::new_v4().hyphenated().encode_lower(&mut fresh),
    };
    let user_agent = req.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let request_uri = req.uri.path_and_query().map_or_else(|| req.uri.path(), |p| p.as_str());
    ctx.incoming = Incoming::new(audit_id, user_agent, request_uri, &header_ips(req), client);
}

/// What a request came in with, for audit, the logs and tracing: its audit ID, user agent,
/// request URI and source IPs.
///
/// Every request's context and every idle watch holds one, so its text is one allocation,
/// exactly sized: the four in that order, the source IPs joined by commas (no address has
/// one), each read through an accessor. (As three `String`s and a `Vec<String>` it was 96
/// bytes and four allocations or more.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incoming {
    text: Box<str>,
    /// Where the audit ID, the user agent and the request URI end; the source IPs are the rest.
    ends: [u32; 3],
}

impl Incoming {
    /// `source_ips` are the headers' (as `header_ips` lists them); `peer`, the connection's, is written
    /// straight into the text after them, unless one of them names it already (kube's
    /// `utilnet.SourceIPs` compares the texts).
    pub fn new(audit_id: &str, user_agent: &str, request_uri: &str, source_ips: &[&str], peer: Option<IpAddr>) -> Self {
        let ips_len = source_ips.iter().map(|ip| ip.len() + 1).sum::<usize>() + peer.map_or(0, |ip| ip_len(ip) + 1);
        let mut text =
            String::with_capacity(audit_id.len() + user_agent.len() + request_uri.len() + ips_len.saturating_sub(1));
        let mut ends = [0; 3];
        for (end, piece) in ends.iter_mut().zip([audit_id, user_agent, request_uri]) {
            text.push_str(piece);
            // a request's head is far below 4 GiB (pingora bounds it to a few hundred KiB)
            debug_assert!(text.len() <= u32::MAX as usize, "a request head of 4 GiB");
            *end = text.len() as u32;
        }
        let ips_start = text.len();
        for ip in source_ips {
            debug_assert!(!ip.is_empty() && !ip.contains(','), "not an address: {ip:?}");
            if text.len() > ips_start {
                text.push(',');
            }
            text.push_str(ip);
        }
        if let Some(ip) = peer {
            let before = text.len();
            if before > ips_start {
                text.push(',');
            }
            let start = text.len();
            push_ip(&mut text, ip);
            // listed already: taken back (the text, one address too long, is then shrunk to
            // fit; only a request whose X-Forwarded-For or X-Real-Ip names its peer)
            if source_ips.contains(&&text[start..]) {
                text.truncate(before);
            }
        }
        Incoming { text: text.into_boxed_str(), ends }
    }

    /// The request's audit ID: the client's `Audit-ID`, or a fresh UUID.
    pub fn audit_id(&self) -> &str {
        &self.text[..self.ends[0] as usize]
    }

    /// The `User-Agent` header, empty when there is none.
    pub fn user_agent(&self) -> &str {
        &self.text[self.ends[0] as usize..self.ends[1] as usize]
    }

    /// The request target as sent: path and query, still percent-encoded.
    pub fn request_uri(&self) -> &str {
        &self.text[self.ends[1] as usize..self.ends[2] as usize]
    }

    pub fn source_ips(&self) -> SourceIps<'_> {
        SourceIps(&self.text[self.ends[2] as usize..])
    }
}

/// A request's source IPs in kube's order (`utilnet.SourceIPs`): X-Forwarded-For's, then
/// X-Real-Ip, then the connection's peer; so the first is the client and the last the peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceIps<'a>(
    /// The addresses joined by commas.
    &'a str,
);

impl<'a> SourceIps<'a> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &'a str> + Clone {
        let ips = if self.0.is_empty() { None } else { Some(self.0.split(',')) };
        ips.into_iter().flatten()
    }

    pub fn first(&self) -> Option<&'a str> {
        self.iter().next()
    }

    pub fn last(&self) -> Option<&'a str> {
        self.iter().next_back()
    }
}

/// A JSON array of the addresses, as audit events write `sourceIPs`.
impl serde::Serialize for SourceIps<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// The length of [`push_ip`]'s text for `ip`, counted without writing it.
fn ip_len(ip: IpAddr) -> usize {
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
        fn write_char(&mut self, c: char) -> std::fmt::Result {
            self.0 += c.len_utf8();
            Ok(())
        }
    }
    let mut count = Count(0);
    push_ip(&mut count, ip);
    count.0
}

/// Appends `ip` as `IpAddr`'s `Display` writes it. IPv4, the usual case, is written by hand:
/// `Display` formats each octet through `fmt` (~1,300 instructions a request, where this
/// takes ~100).
pub fn push_ip(s: &mut impl std::fmt::Write, ip: IpAddr) {
    let IpAddr::V4(v4) = ip else {
        let _ = s.write_fmt(format_args!("{ip}"));
        return;
    };
    for (i, o) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            let _ = s.write_char('.');
        }
        if o >= 100 {
            let _ = s.write_char(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            let _ = s.write_char(char::from(b'0' + o / 10 % 10));
        }
        let _ = s.write_char(char::from(b'0' + o % 10));
    }
}

/// kube's `utilnet.SourceIPs` up to the peer: X-Forwarded-For entries, then X-Real-Ip,
/// without duplicates. Borrowed from the headers; a request has a handful at most.
fn header_ips(req: &RequestHeader) -> SmallVec<[&str; 4]> {
    let mut ips = SmallVec::new();
    if let Some(xff) = req.headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        for part in xff.split(',') {
            let p = part.trim();
            if p.parse::<IpAddr>().is_ok() && !ips.contains(&p) {
                ips.push(p);
            }
        }
    }
    if let Some(real) = req.headers.get(&X_REAL_IP).and_then(|v| v.to_str().ok()).map(str::trim) {
        if real.parse::<IpAddr>().is_ok() && !ips.contains(&real) {
            ips.push(real);
        }
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_ip_is_display() {
        use std::net::Ipv4Addr;
        let check = |ip: IpAddr| {
            let mut text = String::new();
            push_ip(&mut text, ip);
            assert_eq!(text, ip.to_string());
            assert_eq!(ip_len(ip), text.len(), "{ip}");
        };
        for o in 0..=255u8 {
            for ip in [[o, 0, 0, 0], [10, o, 0, 1], [127, 0, o, 1], [192, 168, 1, o], [o, o, o, o]] {
                check(IpAddr::V4(Ipv4Addr::from(ip)));
            }
        }
        for ip in
            ["::1", "fe80::1", "::ffff:10.0.0.1", "2001:db8::8a2e:370:7334", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]
        {
            check(ip.parse().unwrap());
        }
    }

    #[test]
    fn incoming_is_one_text_read_back_whole() {
        let peer = Some([127, 0, 0, 1].into());
        let incoming = Incoming::new("id-1", "", "/api/v1/pods?watch=1", &["10.0.0.1", "2001:db8::1"], peer);
        assert_eq!(incoming.audit_id(), "id-1");
        assert_eq!(incoming.user_agent(), "", "no user agent");
        assert_eq!(incoming.request_uri(), "/api/v1/pods?watch=1");
        let ips: Vec<&str> = incoming.source_ips().iter().collect();
        assert_eq!(ips, ["10.0.0.1", "2001:db8::1", "127.0.0.1"]);
        assert_eq!(incoming.source_ips().first(), Some("10.0.0.1"), "the client");
        assert_eq!(incoming.source_ips().last(), Some("127.0.0.1"), "the peer");
        assert_eq!(serde_json::to_string(&incoming.source_ips()).unwrap(), r#"["10.0.0.1","2001:db8::1","127.0.0.1"]"#);
        // all four within one allocation, exactly sized
        let text = incoming.text.as_bytes().as_ptr_range();
        for part in [incoming.audit_id(), incoming.user_agent(), incoming.request_uri()].into_iter().chain(ips) {
            let at = part.as_bytes().as_ptr_range();
            assert!(text.start <= at.start && at.end <= text.end, "{part:?} outside the text");
        }
        assert_eq!(incoming.text.len(), "id-1/api/v1/pods?watch=110.0.0.1,2001:db8::1,127.0.0.1".len());
        assert!(std::mem::size_of::<Incoming>() <= 32);

        let peer_only = Incoming::new("x", "kubectl/v1.32", "/", &[], Some("::1".parse().unwrap()));
        assert_eq!(
            (peer_only.audit_id(), peer_only.user_agent(), peer_only.request_uri()),
            ("x", "kubectl/v1.32", "/")
        );
        assert_eq!(peer_only.source_ips().iter().collect::<Vec<_>>(), ["::1"]);
        assert_eq!((peer_only.source_ips().first(), peer_only.source_ips().last()), (Some("::1"), Some("::1")));

        let named = Incoming::new("x", "", "/", &["10.0.0.2", "10.0.0.1"], Some([10, 0, 0, 2].into()));
        assert_eq!(named.source_ips().iter().collect::<Vec<_>>(), ["10.0.0.2", "10.0.0.1"], "the peer once");

        let none = Incoming::default();
        assert!(none.source_ips().is_empty());
        assert_eq!(
            (none.source_ips().iter().count(), none.source_ips().first(), none.source_ips().last()),
            (0, None, None)
        );
        assert_eq!(serde_json::to_string(&none.source_ips()).unwrap(), "[]");
    }

    #[test]
    fn keeps_client_audit_id_and_orders_source_ips() {
        let ips = |ctx: &RequestContext| ctx.incoming.source_ips().iter().map(str::to_string).collect::<Vec<_>>();
        let mut req = RequestHeader::build("GET", b"/api?x=1", None).unwrap();
        req.insert_header("Audit-ID", "abc").unwrap();
        req.insert_header("X-Forwarded-For", "10.0.0.1, 10.0.0.2").unwrap();
        req.insert_header("User-Agent", "kubectl/v1.32").unwrap();
        let mut ctx = RequestContext::default();
        run(&req, Some([127, 0, 0, 1].into()), &mut ctx);
        assert_eq!(ctx.incoming.audit_id(), "abc");
        assert_eq!(ips(&ctx), vec!["10.0.0.1", "10.0.0.2", "127.0.0.1"]);
        assert_eq!(ctx.incoming.request_uri(), "/api?x=1");
        assert_eq!(ctx.incoming.user_agent(), "kubectl/v1.32");

        // duplicates and what is no address are left out; the peer already listed is not repeated
        let mut req = RequestHeader::build("GET", b"/api", None).unwrap();
        req.insert_header("X-Forwarded-For", " 10.0.0.1 ,nope,, 10.0.0.1,::1").unwrap();
        req.insert_header("X-Real-Ip", " 10.0.0.9 ").unwrap();
        let mut ctx = RequestContext::default();
        run(&req, Some([10, 0, 0, 9].into()), &mut ctx);
        assert_eq!(ips(&ctx), vec!["10.0.0.1", "::1", "10.0.0.9"]);
        assert_eq!(ctx.incoming.user_agent(), "");

        let long = "a".repeat(300);
        let mut req = RequestHeader::build("GET", b"/api", None).unwrap();
        req.insert_header("Audit-ID", long.as_str()).unwrap();
        let mut ctx = RequestContext::default();
        run(&req, None, &mut ctx);
        assert_eq!(ctx.incoming.audit_id(), long, "kept untruncated");
        assert!(ctx.incoming.source_ips().is_empty());

        let req = RequestHeader::build("GET", b"/api", None).unwrap();
        let mut ctx = RequestContext::default();
        run(&req, None, &mut ctx);
        let id = ctx.incoming.audit_id();
        assert_eq!(id.len(), 36, "a fresh UUID");
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().hyphenated().to_string(), id, "as its Display writes it");
    }
}
