//! The upstream proxy to backend apiservers (aggregation), on pingora's upstream: TLS with
//! the proxy client cert, pooled connections, bodies streamed both ways, upgrades passed
//! through. The backend learns who the request acts as from X-Remote-* headers, as
//! kube-aggregator sends them; nothing a client sent about identity gets through.

use crate::api::{headers, Status};
use crate::context::{RequestContext, Route};
use crate::request_info::query::Query;
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::{Error, ErrorType};
use std::time::Duration;

/// The pingora error type of a request for a backend that failed its availability check.
const UNAVAILABLE: ErrorType = ErrorType::Custom("ServiceUnavailable");

/// Headers a client must never get through to a backend: its credentials and anything
/// that claims an identity, under any spelling a backend may read as one (`api::headers`).
/// A `Connection` nomination of them (which would have a hop-by-hop-minded hop drop the
/// identity frontdoor sets) goes with the request's other hop-by-hop headers
/// (`strip_request_hop_by_hop`).
pub fn strip_identity_headers(req: &mut RequestHeader) {
    // nothing is allocated when no header matches
    let names: Vec<http::HeaderName> =
        req.headers.keys().filter(|k| headers::is_identity(k.as_str())).cloned().collect();
    for n in &names {
        req.remove_header(n);
    }
}

/// Hop-by-hop headers Go's reverse proxy drops from a request (its `hopHeaders`), but for the
/// body's framing, which pingora writes itself (Transfer-Encoding). A `match`, not a list
/// searched: every header of every proxied request is tested (the list's loop of string
/// compares was ~100 instructions a header).
fn is_request_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "upgrade"
    )
}

/// A client's hop-by-hop headers end here, as Go's reverse proxy (kube-aggregator's) drops
/// them: the standard ones and those its `Connection` header nominates. `TE: trailers` goes on,
/// and an upgrade (a `Connection` naming `upgrade`, and an `Upgrade`) goes on as
/// `Connection: Upgrade` with its `Upgrade`; an `Upgrade` no `Connection` names is no upgrade
/// (Go's reading) and is dropped with the rest.
pub fn strip_request_hop_by_hop(req: &mut RequestHeader) {
    let h = &req.headers;
    // a request without them (most) costs no parse, lookup or removal
    if !h.keys().any(|k| is_request_hop_by_hop(k.as_str())) {
        return;
    }
    let upgrade = requested_upgrade(h).cloned();
    let trailers = asks_for_trailers(h);
    let drop = hop_by_hop(h, is_request_hop_by_hop, &["content-length", "transfer-encoding", "host"]);
    for n in &drop {
        req.remove_header(n);
    }
    if trailers {
        let _ = req.insert_header(http::header::TE, "trailers");
    }
    if let Some(protocol) = upgrade {
        let _ = req.insert_header(http::header::CONNECTION, "Upgrade");
        let _ = req.insert_header(http::header::UPGRADE, protocol);
    }
}

/// Drops the header names' case a request came with, and any request target pingora kept
/// beside its URI: pingora keeps each name's case in a second map, updated on every header set
/// or removed and copied with the request to the backend (3.8k instructions of a proxied
/// request's 160k, bench/proxy_callgrind.sh). A backend then gets the standard names titled
/// (pingora's table) and others in lower case, as HTTP/2 sends them: HTTP/1.1 names are
/// case-insensitive, and Go's server reads any case. The target a backend gets is the URI the
/// chain read and authorized, in origin-form, as Go's reverse proxy sends it: never bytes of
/// the request line the URI does not hold (an absolute-form target, or a scheme-like one such
/// as `x:/api/v1/secrets` that pingora reads as `/` but a Go backend would serve as its path).
pub fn forget_header_case(req: &mut RequestHeader) {
    if !req.has_case() {
        return;
    }
    let none = RequestHeader::from(http::Request::new(()).into_parts().0);
    let parts: http::request::Parts = std::mem::replace(req, none).into();
    *req = RequestHeader::from(parts);
}

/// The header names a `Connection` header nominates (a value that is not text nominates none).
fn connection_tokens(h: &http::HeaderMap) -> impl Iterator<Item = &str> {
    tokens(h, http::header::CONNECTION)
}

/// The hop-by-hop headers of `h` to drop: those of `standard` it has, and those its
/// `Connection` names, but `never` (what pingora writes itself, or must keep).
fn hop_by_hop(h: &http::HeaderMap, standard: fn(&str) -> bool, never: &[&str]) -> Vec<http::HeaderName> {
    let mut drop: Vec<http::HeaderName> = h.keys().filter(|k| standard(k.as_str())).cloned().collect();
    drop.extend(
        connection_tokens(h)
            // a standard one (as written: names are lower case) is in `drop` already when the
            // message has it: a backend's usual `Connection: keep-alive` costs no lookup
            .filter(|t| !standard(t))
            // a nominated header the message lacks has nothing to drop: no name allocated
            // and no removal
            .filter(|t| h.contains_key(*t))
            .filter_map(|t| http::HeaderName::from_bytes(t.as_bytes()).ok())
            .filter(|n| !never.contains(&n.as_str())),
    );
    drop
}

/// Whether a request's `TE` names `trailers` (Go's `httpguts.HeaderValuesContainsToken`).
fn asks_for_trailers(h: &http::HeaderMap) -> bool {
    tokens(h, http::header::TE).any(|t| t.eq_ignore_ascii_case("trailers"))
}

/// `TE: trailers` from the client goes on, as Go's reverse proxy sends it on (a backend that
/// answers with trailers, gRPC's, looks for it). pingora drops `TE` with the other hop-by-hop
/// headers from the upstream request before the proxy's filter sees it (all but an upgrade's),
/// so it is read from the client's request.
pub fn keep_trailers(client: &RequestHeader, req: &mut RequestHeader) {
    if asks_for_trailers(&client.headers) {
        let _ = req.insert_header(http::header::TE, "trailers");
    }
}

