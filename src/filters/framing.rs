//! Request framing as Go's net/http checks it before kube-apiserver sees a request: a
//! `Content-Length` must be one decimal number (several headers only with the same number),
//! a `Transfer-Encoding` one header saying `chunked` and nothing else, and the target must be
//! one the chain reads as the client wrote it (`check_target`; an HTTP/1.x request line Go
//! cannot read is refused earlier, by the connection loop, see `go_refuses_request_line`).
//! A proxy and a backend that read a request differently are how requests are smuggled, so
//! such a request is refused, plain text as Go answers, and its connection closed.

use super::Reply;
use pingora::http::RequestHeader;

/// The announced body length (None without one, or past usize), or Go's 400 for a malformed
/// `Content-Length` or a target that is no path, or its 501 for a transfer coding it does not
/// take.
pub fn check(req: &RequestHeader) -> Result<Option<usize>, Reply> {
    check_target(req)?;
    // Go's readRequest: an HTTP/1.1 request names one host (HTTP/2's is its :authority)
    if req.version == http::Version::HTTP_11 {
        match req.headers.get_all(http::header::HOST).iter().count() {
            0 => return Err(Reply::text(400, "400 Bad Request: missing required Host header")),
            1 => {}
            _ => return Err(Reply::text(400, "400 Bad Request: too many Host headers")),
        }
    }
    // Go takes one Transfer-Encoding header, `chunked` (nginx's rule): `chunked, chunked`,
    // `gzip, chunked` or two headers are read differently by different servers
    let mut codings = req.headers.get_all(http::header::TRANSFER_ENCODING).iter();
    match (codings.next(), codings.next()) {
        (None, _) => {}
        (Some(c), None) if c.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") => {}
        _ => return Err(Reply::text(501, "Unsupported transfer encoding")),
    }
    let mut length: Option<&[u8]> = None;
    for v in req.headers.get_all(http::header::CONTENT_LENGTH) {
        let v = v.as_bytes().trim_ascii();
        let digits = !v.is_empty() && v.iter().all(u8::is_ascii_digit);
        if !digits || length.is_some_and(|l| l != v) {
            return Err(Reply::text(400, "400 Bad Request"));
        }
        length = Some(v);
    }
    Ok(length.and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()))
}

/// Refuses a request target other than an origin-form path, `*`, or an absolute-form `http` or
/// `https` URL (whose path pingora reads as Go does). pingora reads any other target (`foo`,
/// `x:/api/v1/secrets`, an authority-form) as `/`, where Go refuses it or, for a scheme-like
/// one, serves the path after the scheme: neither reading is the one the chain would authorize,
/// so the request goes no further, with Go's answer to a target it cannot read.
///
/// The URI's path must be there too: a target of only a fragment (`#x`) is left empty by
/// pingora, which then sends it as `/`.
fn check_target(req: &RequestHeader) -> Result<(), Reply> {
    let t = req.raw_path();
    let origin = t.first() == Some(&b'/') || t == b"*";
    let absolute = |scheme: &[u8]| t.len() > scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme);
    if (origin || absolute(b"http://") || absolute(b"https://")) && !req.uri.path().is_empty() {
        Ok(())
    } else {
        Err(Reply::text(400, "400 Bad Request"))
    }
}

/// Whether Go's server refuses an HTTP/1.x request line, as the client sent it (its `\n` off),
/// before any handler sees it (`readRequest`, answered with [`GO_BAD_REQUEST`] and the
/// connection closed): one that `parseRequestLine` cannot cut into method SP target SP version
/// (a space in the target, a doubled or trailing space: Go's target then ends at the second
/// space and the rest is no version), a method that is no token (`validMethod`), a version that
/// is not `HTTP/` digit `.` digit (`ParseHTTPVersion`), or a target `url.ParseRequestURI`
/// refuses ([`request_uri`]). pingora does not refuse all of these: when
/// httparse rejects the line it percent-encodes spaces and control bytes in what it takes for
/// the target (`escape_illegal_request_line`), so `/de v` was served as `/de%20v` and `/de\x00v`
/// as the legal escape `/de%00v`, and it reads a malformed escape (`%zz`) as the path's bytes.
/// Only the connection loop (`crate::connection`) holds the line as sent, so it asks this.
/// Which forms of target are served (a path, `*`, an `http(s)` URL) stays [`check_target`]'s,
/// for HTTP/2 as well.
pub fn go_refuses_request_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return true;
    };
    let token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    let version_ok = matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit());
    // a CONNECT's target is an authority, which Go reads as the URL `http://` followed by it
    let uri_ok = if method == b"CONNECT" && !target.starts_with(b"/") {
        request_uri(&[&b"http://"[..], target].concat())
    } else {
        request_uri(target)
    };
    method.is_empty() || !method.iter().all(token) || !version_ok || !uri_ok
}

