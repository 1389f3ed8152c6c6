//! kube's WebSocket protocol authenticator (k8s.io/apiserver's `request/websocket`): a browser
//! cannot set `Authorization` on a WebSocket, so its bearer token may come as a subprotocol,
//! `base64url.bearer.authorization.k8s.io.<the token, unpadded base64url>`, beside the one the
//! client speaks. The token is taken out of `Sec-WebSocket-Protocol` here, whatever the
//! outcome, so that no later stage, log or backend ever reads it.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use http::header::{CONNECTION, SEC_WEBSOCKET_PROTOCOL, UPGRADE};
use pingora::http::RequestHeader;

const BEARER_PROTOCOL_PREFIX: &[u8] = b"base64url.bearer.authorization.k8s.io.";

/// Go's `base64.RawURLEncoding`: no padding, and non-zero trailing bits allowed.
const RAW_URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// What a WebSocket request's subprotocols carry when one of them is a bearer token.
#[derive(Debug, PartialEq, Eq)]
pub struct BearerProtocol {
    /// The token (empty: none, as kube reads an empty one), or why the subprotocols hold no
    /// usable one, in kube's words.
    pub token: Result<String, String>,
    /// The other subprotocols, comma-joined, which is what goes on.
    others: Vec<u8>,
}

/// kube's `wsstream.IsWebSocketRequest`: `Upgrade` is `websocket` and `Connection` names
/// `upgrade` (their first values, as Go's `Header.Get` reads them).
fn is_websocket(req: &RequestHeader) -> bool {
    let first = |name| req.headers.get(name).map(|v: &http::HeaderValue| v.as_bytes());
    first(UPGRADE).is_some_and(|u| u.trim_ascii().eq_ignore_ascii_case(b"websocket"))
        && first(CONNECTION)
            .is_some_and(|c| c.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade")))
}

/// The bearer token a WebSocket request carries as a subprotocol; None when it is no WebSocket
/// request or has no such subprotocol. kube's errors: a second token, a token that is not
/// base64url or not UTF-8, and a token with no other subprotocol to answer with.
pub fn read(req: &RequestHeader) -> Option<BearerProtocol> {
    if !is_websocket(req) {
        return None;
    }
    let (mut seen, mut token) = (false, Ok(String::new()));
    let mut others: Vec<&[u8]> = Vec::new();
    // every value of the header, each a comma-separated list (RFC 6455 11.3.4)
    for value in req.headers.get_all(SEC_WEBSOCKET_PROTOCOL) {
        for protocol in value.as_bytes().split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            let Some(encoded) = protocol.strip_prefix(BEARER_PROTOCOL_PREFIX) else {
                others.push(protocol);
                continue;
            };
            // the first error stands, as kube returns at it; later tokens are still taken out
            if token.is_ok() {
                token = match seen {
                    true => Err("multiple base64.bearer.authorization tokens specified".to_string()),
                    false => decode(encoded),
                };
            }
            seen = true;
        }
    }
    if !seen {
        return None;
    }
    let token = token.and_then(|t| match !t.is_empty() && others.is_empty() {
        true => Err("missing additional subprotocol".to_string()),
        false => Ok(t),
    });
    Some(BearerProtocol { token, others: others.join(&b","[..]) })
}

fn decode(encoded: &[u8]) -> Result<String, String> {
    let bytes =
        RAW_URL.decode(encoded).map_err(|_| "invalid base64.bearer.authorization token encoding".to_string())?;
    String::from_utf8(bytes).map_err(|_| "invalid base64.bearer.authorization token".to_string())
}

