//! Header names as a backend may read them. CGI, WSGI and Rack servers present `X_Remote_User`
//! and `X-Remote-User` as one variable (`HTTP_X_REMOTE_USER`), so a header that claims an
//! identity is recognised with ASCII case folded and `_` read as `-`: a client cannot slip one
//! past the stripping under an underscore spelling.

/// `name` equals `want` under the backend reading (case folded, `_` as `-`).
pub fn name_eq(name: &str, want: &str) -> bool {
    name.len() == want.len() && name_has_prefix(name, want)
}

/// `name` starts with `prefix` under the backend reading.
pub fn name_has_prefix(name: &str, prefix: &str) -> bool {
    let fold = |b: u8| if b == b'_' { b'-' } else { b.to_ascii_lowercase() };
    name.len() >= prefix.len() && name.bytes().zip(prefix.bytes()).all(|(a, b)| fold(a) == fold(b))
}

/// A header no client may pass on: its credentials, or a claim of who it is or acts as
/// (`Authorization`, `Impersonate-*`, `X-Remote-*`).
pub fn is_identity(name: &str) -> bool {
    name_eq(name, "authorization") || name_has_prefix(name, "impersonate-") || name_has_prefix(name, "x-remote-")
}

/// A header value as Go reads it: its bytes as a string (UTF-8 as it is, other bytes lossily),
/// never skipped for not being ASCII.
pub fn value_text(v: &http::HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

/// A GET with `headers`, in order (tests of what a stage reads from a request's headers).
#[cfg(test)]
pub fn request_with(headers: &[(&str, &str)]) -> pingora::http::RequestHeader {
    let mut r = pingora::http::RequestHeader::build("GET", b"/apis/g/v1/things", None).unwrap();
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).unwrap();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underscores_and_case_read_as_a_backend_reads_them() {
        for n in [
            "authorization",
            "Authorization",
            "x-remote-user",
            "X_Remote_User",
            "x_remote-group",
            "x-remote_extra-scopes",
            "impersonate-user",
            "Impersonate_Group",
            "impersonate_extra_foo",
        ] {
            assert!(is_identity(n), "{n}");
        }
        for n in ["authorizations", "x-remotes", "x-remote", "impersonate", "accept", "x-request-id", "x_forwarded_for"]
        {
            assert!(!is_identity(n), "{n}");
        }
        assert!(name_eq("X_Custom_User", "x-custom-user"));
        assert!(!name_eq("x-custom-user2", "x-custom-user"));
        assert!(name_has_prefix("x_acme_extra_scope", "X-Acme-Extra-"));
    }
}