/// Whether `url.ParseRequestURI` takes a request target: no control byte (0x00-0x1f, 0x7f: "net/url:
/// invalid control character in URL"), not empty, a scheme before a `:` if any (`:/x` is "missing
/// protocol scheme"), a path starting with `/` unless there is a scheme or it is `*` ("invalid URI
/// for request"; with one, a rest not starting with `/` is an opaque URL taken as it is), and every
/// `%` before the query (an absolute URL's authority included) followed by two hex digits
/// (`unescape`'s "invalid URL escape"). Bytes past 0x7f are taken, as Go takes them; so is
/// anything in the query. (The rest of Go's host rules, the characters a host may hold, are
/// not checked here: such a host is left to pingora and the router.)
fn request_uri(target: &[u8]) -> bool {
    if target == b"*" {
        return true;
    }
    if target.is_empty() || target.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return false;
    }
    // getScheme: letters, then letters, digits, `+-.`, up to a `:`
    let scheme_end = target.iter().position(|&b| !(b.is_ascii_alphanumeric() || b"+-.".contains(&b)));
    let rest = match scheme_end {
        Some(0) if target[0] == b':' => return false,
        Some(i) if target[i] == b':' && target[0].is_ascii_alphabetic() => &target[i + 1..],
        _ => target,
    };
    let scheme = rest.len() < target.len();
    // an absolute URL's authority too: Go unescapes its user info and host as it does the path
    let path = rest.split(|&b| b == b'?').next().unwrap_or_default();
    if !path.starts_with(b"/") {
        // with a scheme, an opaque URL (`x:y`), taken as it is
        return scheme;
    }
    path.split(|&b| b == b'%').skip(1).all(|after| after.len() >= 2 && after[..2].iter().all(u8::is_ascii_hexdigit))
}

/// Whether Go's HTTP/2 server refuses this request with a stream error (RST_STREAM
/// PROTOCOL_ERROR) before any handler (x/net/http2 `newWriterAndRequest`: "All HTTP/2 requests
/// MUST include exactly one valid value for the :method, :scheme, and :path"): a `:scheme`
/// other than `https` or `http` (Go compares it as sent; the http crate reads `HTTPS` as `https`,
/// so that one is taken), or a `:path` [`request_uri`] refuses (a
/// malformed `%` escape; `newWriterAndRequestNoBody`'s `bad_path`). The h2 crate takes any
/// well-formed scheme and such a path, so `:scheme: foo` and `/a%zz` were served. A missing
/// `:scheme` or `:path`, an empty one, or a path the http crate cannot read are reset by the
/// h2 crate and pingora already. The h2 crate keeps `:scheme` only with an `:authority`: without
/// one this cannot see it (pingora then answers 400 unless a Host header names the host).
pub fn h2_stream_refused(req: &RequestHeader) -> bool {
    req.version == http::Version::HTTP_2
        && req.method != http::Method::CONNECT
        && (req.uri.scheme_str().is_some_and(|s| s != "https" && s != "http") || !request_uri(req.raw_path()))
}