/// Leaves the request's other subprotocols only (no header when there are none). kube takes
/// the token out once it authenticated; here it goes whatever the outcome, so that a token the
/// union did not use (`Authorization` authenticated first) is not passed on either.
pub fn strip(req: &mut RequestHeader, read: &BearerProtocol) {
    req.remove_header(&SEC_WEBSOCKET_PROTOCOL);
    if read.others.is_empty() {
        return;
    }
    // the other subprotocols are bytes the request's own header held
    if let Ok(v) = http::HeaderValue::from_bytes(&read.others) {
        let _ = req.insert_header(SEC_WEBSOCKET_PROTOCOL, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(protocols: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/api/v1/namespaces/a/pods/p/exec", None).unwrap();
        r.insert_header("Connection", "keep-alive, Upgrade").unwrap();
        r.insert_header("Upgrade", "websocket").unwrap();
        for p in protocols {
            r.append_header("Sec-WebSocket-Protocol", *p).unwrap();
        }
        r
    }

    fn bearer(token: &str) -> String {
        format!("base64url.bearer.authorization.k8s.io.{}", RAW_URL.encode(token))
    }

    fn token(r: &RequestHeader) -> Option<Result<String, String>> {
        read(r).map(|b| b.token)
    }

    #[test]
    fn a_token_beside_another_subprotocol_is_read_and_taken_out() {
        let mut r = ws(&[&format!("{}, v4.channel.k8s.io", bearer("s3cret")), "v5.channel.k8s.io"]);
        let b = read(&r).unwrap();
        assert_eq!(b.token, Ok("s3cret".to_string()));
        strip(&mut r, &b);
        let left: Vec<_> = r.headers.get_all("sec-websocket-protocol").iter().collect();
        assert_eq!(left, ["v4.channel.k8s.io,v5.channel.k8s.io"]);
    }

    /// kube's errors, each a 401 unless another credential authenticates.
    #[test]
    fn what_kube_refuses_is_an_error() {
        let two = [bearer("a"), bearer("b"), "v4.channel.k8s.io".to_string()];
        let cases = [
            (vec![bearer("a"), bearer("b"), "x".into()], "multiple base64.bearer.authorization tokens specified"),
            (
                vec!["base64url.bearer.authorization.k8s.io.not*base64".into(), "x".into()],
                "invalid base64.bearer.authorization token encoding",
            ),
            (
                vec!["base64url.bearer.authorization.k8s.io.czNjcmV0PQ==".into(), "x".into()],
                "invalid base64.bearer.authorization token encoding",
            ),
            (
                vec![format!("base64url.bearer.authorization.k8s.io.{}", RAW_URL.encode([0xff, 0xfe])), "x".into()],
                "invalid base64.bearer.authorization token",
            ),
            (vec![bearer("alone")], "missing additional subprotocol"),
        ];
        for (protocols, want) in cases {
            let refs: Vec<&str> = protocols.iter().map(String::as_str).collect();
            assert_eq!(token(&ws(&refs)), Some(Err(want.to_string())), "{protocols:?}");
        }
        // every token is taken out, the erroneous ones too
        let mut r = ws(&two.iter().map(String::as_str).collect::<Vec<_>>());
        let b = read(&r).unwrap();
        strip(&mut r, &b);
        assert_eq!(r.headers.get("sec-websocket-protocol").unwrap(), "v4.channel.k8s.io");
    }

    #[test]
    fn no_token_no_websocket_or_an_empty_token_is_no_credential() {
        assert_eq!(token(&ws(&["v4.channel.k8s.io"])), None);
        // an empty token is none, with or without another subprotocol (kube: not a credential)
        assert_eq!(token(&ws(&["base64url.bearer.authorization.k8s.io."])), Some(Ok(String::new())));
        // not a WebSocket request: the subprotocol header is left alone
        let mut r = ws(&[&bearer("s3cret"), "x"]);
        r.insert_header("Upgrade", "SPDY/3.1").unwrap();
        assert_eq!(token(&r), None);
        let mut r = ws(&[&bearer("s3cret"), "x"]);
        r.insert_header("Connection", "keep-alive").unwrap();
        assert_eq!(token(&r), None);
    }

    /// The token goes whether or not anything else is left: with no other subprotocol, the
    /// header goes too.
    #[test]
    fn a_lone_token_leaves_no_header() {
        let mut r = ws(&[&bearer("s3cret")]);
        let b = read(&r).unwrap();
        strip(&mut r, &b);
        assert!(r.headers.get("sec-websocket-protocol").is_none());
    }
}