/// The comma-separated tokens of every `name` header, trimmed, empty ones left out.
fn tokens(h: &http::HeaderMap, name: http::HeaderName) -> impl Iterator<Item = &str> {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Hop-by-hop headers Go's reverse proxy drops from a response besides those pingora writes
/// itself (Connection, Transfer-Encoding); a `match`, as the request's.
fn is_hop_by_hop(name: &str) -> bool {
    matches!(name, "keep-alive" | "proxy-connection" | "proxy-authenticate" | "proxy-authorization" | "te" | "upgrade")
}

/// A backend's hop-by-hop headers end here, as Go's reverse proxy (kube-aggregator's) drops
/// them: those its `Connection` header nominates, and the standard ones. A 101 is passed as
/// it is (its handshake is the upgrade's); the body's framing is pingora's, never dropped.
pub fn strip_hop_by_hop(resp: &mut pingora::http::ResponseHeader) {
    if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    // the standard names are compared in place: a response without them (most) costs no
    // parse, lookup or removal of each; a Connection header's tokens are read once
    let drop = hop_by_hop(&resp.headers, is_hop_by_hop, &["content-length", "transfer-encoding", "connection"]);
    for n in &drop {
        resp.remove_header(n);
    }
}

/// client-go's `headerKeyEscape`: percent-encodes every byte that is not an HTTP token
/// character, and `%` itself, so any extra key survives as a header name.
pub fn header_key_escape(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        let legal = b.is_ascii_alphanumeric() || b"!#$&'*+-.^_`|~".contains(&b);
        if legal {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The header names one way of telling a user's identity uses, as written and prebuilt.
pub struct UserHeaders {
    user: &'static str,
    uid: &'static str,
    group: &'static str,
    extra: &'static str,
    /// user, uid and group as `HeaderName`s (`Headers::set`).
    parsed: [HeaderName; 3],
}

/// kube-aggregator's, to backends and a request-header upstream.
pub const REMOTE: UserHeaders = UserHeaders {
    user: "X-Remote-User",
    uid: "X-Remote-Uid",
    group: "X-Remote-Group",
    extra: "X-Remote-Extra-",
    parsed: [
        HeaderName::from_static("x-remote-user"),
        HeaderName::from_static("x-remote-uid"),
        HeaderName::from_static("x-remote-group"),
    ],
};
/// client-go's impersonating round tripper's, to an impersonating upstream.
pub const IMPERSONATE: UserHeaders = UserHeaders {
    user: "Impersonate-User",
    uid: "Impersonate-Uid",
    group: "Impersonate-Group",
    extra: "Impersonate-Extra-",
    parsed: [
        HeaderName::from_static("impersonate-user"),
        HeaderName::from_static("impersonate-uid"),
        HeaderName::from_static("impersonate-group"),
    ],
};

/// Where the headers set for a backend go. A request without a case map whose target is its URI (the
/// proxied request: `forget_header_case`) is edited as plain `http` parts, its names set
/// prebuilt: pingora's `insert_header` parses a name again on every call and allocates a
/// custom one (~500 instructions a header). Another goes through pingora, which keeps its
/// case map in step with the names as written.
enum Headers<'a> {
    Map(&'a mut http::HeaderMap),
    Pingora(&'a mut RequestHeader),
}

impl Headers<'_> {
    /// Makes room for `n` more headers at once: a parsed request's map is sized to the
    /// headers it came with, and each of the backend's headers added past that grows it again.
    fn reserve(&mut self, n: usize) {
        if let Headers::Map(h) = self {
            let _ = h.try_reserve(n);
        }
    }

    fn get_all(&self, name: &HeaderName) -> http::header::GetAll<'_, HeaderValue> {
        match self {
            Headers::Map(h) => h.get_all(name),
            Headers::Pingora(req) => req.headers.get_all(name),
        }
    }

    /// Sets header `name` (as written; `parsed` when given is the same name prebuilt) to
    /// `value`, or with `append` adds it; Err: a value no header can carry.
    fn set(&mut self, name: &str, parsed: Option<&HeaderName>, value: &str, append: bool) -> Result<(), ()> {
        self.set_value(name, parsed, http::HeaderValue::from_str(value).map_err(drop)?, append)
    }

    fn set_value(
        &mut self,
        name: &str,
        parsed: Option<&HeaderName>,
        value: HeaderValue,
        append: bool,
    ) -> Result<(), ()> {
        match self {
            Headers::Map(h) => {
                let name = match parsed {
                    Some(n) => n.clone(),
                    None => HeaderName::from_bytes(name.as_bytes()).map_err(drop)?,
                };
                match append {
                    true => h.try_append(name, value).map(drop).map_err(drop),
                    false => h.try_insert(name, value).map(drop).map_err(drop),
                }
            }
            Headers::Pingora(req) => match append {
                true => req.append_header(name.to_string(), value).map(drop).map_err(drop),
                false => req.insert_header(name.to_string(), value).map_err(drop),
            },
        }
    }
}

/// The user's name, uid (when it has one), groups (one header each) and extras (one header
/// per value, the key escaped as client-go escapes it). A value no header can carry (a control
/// character) fails the request, in Go's words, as kube-aggregator's transport fails it: left
/// out, the backend would see a request without the name or with fewer groups. So does a value
/// that begins or ends with a space or tab: every HTTP reader trims those, so the backend would
/// read another user than the one authorized (`"\tadmin"` as `admin`), which kube-aggregator
/// lets through.
pub fn user_headers(req: &mut RequestHeader, user: &crate::authn::UserInfo, names: &UserHeaders) -> Result<(), String> {
    edit_headers(req, |h| set_user_headers(h, user, names))
}

/// Runs `f` on the request's headers, as plain parts when it can (`Headers`).
fn edit_headers<T>(req: &mut RequestHeader, f: impl FnOnce(&mut Headers) -> T) -> T {
    let target_is_uri = Some(req.raw_path()) == req.uri.path_and_query().map(|p| p.as_str().as_bytes());
    if req.has_case() || !target_is_uri {
        return f(&mut Headers::Pingora(req));
    }
    let none = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts: http::request::Parts = std::mem::replace(req, none).into();
    let r = f(&mut Headers::Map(&mut parts.headers));
    *req = RequestHeader::from(parts);
    r
}

fn set_user_headers(h: &mut Headers, user: &crate::authn::UserInfo, names: &UserHeaders) -> Result<(), String> {
    let invalid = |name: &str| format!("net/http: invalid header field value for {}", crate::api::field::quote(name));
    let read_as_told = |name: &str, v: &str| match v.trim_matches([' ', '\t']).len() == v.len() {
        true => Ok(()),
        false => Err(format!(
            "a value for {} begins or ends with whitespace, which the backend would not read",
            crate::api::field::quote(name)
        )),
    };
    let [user_name, uid_name, group_name] = &names.parsed;
    read_as_told(names.user, &user.username)?;
    h.set(names.user, Some(user_name), &user.username, false).map_err(|_| invalid(names.user))?;
    if !user.uid.is_empty() {
        read_as_told(names.uid, &user.uid)?;
        h.set(names.uid, Some(uid_name), &user.uid, false).map_err(|_| invalid(names.uid))?;
    }
    for g in &user.groups {
        read_as_told(names.group, g)?;
        h.set(names.group, Some(group_name), g, true).map_err(|_| invalid(names.group))?;
    }
    for (k, values) in &user.extra {
        let name = format!("{}{}", names.extra, header_key_escape(k));
        for v in values {
            read_as_told(&name, v)?;
            h.set(&name, None, v, true).map_err(|_| invalid(&name))?;
        }
    }
    Ok(())
}

/// The query a backend gets is the one the chain read (`query`), encoded as kube-aggregator
/// encodes it (`Query::encode`), not the bytes the client sent: pairs Go drops, such as one
/// holding `;`, never reach a backend that would read them.
fn send_query_as_read(req: &mut RequestHeader, query: &Query) -> Result<(), String> {
    let Some(raw) = req.uri.query() else { return Ok(()) };
    let encoded = query.encode();
    if encoded == raw {
        return Ok(());
    }
    let path = req.uri.path();
    let target = if encoded.is_empty() { path.to_string() } else { format!("{path}?{encoded}") };
    req.set_uri(http::Uri::try_from(target).map_err(|e| format!("the request's target cannot be sent: {e}"))?);
    Ok(())
}

/// Prepares the request for the backend or the upstream apiserver: identity and hop-by-hop
/// headers stripped, the query as the chain read it, the user's set (X-Remote-* or, to an impersonating upstream, Impersonate-* with
/// frontdoor's credential), Host the peer's address, the upstream's path prefix. Fails when
/// the user cannot be told (`user_headers`).
pub fn upstream_request(req: &mut RequestHeader, ctx: &RequestContext) -> Result<(), String> {
    strip_identity_headers(req);
    strip_request_hop_by_hop(req);
    send_query_as_read(req, &ctx.query)?;
    if let Route::Upstream(d) = &ctx.route {
        forwarded_for(&mut Headers::Pingora(req), ctx.client_ip);
        d.identify(req, ctx.effective_user())?;
        let _ = req.insert_header(http::header::HOST, d.host.clone());
        if !d.prefix.is_empty() {
            let target = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            if let Ok(uri) = http::Uri::try_from(d.upstream_path(target)) {
                req.set_uri(uri);
            }
        }
        return Ok(());
    }
    let host = match &ctx.route {
        Route::Backend(b) => b.state.peer.load().as_ref().map(|u| u.host.clone()),
        _ => None,
    };
    // the headers of a proxied request are written in one go, as plain parts (`Headers`)
    edit_headers(req, |h| {
        let user = ctx.effective_user();
        h.reserve(1 + user.map_or(0, |u| 2 + u.groups.len() + u.extra.values().map(Vec::len).sum::<usize>()));
        forwarded_for(h, ctx.client_ip);
        if let Some(user) = user {
            set_user_headers(h, user, &REMOTE)?;
        }
        if let Some(host) = host {
            let _ = h.set_value("Host", Some(&http::header::HOST), host, false);
        }
        Ok(())
    })
}

/// Go's reverse proxy (kube-aggregator's): the client's address is appended to
/// X-Forwarded-For, so what the server behind records has the real client after whatever the
/// client claimed.
fn forwarded_for(h: &mut Headers, client: Option<std::net::IpAddr>) {
    let Some(ip) = client else { return };
    let xff = &crate::filters::request_received::X_FORWARDED_FOR;
    // one allocation: the address is written into the value, not formatted apart
    let mut value = String::with_capacity(48);
    for prior in h.get_all(xff).iter().filter_map(|v| v.to_str().ok()) {
        value.push_str(prior);
        value.push_str(", ");
    }
    crate::filters::request_received::push_ip(&mut value, ip);
    if let Ok(value) = HeaderValue::try_from(value) {
        let _ = h.set_value("x-forwarded-for", Some(xff), value, false);
    }
}

/// The pingora error type of a request whose user no identity header can carry.
pub const INVALID_IDENTITY: ErrorType = ErrorType::Custom("InvalidIdentityHeader");

/// How long a request with a deadline may still run (kube cuts the whole request at its
/// deadline, counted from when it was received); None for long-running requests.
fn remaining(ctx: &RequestContext) -> Option<Duration> {
    let deadline = ctx.deadline?;
    Some(deadline.saturating_sub(ctx.received.map(|t| t.elapsed()).unwrap_or_default()))
}

/// Arms the deadline of the response head on the upstream connection `fd` (long-running
/// requests have none): see `router::head_deadline`.
pub fn arm_head_deadline(
    ctx: &mut RequestContext,
    fd: std::os::unix::io::RawFd,
    digest: Option<&pingora::protocols::Digest>,
) {
    let Some(left) = remaining(ctx) else { return };
    let socket = digest.and_then(|d| d.socket_digest.as_ref());
    let addrs = socket.and_then(|s| Some((s.local_addr()?.clone(), s.peer_addr()?.clone())));
    ctx.head_deadline = super::head_deadline::HeadDeadline::arm(fd, addrs, left);
}

/// Fails a proxied request past its deadline. pingora's timeouts are per read and per write:
/// checked on the response head and on every body chunk, this keeps a backend that trickles
/// bytes from running a request past `--request-timeout` (answered 504 when nothing was
/// written yet; cut off mid-body otherwise, as kube aborts it).
pub fn check_deadline(ctx: &RequestContext) -> pingora::Result<()> {
    match remaining(ctx) {
        Some(left) if left.is_zero() => Error::e_explain(ErrorType::ReadTimedout, "request deadline exceeded"),
        _ => Ok(()),
    }
}

/// The upstream peer for a backend route: 503 at once when the backend is unavailable.
/// Ordinary requests are cut at the request timeout: each upstream read and write may take at
/// most what is left of it, and `check_deadline` runs on every chunk; long-running ones (watch,
/// exec, port-forward, ...) are exempt.
/// Upgrades never reuse a pooled upstream connection: on a reused one pingora 0.9 can read the
/// backend's 101 before the request's own empty-body end and take that end for the tunnel's,
/// closing it right after the 101 (cloudflare/pingora#946; about 1 upgrade in 10 here). A fresh
/// connection's handshake orders the two (0 failures in 600 upgrades). Each upgrade gets a
/// pool group of its own; an upgraded connection is never pooled afterwards anyway.
fn fresh_connection_group() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    (1 << 63) | NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

pub fn upstream_peer(ctx: &RequestContext, upgrade: bool) -> pingora::Result<Box<pingora::prelude::HttpPeer>> {
    let mut peer = match &ctx.route {
        Route::Backend(b) if b.available() => match b.state.peer.load_full() {
            Some(upstream) => upstream.peer.clone(),
            None => return Err(Error::explain(UNAVAILABLE, "service unavailable")),
        },
        Route::Upstream(d) if d.available() => match d.peer.load_full() {
            Some(upstream) => upstream.peer.clone(),
            None => return Err(Error::explain(UNAVAILABLE, "service unavailable")),
        },
        _ => return Err(Error::explain(UNAVAILABLE, "service unavailable")),
    };
    check_deadline(ctx)?;
    let left = remaining(ctx);
    peer.options.read_timeout = left;
    peer.options.write_timeout = left;
    // dialling too: a backend that accepts and never completes its handshake is cut at the
    // deadline (kube's dial runs under the request's context), not after the connect timeout
    peer.options.total_connection_timeout = left;
    if upgrade {
        peer.group_key = fresh_connection_group();
    }
    Ok(Box::new(peer))
}

/// Whether `e` is the 503 answered at once for a backend or upstream marked unavailable.
pub fn is_known_unavailable(e: &pingora::Error) -> bool {
    e.etype == UNAVAILABLE
}

/// A connection to the route's server could not be made (refused, timed out, TLS handshake):
/// an upstream apiserver is marked unavailable at once, so the next requests answer 503 without
/// dialling and `/readyz` says so, until its refresher (woken now) reaches it again. Backends
/// have their own prober. A dial cut by the request's own deadline (a short `?timeout=`) says
/// nothing about the server, and marks nothing.
pub fn connect_failed(ctx: &RequestContext, e: &pingora::Error) {
    if check_deadline(ctx).is_err() {
        return;
    }
    if let Route::Upstream(d) = &ctx.route {
        d.mark_unreachable(format!("{}: {e}", d.url));
    }
}

/// The protocol a request asks to switch to, as Go's reverse proxy reads it (`upgradeType`):
/// its `Upgrade`, when its `Connection` names `upgrade`.
fn requested_upgrade(h: &http::HeaderMap) -> Option<&http::HeaderValue> {
    connection_tokens(h).any(|t| t.eq_ignore_ascii_case("upgrade")).then(|| h.get(http::header::UPGRADE)).flatten()
}

/// A backend's switch of protocols that the request did not ask for (the request is not
/// tunnelled on).
const UNASKED_SWITCH: ErrorType = ErrorType::Custom("UnaskedSwitch");

/// A 101 to a request that asked for no upgrade is refused, as Go's reverse proxy refuses it
/// (kube-aggregator proxies a request that is no upgrade through it): the client would be
/// handed a tunnel it did not open. kube-aggregator's responder answers 503 with the error's
/// text. An upgrade request's 101 goes on whatever it names, as kube-aggregator's
/// upgrade-aware handler relays it.
pub fn refuse_unasked_switch(req: &RequestHeader, resp: &pingora::http::ResponseHeader) -> pingora::Result<()> {
    if resp.status != http::StatusCode::SWITCHING_PROTOCOLS || requested_upgrade(&req.headers).is_some() {
        return Ok(());
    }
    let got = requested_upgrade(&resp.headers).map(headers::value_text);
    let why = format!("backend tried to switch protocol {:?} when \"\" was requested", got.unwrap_or_default());
    Err(Error::explain(UNASKED_SWITCH, why))
}

/// A backend's answer that redirects (the request is not proxied on to where it points).
const REDIRECT: ErrorType = ErrorType::Custom("RedirectRefused");
const REDIRECT_REFUSED: &str = "the backend attempted to redirect this request, which is not permitted";

/// kube-aggregator refuses a backend's redirect (`--aggregator-reject-forwarding-redirect`,
/// on by default since CVE-2022-3172): a 3xx with a Location would send the client, its
/// credentials included, wherever the backend says. The upstream apiserver is kube's own
/// delegate and is trusted as such.
pub fn refuse_redirect(ctx: &RequestContext, resp: &pingora::http::ResponseHeader) -> pingora::Result<()> {
    let redirect = (300..400).contains(&resp.status.as_u16()) && resp.headers.contains_key(http::header::LOCATION);
    if redirect && matches!(ctx.route, Route::Backend(_)) {
        return Err(Error::explain(REDIRECT, REDIRECT_REFUSED));
    }
    Ok(())
}

/// What the client gets for a proxied request that failed before its response started: a
/// refused redirect is kube's plain-text 502, anything else [`failure_status`].
pub fn failure_reply(ctx: &RequestContext, e: &pingora::Error) -> crate::filters::Reply {
    if e.etype == REDIRECT {
        return crate::filters::Reply::text(502, REDIRECT_REFUSED);
    }
    if e.etype == UNASKED_SWITCH {
        // pingora wraps the error in one naming the peer: the reason is the innermost's
        let why = innermost(e).context.as_ref().map(|c| c.as_str()).unwrap_or_default();
        return crate::filters::Reply::text(503, format!("{why}\n"));
    }
    failure_status(ctx, e).into()
}

/// The Status of a proxied request that failed before its response started: kube's 504 once
/// the request's deadline has passed (its timeout filter answers first, whatever the proxy was
/// doing), otherwise [`error_status`] naming the server the route dials.
pub fn failure_status(ctx: &RequestContext, e: &pingora::Error) -> Status {
    match remaining(ctx) {
        Some(left) if left.is_zero() => Status::timeout(),
        _ => error_status(e, peer_address(ctx).as_deref()),
    }
}

/// The address the route dials, for error messages.
fn peer_address(ctx: &RequestContext) -> Option<String> {
    let upstream = match &ctx.route {
        Route::Backend(b) => b.state.peer.load_full(),
        Route::Upstream(d) => d.peer.load_full(),
        _ => None,
    };
    upstream.map(|u| u.peer._address.to_string())
}

/// The Status a client sees when the backend cannot be reached: 503, kube's `service
/// unavailable` for a backend known to be down, else kube's proxy words (`error trying to
/// reach service: ` and what failed, said as Go's transport says it: `dial tcp ADDR:
/// connection refused`, `read tcp ADDR: connection reset by peer`, `EOF`, `malformed HTTP
/// response "..."`), not pingora's internal chain of contexts.
pub fn error_status(e: &pingora::Error, addr: Option<&str>) -> Status {
    match &e.etype {
        ErrorType::Custom("ServiceUnavailable") => Status::service_unavailable("service unavailable"),
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => Status::timeout(),
        _ => Status::service_unavailable(format!("error trying to reach service: {}", transport_error(e, addr))),
    }
}

/// The innermost pingora error of `e`'s cause chain (the one that says what happened).
fn innermost(e: &pingora::Error) -> &pingora::Error {
    let mut e = e;
    // a cause is a pingora error boxed once or twice, depending on how it was chained
    while let Some(inner) = e.cause.as_deref().and_then(|c| {
        c.downcast_ref::<pingora::Error>().or_else(|| c.downcast_ref::<Box<pingora::Error>>().map(|b| &**b))
    }) {
        e = inner;
    }
    e
}

/// An OS or TLS error in Go's words: lower case, no `(os error N)`, an unexpected end `EOF`.
fn go_words(cause: &str) -> String {
    if cause.contains("close_notify") || cause.contains("unexpected end of file") || cause.contains("early eof") {
        return "EOF".into();
    }
    let cause = cause.split(" (os error").next().unwrap_or(cause);
    let mut chars = cause.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

/// A TLS handshake's failure as Go's crypto/tls says it (rustls names the same failures).
fn go_tls(cause: &str) -> Option<String> {
    let verify = |why: &str| Some(format!("tls: failed to verify certificate: x509: {why}"));
    if let Some(alert) = cause.split("received fatal alert: ").nth(1) {
        let name = match alert.split_whitespace().next().unwrap_or("") {
            "BadCertificate" => "bad certificate",
            "CertificateRequired" => "certificate required",
            "UnknownCA" => "unknown certificate authority",
            "HandshakeFailure" => "handshake failure",
            "ProtocolVersion" => "protocol version not supported",
            "CertificateExpired" => "expired certificate",
            other => other,
        };
        return Some(format!("remote error: tls: {name}"));
    }
    let why = cause.split("invalid peer certificate: ").nth(1)?;
    match why {
        // a CA of the right name that did not sign it: still no authority Go knows
        w if w.starts_with("UnknownIssuer") || w.starts_with("BadSignature") => {
            verify("certificate signed by unknown authority")
        }
        w if w.starts_with("NotValidForName") => verify("certificate is not valid for the requested name"),
        w if w.starts_with("Expired") || w.starts_with("NotValidYet") => {
            verify("certificate has expired or is not yet valid")
        }
        _ => None,
    }
}

/// What failed on the way to a backend, in the words of Go's transport (the proxy's 503s and
/// the availability conditions).
pub(crate) fn transport_error(e: &pingora::Error, addr: Option<&str>) -> String {
    let inner = innermost(e);
    let cause = inner.cause.as_ref().map(|c| go_words(&c.to_string()));
    let context = inner.context.as_ref().map(|c| c.as_str().to_string());
    let what = cause.clone().or(context.clone()).unwrap_or_else(|| inner.etype.as_str().to_string());
    let at = addr.map(|a| format!(" {a}")).unwrap_or_default();
    match inner.etype {
        ErrorType::ConnectTimedout => format!("dial tcp{at}: i/o timeout"),
        // Go's net.OpError wraps the connect syscall's error
        ErrorType::ConnectRefused | ErrorType::ConnectNoRoute => format!("dial tcp{at}: connect: {what}"),
        ErrorType::ConnectError | ErrorType::BindError | ErrorType::SocketError => format!("dial tcp{at}: {what}"),
        ErrorType::TLSHandshakeTimedout => "net/http: TLS handshake timeout".into(),
        ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert | ErrorType::HandshakeError => {
            go_tls(&format!("{what} {}", context.as_deref().unwrap_or(""))).unwrap_or_else(|| format!("tls: {what}"))
        }
        ErrorType::ReadError | ErrorType::ConnectionClosed if what == "EOF" => what,
        INVALID_IDENTITY => what,
        ErrorType::ReadError | ErrorType::ConnectionClosed => format!("read tcp{at}: {what}"),
        ErrorType::WriteError => format!("write tcp{at}: {what}"),
        ErrorType::InvalidHTTPHeader | ErrorType::H1Error | ErrorType::InvalidH2 => {
            // pingora's context holds the bytes it read (escaped): their first line, bounded
            let got = context.as_deref().and_then(|c| c.strip_prefix("buf: ")).unwrap_or("");
            let line: String = got.split("\\r\\n").next().unwrap_or("").chars().take(64).collect();
            format!("net/http: HTTP/1.x transport connection broken: malformed HTTP response \"{line}\"")
        }
        _ => format!("{}{at}: {what}", inner.etype.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::UserInfo;

    #[test]
    fn a_request_forgets_its_header_case_and_any_target_but_its_uri() {
        let targets: [(&[u8], &str); 6] = [
            (b"/api/v1/pods?watch=1&x=%20", "/api/v1/pods?watch=1&x=%20"),
            (b"*", "*"),
            (b"https://h.example/api/v1/pods?limit=1", "/api/v1/pods?limit=1"),
            (b"x:/api/v1/namespaces/kube-system/secrets", "/"),
            (b"foo:bar://h/api/v1/secrets", "/"),
            (b"/api/\xff?q=\xfe", ""),
        ];
        for (target, sent) in targets {
            let mut req = RequestHeader::build("POST", target, None).unwrap();
            req.append_header("X-Remote-Group", "a").unwrap();
            req.append_header("x-remote-group", "b").unwrap();
            req.insert_header("Content-Type", "application/json").unwrap();
            req.extensions_mut().insert(7u8);
            let (uri, headers) = (req.uri.clone(), req.headers.clone());
            forget_header_case(&mut req);
            assert!(!req.has_case());
            assert_eq!(req.uri, uri, "{target:?}");
            // what goes on the wire is the URI the chain read
            let read = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            assert_eq!(req.raw_path(), read.as_bytes(), "{target:?}");
            if !sent.is_empty() {
                assert_eq!(read, sent, "{target:?}");
            }
            assert!(req.raw_path_is_utf8());
            assert_eq!(req.method, http::Method::POST);
            assert_eq!(req.headers, headers);
            assert_eq!(req.extensions.get::<u8>(), Some(&7));
            let mut wire = Vec::new();
            req.header_to_h1_wire(&mut wire);
            let wire = String::from_utf8(wire).unwrap();
            assert!(wire.contains("x-remote-group: a\r\nx-remote-group: b\r\n"), "{wire}");
            assert!(wire.contains("Content-Type: application/json\r\n"), "pingora titles the standard names: {wire}");
            // a header set later is kept in one map only
            req.insert_header("X-Remote-User", "u").unwrap();
            assert!(!req.has_case());
        }
    }

    #[test]
    fn a_responses_hop_by_hop_headers_are_dropped_but_its_framing_and_upgrades_kept() {
        let resp = |status: u16| {
            let mut r = pingora::http::ResponseHeader::build(status, None).unwrap();
            for (k, v) in [
                ("Connection", "keep-alive, X-Hop, Content-Length"),
                ("Connection", "x-other"),
                ("X-Hop", "1"),
                ("X-Other", "1"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Authenticate", "Basic"),
                ("Upgrade", "websocket"),
                ("Content-Length", "2"),
                ("Audit-Id", "a"),
            ] {
                r.append_header(k, v).unwrap();
            }
            r
        };
        let names = |r: &pingora::http::ResponseHeader| {
            let mut n: Vec<String> = r.headers.keys().map(|k| k.to_string()).collect();
            n.sort();
            n
        };
        let mut ok = resp(200);
        strip_hop_by_hop(&mut ok);
        assert_eq!(names(&ok), ["audit-id", "connection", "content-length"]);
        let mut switching = resp(101);
        strip_hop_by_hop(&mut switching);
        assert_eq!(names(&switching).len(), 8, "a 101 is passed as it is");
    }

    #[test]
    fn the_client_is_appended_to_x_forwarded_for() {
        // through pingora (a request with its case map) and as plain parts (without)
        for cased in [true, false] {
            let build = || {
                let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
                if !cased {
                    forget_header_case(&mut req);
                }
                req
            };
            let mut req = build();
            edit_headers(&mut req, |h| forwarded_for(h, Some([127, 0, 0, 1].into())));
            assert_eq!(req.headers["x-forwarded-for"], "127.0.0.1");
            let mut req = build();
            req.append_header("X-Forwarded-For", "6.6.6.6").unwrap();
            req.append_header("X-Forwarded-For", "7.7.7.7, 8.8.8.8").unwrap();
            edit_headers(&mut req, |h| forwarded_for(h, Some([10, 0, 0, 9].into())));
            let all: Vec<_> = req.headers.get_all("x-forwarded-for").iter().collect();
            assert_eq!(all, ["6.6.6.6, 7.7.7.7, 8.8.8.8, 10.0.0.9"]);
            assert_eq!(req.has_case(), cased);
        }
    }

    #[test]
    fn identity_headers_replaced() {
        let mut req = RequestHeader::build("GET", b"/apis/g/v1/things", None).unwrap();
        for (k, v) in [
            ("Authorization", "Bearer x"),
            ("Impersonate-User", "root"),
            ("X-Remote-User", "root"),
            ("x-remote-group", "system:masters"),
            ("X-Remote-Extra-Scopes", "all"),
            ("X_Remote_User", "root"),
            ("x-remote_group", "system:masters"),
            ("Impersonate_User", "root"),
            ("authorization", "Bearer y"),
            ("Connection", "keep-alive, X-Remote-User, x_remote_group"),
            ("Accept", "application/json"),
        ] {
            req.append_header(k, v).unwrap();
        }
        let mut ctx = RequestContext::default();
        let mut user = UserInfo::new("alice", vec!["dev".into(), "system:authenticated".into()]);
        user.uid = "alice-uid".into();
        user.extra.insert("scopes.example.com/x y%".into(), vec!["a".into(), "b".into()]);
        ctx.user = Some(std::sync::Arc::new(user));
        upstream_request(&mut req, &ctx).unwrap();
        let all = |n: &str| req.headers.get_all(n).iter().map(|v| v.to_str().unwrap().to_string()).collect::<Vec<_>>();
        assert!(req.headers.get("Authorization").is_none());
        assert!(req.headers.get("Impersonate-User").is_none());
        assert_eq!(all("X-Remote-User"), vec!["alice"]);
        assert_eq!(all("X-Remote-Uid"), vec!["alice-uid"]);
        assert_eq!(all("X-Remote-Group"), vec!["dev", "system:authenticated"]);
        assert!(req.headers.get("X-Remote-Extra-Scopes").is_none());
        assert_eq!(all("X-Remote-Extra-scopes.example.com%2Fx%20y%25"), vec!["a", "b"]);
        assert_eq!(all("Accept"), vec!["application/json"]);
        for k in req.headers.keys() {
            let k = k.as_str();
            assert!(!k.contains('_'), "underscore spelling {k} passed");
        }
        assert!(all("Connection").is_empty(), "hop-by-hop, with its identity nominations");
    }

    use crate::api::headers::request_with as with_headers;

    #[test]
    fn a_switch_of_protocols_only_to_the_one_asked_for() {
        let req = with_headers;
        let switch = |h: &[(&str, &str)]| {
            let mut r = pingora::http::ResponseHeader::build(101, None).unwrap();
            for (k, v) in h {
                r.append_header(k.to_string(), *v).unwrap();
            }
            r
        };
        let ws = [("Connection", "Upgrade"), ("Upgrade", "websocket")];
        assert!(
            refuse_unasked_switch(&req(&ws), &switch(&[("Connection", "upgrade"), ("Upgrade", "WebSocket")])).is_ok()
        );
        let e =
            refuse_unasked_switch(&req(&[]), &switch(&[("Connection", "Upgrade"), ("Upgrade", "h2c")])).unwrap_err();
        let reply = failure_reply(&RequestContext::default(), &e);
        assert_eq!(reply.code, 503);
        assert_eq!(&reply.body[..], b"backend tried to switch protocol \"h2c\" when \"\" was requested\n");
        let other = switch(&[("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")]);
        assert!(refuse_unasked_switch(&req(&ws), &other).is_ok(), "an upgrade's 101 is relayed, as kube relays it");
        assert!(
            refuse_unasked_switch(&req(&[("Upgrade", "h2c")]), &switch(&[("Upgrade", "h2c")])).is_err(),
            "no Connection names it"
        );
        let ok = pingora::http::ResponseHeader::build(200, None).unwrap();
        assert!(refuse_unasked_switch(&req(&[]), &ok).is_ok());
    }

    #[test]
    fn a_requests_hop_by_hop_headers_end_here() {
        let sent = |headers: &[(&str, &str)]| {
            let mut req = with_headers(headers);
            strip_request_hop_by_hop(&mut req);
            let mut out: Vec<(String, String)> =
                req.headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string())).collect();
            out.sort();
            out
        };
        let pairs = |p: &[(&str, &str)]| p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        // the standard ones, those Connection names (never the framing or Host), TE but trailers
        assert_eq!(
            sent(&[
                ("Connection", "keep-alive, X-Foo, Audit-ID, Content-Length, Host"),
                ("X-Foo", "1"),
                ("Audit-ID", "forged"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Connection", "keep-alive"),
                ("Trailer", "X-Bar"),
                ("TE", "gzip, trailers"),
                ("Upgrade", "h2c"),
                ("Content-Length", "0"),
                ("Host", "h"),
                ("Accept", "application/json"),
            ]),
            pairs(&[("accept", "application/json"), ("content-length", "0"), ("host", "h"), ("te", "trailers")])
        );
        // an upgrade goes on as one
        assert_eq!(
            sent(&[("Connection", "keep-alive, Upgrade, X-Foo"), ("Upgrade", "SPDY/3.1"), ("X-Foo", "1")]),
            pairs(&[("connection", "Upgrade"), ("upgrade", "SPDY/3.1")])
        );
        // nothing to drop: the request as it is
        assert_eq!(sent(&[("Accept", "*/*")]), pairs(&[("accept", "*/*")]));
    }

    #[test]
    fn a_user_no_header_can_carry_fails_the_request() {
        let bad = |name: &str, groups: Vec<String>, extra: Option<&str>| {
            let mut user = UserInfo::new(name, groups);
            if let Some(v) = extra {
                user.extra.insert("k".into(), vec![v.into()]);
            }
            let ctx = RequestContext { user: Some(std::sync::Arc::new(user)), ..Default::default() };
            let mut req = RequestHeader::build("GET", b"/apis/g/v1/things", None).unwrap();
            upstream_request(&mut req, &ctx).unwrap_err()
        };
        assert_eq!(bad("ctl\u{1}user", vec![], None), r#"net/http: invalid header field value for "X-Remote-User""#);
        assert_eq!(
            bad("alice", vec!["ok".into(), "gr\u{7f}p".into()], None),
            r#"net/http: invalid header field value for "X-Remote-Group""#
        );
        assert_eq!(
            bad("alice", vec![], Some("a\nb")),
            r#"net/http: invalid header field value for "X-Remote-Extra-k""#
        );
        // the whole request fails, in kube's proxy words, as a 503
        let e = pingora::Error::explain(INVALID_IDENTITY, bad("a\rb", vec![], None));
        let s = error_status(&e, Some("127.0.0.1:1"));
        assert_eq!(s.code, 503);
        assert_eq!(
            s.message,
            r#"error trying to reach service: net/http: invalid header field value for "X-Remote-User""#
        );
        // tabs and non-ASCII are values a header carries (Go's ValidHeaderFieldValue)
        let ctx =
            RequestContext { user: Some(std::sync::Arc::new(UserInfo::new("é\tx", vec![]))), ..Default::default() };
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        upstream_request(&mut req, &ctx).unwrap();
        assert_eq!(req.headers["X-Remote-User"].as_bytes(), "é\tx".as_bytes());
        // but not at either end: every reader trims them, and would read another user
        let spaced =
            |h: &str| format!("a value for \"{h}\" begins or ends with whitespace, which the backend would not read");
        assert_eq!(bad("\tadmin", vec![], None), spaced("X-Remote-User"));
        assert_eq!(bad("admin ", vec![], None), spaced("X-Remote-User"));
        assert_eq!(bad("alice", vec!["\tsystem:masters".into()], None), spaced("X-Remote-Group"));
        assert_eq!(bad("alice", vec![], Some(" v")), spaced("X-Remote-Extra-k"));
    }

    #[test]
    fn a_backend_gets_the_query_the_chain_read() {
        let sent = |target: &str| {
            let mut req = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
            let query = Query::parse(req.uri.query().unwrap_or(""));
            let ctx = RequestContext { query, ..Default::default() };
            upstream_request(&mut req, &ctx).unwrap();
            req.uri.to_string()
        };
        assert_eq!(sent("/apis/g/v1/things?watch=true;x=1"), "/apis/g/v1/things", "no pair Go drops");
        assert_eq!(sent("/apis/g/v1/things?watch=true;x=1&limit=5"), "/apis/g/v1/things?limit=5");
        assert_eq!(sent("/apis/g/v1/things?watch=1&limit=5"), "/apis/g/v1/things?limit=5&watch=1", "Go's order");
        assert_eq!(sent("/apis/g/v1/things?limit=5&watch=1"), "/apis/g/v1/things?limit=5&watch=1");
        assert_eq!(
            sent("/apis/g/v1/a%2Fb?labelSelector=a=b"),
            "/apis/g/v1/a%2Fb?labelSelector=a%3Db",
            "the path as sent"
        );
        assert_eq!(sent("/apis/g/v1/things"), "/apis/g/v1/things");
    }

    #[test]
    fn impersonated_user_wins() {
        let mut req = RequestHeader::build("GET", b"/apis/g/v1/things", None).unwrap();
        let ctx = RequestContext {
            user: Some(std::sync::Arc::new(UserInfo::new("admin", vec!["system:masters".into()]))),
            impersonated: Some(Box::new(UserInfo::new("bob", vec![]))),
            ..Default::default()
        };
        upstream_request(&mut req, &ctx).unwrap();
        assert_eq!(req.headers.get("X-Remote-User").unwrap(), "bob");
        assert!(req.headers.get("X-Remote-Group").is_none());
    }

    #[test]
    fn past_the_deadline_any_failure_is_kubes_timeout() {
        let refused = Error::explain(ErrorType::ConnectTimedout, "handshake");
        let mut ctx = RequestContext {
            deadline: Some(Duration::from_millis(10)),
            received: Some(std::time::Instant::now() - Duration::from_millis(20)),
            ..Default::default()
        };
        assert_eq!(failure_status(&ctx, &refused).code, 504);
        ctx.deadline = Some(Duration::from_secs(60));
        assert_eq!(failure_status(&ctx, &refused).code, 503, "within the deadline: the proxy's own error");
        ctx.deadline = None;
        assert_eq!(failure_status(&ctx, &refused).code, 503, "long-running requests have no deadline");
    }

    #[test]
    fn errors_in_kube_words() {
        assert_eq!(error_status(&Error::new(UNAVAILABLE), None).message, "service unavailable");
        assert_eq!(error_status(&Error::new(ErrorType::ReadTimedout), None).code, 504);
        let io = |kind, text: &str| Box::new(std::io::Error::new(kind, text.to_string()));
        let refused = Error::because(
            ErrorType::ConnectRefused,
            "dial",
            io(std::io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)"),
        );
        let s = error_status(&refused, Some("127.0.0.1:9443"));
        assert_eq!((s.code, s.reason.as_str()), (503, "ServiceUnavailable"));
        assert_eq!(s.message, "error trying to reach service: dial tcp 127.0.0.1:9443: connect: connection refused");
        // TLS failures as crypto/tls words them
        let tls = |cause: &str| {
            let inner = Error::because(
                ErrorType::TLSHandshakeFailure,
                "tls connect error",
                io(std::io::ErrorKind::Other, cause),
            );
            let outer = Error::because(ErrorType::TLSHandshakeFailure, "TLS connect() failed", inner);
            error_status(&outer, Some("127.0.0.1:9443")).message
        };
        assert_eq!(
            tls("invalid peer certificate: UnknownIssuer"),
            "error trying to reach service: tls: failed to verify certificate: x509: certificate signed by unknown authority"
        );
        assert_eq!(
            tls("invalid peer certificate: Expired"),
            "error trying to reach service: tls: failed to verify certificate: x509: certificate has expired or is not yet valid"
        );
        assert_eq!(
            tls("received fatal alert: CertificateRequired"),
            "error trying to reach service: remote error: tls: certificate required"
        );
        let slow = Error::explain(ErrorType::TLSHandshakeTimedout, "handshake");
        assert_eq!(error_status(&slow, None).message, "error trying to reach service: net/http: TLS handshake timeout");
        // as pingora chains them: the proxy's context around the connection's error
        let reset = Error::because(
            ErrorType::ReadError,
            "while reading response headers",
            io(std::io::ErrorKind::ConnectionReset, "Connection reset by peer (os error 104)"),
        );
        let outer = Error::because(ErrorType::ReadError, "Peer: addr: 127.0.0.1:9443, scheme: HTTPS", reset);
        let s = error_status(&outer, Some("127.0.0.1:9443"));
        assert_eq!(s.message, "error trying to reach service: read tcp 127.0.0.1:9443: connection reset by peer");
        let eof = Error::because(
            ErrorType::ReadError,
            "while reading response headers",
            io(std::io::ErrorKind::UnexpectedEof, "peer closed connection without sending TLS close_notify: https://x"),
        );
        assert_eq!(error_status(&eof, None).message, "error trying to reach service: EOF");
        let garbage = Error::explain(ErrorType::InvalidHTTPHeader, "buf: \\x00\\x01 not HTTP\\r\\n\\r\\n{}");
        assert_eq!(
            error_status(&garbage, None).message,
            "error trying to reach service: net/http: HTTP/1.x transport connection broken: malformed HTTP response \"\\x00\\x01 not HTTP\""
        );
    }
}