/// What Go's `conn.serve` writes for a request it cannot read (its `publicErr`), before closing
/// the connection.
pub const GO_BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_go_cannot_read_is_refused() {
        for bad in [
            // control bytes in the target or after it
            &b"GET /api/v1/namespaces/de\x00v/configmaps HTTP/1.1"[..],
            b"GET /api/v1/namespaces/de\rv/configmaps HTTP/1.1",
            b"GET /api/v1/namespaces/default/secrets/x\x7f HTTP/1.1\r",
            b"GET /api/v1/pods?labelSelector=a\x01b HTTP/1.1",
            b"GET /api\t/v1 HTTP/1.1",
            b"GET /api/v1 x\x1f HTTP/1.1",
            b"GET /api/v1 HTTP/1.1\x00",
            // not method SP target SP version
            b"GET /api/v1/namespaces/de v/configmaps HTTP/1.1",
            b"GET /api/v1 HTTP/1.1 ",
            b"GET  /api/v1 HTTP/1.1",
            b"GET /api/v1  HTTP/1.1",
            b" GET /api/v1 HTTP/1.1",
            b"GET /api/v1",
            b"GET /api/v1 HTTP/1.1\r\r",
            b"GET",
            b"",
            // a method that is no token
            b"G(T /api/v1 HTTP/1.1",
            b"G\x01T /api/v1 HTTP/1.1",
            b"G\xc3\x89T /api/v1 HTTP/1.1",
            // a version that is not HTTP/d.d
            b"GET /api/v1 http/1.1",
            b"GET /api/v1 HTTP/1",
            b"GET /api/v1 HTTP/1.10",
            b"GET /api/v1 HTTP/x.1",
            // a target url.ParseRequestURI refuses for its bytes
            b"GET :/api/v1 HTTP/1.1",
            b"GET /api/v1/namespaces/a%zz/configmaps HTTP/1.1",
            b"GET /api/v1/namespaces/a% HTTP/1.1",
            b"GET /api/v1/namespaces/a%4 HTTP/1.1",
            b"GET /a%%41 HTTP/1.1",
            b"GET https://h/a%g1?x=1 HTTP/1.1",
            b"GET https://h%zz/a HTTP/1.1",
            b"GET foo HTTP/1.1",
            b"GET ?x HTTP/1.1",
            b"GET 1:/api HTTP/1.1",
            b"CONNECT h:443/%zz HTTP/1.1",
        ] {
            assert!(go_refuses_request_line(bad), "{}", bad.escape_ascii());
        }
        // percent-encoded bytes are escapes like any other; the line's own CR is its ending; Go
        // takes bytes past 0x7f, any token method and version, a bad escape in the query, and
        // leaves which targets are served to check_target
        for ok in [
            &b"GET /api/v1/namespaces/de%00v/configmaps HTTP/1.1"[..],
            b"GET /api/v1/namespaces/default/secrets/x%7F%0D%0A HTTP/1.1\r",
            b"GET /caf\xc3\xa9 HTTP/1.1",
            b"GET /a\"<>{}|\\^` HTTP/1.0",
            b"get /a?x=%zz&y=% HTTP/1.1",
            b"M-S.E_A!R#C$H /a HTTP/1.1",
            b"GET /a HTTP/1.2",
            b"GET /a HTTP/2.0",
            b"GET * HTTP/1.1",
            b"GET //h/x%41 HTTP/1.1",
            b"GET x:/api HTTP/1.1",
            b"GET x:opaque%zz HTTP/1.1",
            b"CONNECT 10.0.0.1:443 HTTP/1.1",
            b"CONNECT /rpc HTTP/1.1",
        ] {
            assert!(!go_refuses_request_line(ok), "{}", ok.escape_ascii());
        }
    }

    #[test]
    fn an_http2_request_with_a_scheme_or_path_go_refuses_is_a_stream_error() {
        let h2 = |method: &str, uri: &str| {
            let mut r = RequestHeader::build(method, uri.as_bytes(), None).unwrap();
            r.set_version(http::Version::HTTP_2);
            r.set_uri(uri.parse().unwrap());
            h2_stream_refused(&r)
        };
        // (an upper-case `HTTPS`, which Go refuses too, the http crate reads as `https`)
        for bad in ["foo://h/api", "wss://h/api", "https://h/api/v1/namespaces/a%zz", "/a%4"] {
            assert!(h2("GET", bad), "{bad}");
        }
        for ok in ["https://h/api", "http://h/api?x=%zz", "/api/v1/namespaces/a%20b", "*"] {
            assert!(!h2("GET", ok), "{ok}");
        }
        // HTTP/1.x is the connection loop's
        let r = RequestHeader::build("GET", b"/a%zz", None).unwrap();
        assert!(!h2_stream_refused(&r));
    }

    #[test]
    fn a_target_is_a_path_or_an_http_url() {
        for ok in [&b"/api/v1/pods?watch=1"[..], b"//h/x", b"*", b"https://h/api/v1/pods", b"HTTP://h:8080/x"] {
            let r = RequestHeader::build("GET", ok, None).unwrap();
            assert!(check_target(&r).is_ok(), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b"x:/api/v1/namespaces/kube-system/secrets"[..],
            b"foo",
            b"h:443",
            b"foo:bar://h/api",
            b"https:/api",
            b"#x",
        ] {
            let Ok(r) = RequestHeader::build("GET", bad, None) else { continue };
            assert_eq!(check_target(&r).unwrap_err().code, 400, "{}", String::from_utf8_lossy(bad));
        }
    }

    fn req(lengths: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/api/v1/namespaces/a/configmaps", None).unwrap();
        r.append_header("Host", "a").unwrap();
        for l in lengths {
            r.append_header("Content-Length", *l).unwrap();
        }
        r
    }

    #[test]
    fn one_decimal_length_only() {
        for ok in [&[][..], &["0"], &["12"], &["12", "12"], &[" 7 "]] {
            assert!(check(&req(ok)).is_ok(), "{ok:?}");
        }
        for bad in [&["5, 5"][..], &["5,5"], &["+5"], &["-1"], &["0x10"], &[""], &["5", "6"], &["1e3"]] {
            assert_eq!(check(&req(bad)).unwrap_err().code, 400, "{bad:?}");
        }
    }

    #[test]
    fn one_chunked_coding_only() {
        let te = |values: &[&str]| {
            let mut r = RequestHeader::build("POST", b"/api/v1/namespaces/a/configmaps", None).unwrap();
            r.append_header("Host", "a").unwrap();
            for v in values {
                r.append_header("Transfer-Encoding", *v).unwrap();
            }
            check(&r).map(drop).map_err(|e| e.code)
        };
        for ok in [&[][..], &["chunked"], &["Chunked"], &[" chunked "]] {
            assert_eq!(te(ok), Ok(()), "{ok:?}");
        }
        for bad in
            [&["chunked, chunked"][..], &["gzip, chunked"], &["identity, chunked"], &["chunked", "chunked"], &["gzip"]]
        {
            assert_eq!(te(bad), Err(501), "{bad:?}");
        }
    }

    /// Go's readRequest: an HTTP/1.1 request names exactly one host; HTTP/2's is its :authority.
    #[test]
    fn an_http11_request_names_one_host() {
        let hosts = |version: http::Version, hosts: &[&str]| {
            let mut r = RequestHeader::build("GET", b"/api", None).unwrap();
            r.set_version(version);
            for h in hosts {
                r.append_header("Host", *h).unwrap();
            }
            check(&r).map(drop).map_err(|e| String::from_utf8_lossy(&e.body).into_owned())
        };
        assert_eq!(hosts(http::Version::HTTP_11, &["a"]), Ok(()));
        assert_eq!(hosts(http::Version::HTTP_11, &[]), Err("400 Bad Request: missing required Host header".into()));
        assert_eq!(hosts(http::Version::HTTP_11, &["a", "b"]), Err("400 Bad Request: too many Host headers".into()));
        assert_eq!(hosts(http::Version::HTTP_10, &[]), Ok(()));
        assert_eq!(hosts(http::Version::HTTP_2, &[]), Ok(()));
    }

    /// The length the chain keeps for the body's reader (`request_body`), read here once.
    #[test]
    fn the_announced_length_is_handed_on() {
        assert_eq!(check(&req(&[])).ok(), Some(None));
        assert_eq!(check(&req(&["12", "12"])).ok(), Some(Some(12)));
        assert_eq!(check(&req(&[" 7 "])).ok(), Some(Some(7)));
        assert_eq!(check(&req(&["99999999999999999999999"])).ok(), Some(None), "well-formed, past usize");
    }
}
