//! Request received: the audit ID (a client-sent `Audit-ID` is kept as is, untruncated, as
//! kube's WithAuditInit does), the received time,
//! the source IPs, the user agent. kube's WithAuditInit + WithRequestReceivedTimestamp.

use crate::context::RequestContext;
use http::header::{HeaderName, USER_AGENT};
use pingora::http::RequestHeader;
use std::time::{Instant, SystemTime};

// prebuilt names: a lookup by `&str` parses the name on every request
static AUDIT_ID: HeaderName = HeaderName::from_static("audit-id");
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// `client` is the connection's peer address, kept in the context (`client_ip`).
pub fn run(req: &RequestHeader, client: Option<std::net::IpAddr>, ctx: &mut RequestContext) {
    ctx.client_ip = client;
    ctx.received = Some(Instant::now());
    ctx.received_at = Some(SystemTime::now());
    ctx.audit_id = req
        .headers
        .get(&AUDIT_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    ctx.user_agent = req.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    ctx.request_uri =
        req.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| req.uri.path().to_string());
    ctx.source_ips = source_ips(req, client.map(ip_string));
}

/// The peer's address as `IpAddr`'s `Display` writes it. IPv4, the usual case, is written by
/// hand: `to_string` formats each octet through `fmt` and grows the string as it goes (~1,300
/// instructions a request, where this takes ~100).
pub fn ip_string(ip: std::net::IpAddr) -> String {
    let mut s = String::with_capacity(15);
    push_ip(&mut s, ip);
    s
}

/// Appends [`ip_string`]'s text to `s`.
pub fn push_ip(s: &mut String, ip: std::net::IpAddr) {
    let std::net::IpAddr::V4(v4) = ip else {
        let _ = std::fmt::Write::write_fmt(s, format_args!("{ip}"));
        return;
    };
    for (i, o) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if o >= 100 {
            s.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            s.push(char::from(b'0' + o / 10 % 10));
        }
        s.push(char::from(b'0' + o % 10));
    }
}

/// kube's `utilnet.SourceIPs`: X-Forwarded-For entries, then X-Real-Ip, then the peer,
/// without duplicates.
fn source_ips(req: &RequestHeader, client: Option<String>) -> Vec<String> {
    // room for one: most requests carry no X-Forwarded-For, and a watch holds this for its life
    let mut ips: Vec<String> = Vec::with_capacity(1);
    if let Some(xff) = req.headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        for part in xff.split(',') {
            let p = part.trim();
            if p.parse::<std::net::IpAddr>().is_ok() && !ips.iter().any(|i| i == p) {
                ips.push(p.to_string());
            }
        }
    }
    if let Some(real) = req.headers.get(&X_REAL_IP).and_then(|v| v.to_str().ok()).map(str::trim) {
        if real.parse::<std::net::IpAddr>().is_ok() && !ips.iter().any(|i| i == real) {
            ips.push(real.to_string());
        }
    }
    if let Some(c) = client {
        if !ips.contains(&c) {
            ips.push(c);
        }
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_string_is_display() {
        use std::net::{IpAddr, Ipv4Addr};
        for o in 0..=255u8 {
            for ip in [[o, 0, 0, 0], [10, o, 0, 1], [127, 0, o, 1], [192, 168, 1, o], [o, o, o, o]] {
                let ip = IpAddr::V4(Ipv4Addr::from(ip));
                assert_eq!(ip_string(ip), ip.to_string());
            }
        }
        for ip in ["::1", "fe80::1", "::ffff:10.0.0.1", "2001:db8::8a2e:370:7334"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_string(ip), ip.to_string());
        }
    }

    #[test]
    fn keeps_client_audit_id_and_orders_source_ips() {
        let mut req = RequestHeader::build("GET", b"/api?x=1", None).unwrap();
        req.insert_header("Audit-ID", "abc").unwrap();
        req.insert_header("X-Forwarded-For", "10.0.0.1, 10.0.0.2").unwrap();
        let mut ctx = RequestContext::default();
        run(&req, Some([127, 0, 0, 1].into()), &mut ctx);
        assert_eq!(ctx.audit_id, "abc");
        assert_eq!(ctx.source_ips, vec!["10.0.0.1", "10.0.0.2", "127.0.0.1"]);
        assert_eq!(ctx.request_uri, "/api?x=1");

        let long = "a".repeat(300);
        let mut req = RequestHeader::build("GET", b"/api", None).unwrap();
        req.insert_header("Audit-ID", long.as_str()).unwrap();
        let mut ctx = RequestContext::default();
        run(&req, None, &mut ctx);
        assert_eq!(ctx.audit_id, long, "kept untruncated");

        let req = RequestHeader::build("GET", b"/api", None).unwrap();
        let mut ctx = RequestContext::default();
        run(&req, None, &mut ctx);
        assert_eq!(ctx.audit_id.len(), 36, "a fresh UUID");
    }
}
