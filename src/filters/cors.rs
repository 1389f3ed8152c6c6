//! CORS, as kube's WithCORS: `--cors-allowed-origins` are regular expressions matched
//! against the Origin header (unanchored, like Go's MatchString); an allowed origin gets
//! the Access-Control-* headers, and its preflight OPTIONS is answered 204 at once.

use pingora::http::{RequestHeader, ResponseHeader};
use regex::Regex;

const ALLOWED_METHODS: &str = "POST, GET, OPTIONS, PUT, DELETE, PATCH";
const ALLOWED_HEADERS: &str =
    "Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token, Authorization, X-Requested-With, If-Modified-Since";
const EXPOSED_HEADERS: &str = "Date";

#[derive(Debug, Default)]
pub struct Cors {
    origins: Vec<Regex>,
}

impl Cors {
    pub fn new(patterns: &[String]) -> anyhow::Result<Self> {
        let origins = patterns
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| {
                Regex::new(p)
                    .map_err(|e| anyhow::anyhow!("--cors-allowed-origins: invalid regular expression {p:?}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Cors { origins })
    }

    fn allowed_origin<'a>(&self, req: &'a RequestHeader) -> Option<&'a str> {
        if self.origins.is_empty() {
            return None;
        }
        let origin = req.headers.get("Origin")?.to_str().ok()?;
        self.origins.iter().any(|re| re.is_match(origin)).then_some(origin)
    }

    /// Adds the CORS headers when the request's origin is allowed.
    pub fn add_headers(&self, req: &RequestHeader, h: &mut ResponseHeader) {
        if let Some(origin) = self.allowed_origin(req) {
            let _ = h.insert_header("Access-Control-Allow-Origin", origin);
            let _ = h.insert_header("Access-Control-Allow-Methods", ALLOWED_METHODS);
            let _ = h.insert_header("Access-Control-Allow-Headers", ALLOWED_HEADERS);
            let _ = h.insert_header("Access-Control-Expose-Headers", EXPOSED_HEADERS);
            let _ = h.insert_header("Access-Control-Allow-Credentials", "true");
        }
    }

    /// A preflight from an allowed origin is answered here with 204 (headers added on send).
    pub fn is_preflight(&self, req: &RequestHeader) -> bool {
        req.method == http::Method::OPTIONS && self.allowed_origin(req).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, origin: Option<&str>) -> RequestHeader {
        let mut r = RequestHeader::build(method, b"/api", None).unwrap();
        if let Some(o) = origin {
            r.insert_header("Origin", o).unwrap();
        }
        r
    }

    #[test]
    fn regex_origins() {
        let cors = Cors::new(&["^https://.*\\.example\\.com$".into(), "//localhost(:|$)".into()]).unwrap();
        assert!(cors.is_preflight(&req("OPTIONS", Some("https://a.example.com"))));
        assert!(cors.is_preflight(&req("OPTIONS", Some("http://localhost:8080"))));
        assert!(!cors.is_preflight(&req("OPTIONS", Some("https://evil.com"))));
        assert!(!cors.is_preflight(&req("GET", Some("https://a.example.com"))));
        assert!(!cors.is_preflight(&req("OPTIONS", None)));
        let mut h = ResponseHeader::build(200, None).unwrap();
        cors.add_headers(&req("GET", Some("https://a.example.com")), &mut h);
        assert_eq!(h.headers.get("Access-Control-Allow-Origin").unwrap(), "https://a.example.com");
        assert_eq!(h.headers.get("Access-Control-Allow-Credentials").unwrap(), "true");
        let mut h = ResponseHeader::build(200, None).unwrap();
        cors.add_headers(&req("GET", Some("https://evil.com")), &mut h);
        assert!(h.headers.get("Access-Control-Allow-Origin").is_none());
    }

    #[test]
    fn disabled_without_patterns_and_bad_regex_rejected() {
        assert!(!Cors::new(&[]).unwrap().is_preflight(&req("OPTIONS", Some("https://a"))));
        assert!(Cors::new(&["(".into()]).is_err());
    }
}
