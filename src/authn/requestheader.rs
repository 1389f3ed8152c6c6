//! The authenticating proxy (front-proxy): identity headers are believed only from a client
//! certificate verified by `--requestheader-client-ca-file` (and, when
//! `--requestheader-allowed-names` is set, with one of those CNs). From anyone else they are
//! ignored, and they are always removed from the request.

use super::user::UserInfo;
use crate::api::headers;
use crate::tls::{CaRole, ClientCas, PeerIdentity};
use pingora::http::RequestHeader;

#[derive(Debug, Clone, Default)]
pub struct RequestHeaderAuth {
    pub username_headers: Vec<String>,
    pub uid_headers: Vec<String>,
    pub group_headers: Vec<String>,
    pub extra_prefixes: Vec<String>,
    pub allowed_names: Vec<String>,
}

impl RequestHeaderAuth {
    /// `Ok(None)` when the request is not from a verified proxy or names no user; an error
    /// when its certificate is past its validity (kube's verifier fails such a request, and
    /// the x509 authenticator would too).
    pub fn authenticate(
        &self,
        peer: Option<&PeerIdentity>,
        cas: Option<&ClientCas>,
        req: &RequestHeader,
    ) -> Result<Option<UserInfo>, String> {
        let Some(peer) = peer else { return Ok(None) };
        if !peer.verified_by(cas)?.contains(&CaRole::RequestHeaderCa) {
            return Ok(None);
        }
        if !self.allowed_names.is_empty() && !self.allowed_names.iter().any(|n| n == peer.common_name()) {
            return Err(format!("x509: subject with cn={} is not in the allowed list", peer.common_name()));
        }
        let h = &req.headers;
        // values as Go reads them, never skipped for not being ASCII
        let text = headers::value_text;
        // kube's headerValue: each name's first value (`Header.Get`), the first name that has
        // a non-empty one; a second value of the same name is never read in its place
        let first = |names: &[String]| names.iter().filter_map(|n| h.get(n.as_str()).map(text)).find(|v| !v.is_empty());
        let Some(username) = first(&self.username_headers) else {
            return Ok(None);
        };
        let uid = first(&self.uid_headers).unwrap_or_default();
        let mut groups = Vec::new();
        for n in &self.group_headers {
            groups.extend(h.get_all(n.as_str()).iter().map(text).filter(|v| !v.is_empty()));
        }
        let mut u = UserInfo { username, uid, groups, ..Default::default() };
        for prefix in &self.extra_prefixes {
            let prefix = prefix.to_ascii_lowercase();
            for (name, value) in h.iter() {
                let Some(key) = name.as_str().strip_prefix(prefix.as_str()) else {
                    continue;
                };
                u.extra.entry(unescape_extra_key(key)).or_default().push(text(value));
            }
        }
        Ok(Some(u))
    }

    /// Removes every header this authenticator reads (and kubeadm's usual ones), so they
    /// never reach a later stage or a backend; underscore spellings too (`api::headers`).
    pub fn strip(&self, req: &mut RequestHeader) {
        // header names are stored lowercase; compared in place, nothing is allocated per
        // request unless a header is to go
        let drop: Vec<http::HeaderName> = req
            .headers
            .keys()
            .filter(|k| {
                let k = k.as_str();
                headers::name_has_prefix(k, "x-remote-")
                    || self
                        .username_headers
                        .iter()
                        .chain(&self.uid_headers)
                        .chain(&self.group_headers)
                        .any(|h| headers::name_eq(k, h))
                    || self.extra_prefixes.iter().any(|p| headers::name_has_prefix(k, p))
            })
            .cloned()
            .collect();
        for k in &drop {
            req.remove_header(k);
        }
    }
}

/// kube's `unescapeExtraKey`: percent-decoded, or as is when that fails.
pub fn unescape_extra_key(key: &str) -> String {
    match percent_encoding::percent_decode_str(key).decode_utf8() {
        Ok(s) => s.into_owned(),
        Err(_) => key.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> RequestHeaderAuth {
        RequestHeaderAuth {
            username_headers: vec!["X-Remote-User".into()],
            uid_headers: vec!["X-Remote-Uid".into()],
            group_headers: vec!["X-Remote-Group".into()],
            extra_prefixes: vec!["X-Remote-Extra-".into()],
            allowed_names: vec!["front-proxy-client".into()],
        }
    }

    fn req() -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/api", None).unwrap();
        r.append_header("X-Remote-User", "alice").unwrap();
        r.append_header("X-Remote-Group", "a").unwrap();
        r.append_header("X-Remote-Group", "b").unwrap();
        r.append_header("X-Remote-Extra-Acme.com%2fproject", "p1").unwrap();
        r
    }

    fn peer(cn: &str, role: CaRole) -> PeerIdentity {
        PeerIdentity::new(cn.into(), Vec::new(), [role].into())
    }

    #[test]
    fn trusted_proxy() {
        let u = auth()
            .authenticate(Some(&peer("front-proxy-client", CaRole::RequestHeaderCa)), None, &req())
            .unwrap()
            .unwrap();
        assert_eq!(u.username, "alice");
        assert_eq!(u.groups, vec!["a", "b"]);
        assert_eq!(u.extra["acme.com/project"], vec!["p1"]);
    }

    /// As kube's `headerValue`: a name's first value only, whatever its bytes.
    #[test]
    fn the_first_value_as_go_reads_it() {
        let user = |values: &[&[u8]]| {
            let mut r = RequestHeader::build("GET", b"/api", None).unwrap();
            for v in values {
                r.append_header("X-Remote-User", http::HeaderValue::from_bytes(v).unwrap()).unwrap();
            }
            r.append_header("X-Remote-Group", "jürgens").unwrap();
            let got =
                auth().authenticate(Some(&peer("front-proxy-client", CaRole::RequestHeaderCa)), None, &r).unwrap();
            got.map(|u| (u.username, u.groups))
        };
        let groups = vec!["jürgens".to_string()];
        assert_eq!(user(&["jürgen".as_bytes()]), Some(("jürgen".into(), groups.clone())));
        assert_eq!(user(&["jürgen".as_bytes(), b"injected-admin"]), Some(("jürgen".into(), groups)));
        assert_eq!(user(&[b"", b"injected-admin"]), None, "an empty first value names no user");
    }

    #[test]
    fn untrusted_clients_are_ignored_and_stripped() {
        let a = auth();
        assert_eq!(a.authenticate(None, None, &req()), Ok(None));
        assert_eq!(a.authenticate(Some(&peer("front-proxy-client", CaRole::ClientCa)), None, &req()), Ok(None));
        let e = a.authenticate(Some(&peer("mallory", CaRole::RequestHeaderCa)), None, &req()).unwrap_err();
        assert_eq!(e, "x509: subject with cn=mallory is not in the allowed list");
        let mut r = req();
        r.append_header("X-Remote-Whatever", "x").unwrap();
        r.append_header("X_Remote_User", "x").unwrap();
        r.append_header("x-remote_group", "x").unwrap();
        a.strip(&mut r);
        assert!(
            r.headers.keys().all(|k| !crate::api::headers::name_has_prefix(k.as_str(), "x-remote-")),
            "{:?}",
            r.headers
        );
    }
}
