//! The timeout for non-long-running requests (kube's WithRequestDeadline and
//! WithTimeoutForNonLongRunningRequests): such a request that runs past `--request-timeout`
//! is answered 504. Watches and other long-running requests are exempt. A request may ask for
//! less with `?timeout=` (a Go duration); one that does not parse is a 400.

use crate::api::Status;
use crate::request_info::query::Query;
use crate::request_info::RequestInfo;
use std::time::Duration;

/// kube's message for a request cut off by the timeout filter.
pub fn status() -> Status {
    Status::timeout()
}

/// The request's own `?timeout=` in nanoseconds (None when absent or empty), or why it
/// does not parse.
fn requested(q: &Query) -> Result<Option<i64>, String> {
    match q.first("timeout") {
        None | Some("") => Ok(None),
        Some(v) => crate::api::duration::parse_go_duration(v).map(Some),
    }
}

/// The timeout filter, run once right after RequestInfo (before CORS and authentication): a
/// malformed `?timeout=` is kube's 400; otherwise the deadline the request runs under, None
/// for long-running requests. The chain keeps it in the context for the local handler and
/// the upstream proxy.
pub fn resolve(info: &RequestInfo, query: &Query, default: Duration) -> Result<Option<Duration>, Box<Status>> {
    if info.is_long_running() {
        return Ok(None);
    }
    let asked = requested(query)
        .map_err(|e| Box::new(Status::bad_request(format!("invalid timeout specified in the request URL - {e}"))))?;
    if default.is_zero() {
        return Ok(None);
    }
    // a zero, negative or larger request leaves the server's default
    let asked = asked.and_then(|ns| u64::try_from(ns).ok()).map(Duration::from_nanos);
    Ok(Some(asked.filter(|d| !d.is_zero() && *d < default).unwrap_or(default)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(query: Option<&str>) -> Query {
        Query::parse(query.unwrap_or(""))
    }

    fn deadline(info: &RequestInfo, query: Option<&str>, default: Duration) -> Option<Duration> {
        resolve(info, &parsed(query), default).unwrap()
    }

    fn check(info: &RequestInfo, query: Option<&str>) -> Option<Status> {
        resolve(info, &parsed(query), Duration::from_secs(60)).err().map(|s| *s)
    }

    #[test]
    fn long_running_exempt_and_query_shortens() {
        let d = Duration::from_secs(60);
        let watch = RequestInfo::resolve("GET", "/api/v1/pods", Some("watch=true")).unwrap();
        assert_eq!(deadline(&watch, Some("watch=true"), d), None);
        let exec = RequestInfo::resolve("POST", "/api/v1/namespaces/a/pods/p/exec", None).unwrap();
        assert_eq!(deadline(&exec, None, d), None);
        let get = RequestInfo::resolve("GET", "/api/v1/namespaces/a/pods/p", None).unwrap();
        assert_eq!(deadline(&get, None, d), Some(d));
        assert_eq!(deadline(&get, Some("timeout=5s"), d), Some(Duration::from_secs(5)));
        assert_eq!(deadline(&get, Some("timeout=5m"), d), Some(d));
        assert_eq!(deadline(&get, Some("timeout=0s"), d), Some(d));
        assert_eq!(deadline(&get, Some("timeout=-5s"), d), Some(d));
        assert_eq!(deadline(&get, Some("timeout=1.5s"), d), Some(Duration::from_millis(1500)));
        assert_eq!(deadline(&get, Some("timeout=5s&timeout=50s"), d), Some(Duration::from_secs(5)), "the first value");
        assert_eq!(status().code, 504);
    }

    #[test]
    fn malformed_timeout_is_a_400_except_on_long_running_requests() {
        let get = RequestInfo::resolve("GET", "/api/v1/namespaces/a/pods/p", None).unwrap();
        assert!(check(&get, Some("timeout=10s")).is_none());
        assert!(check(&get, Some("timeout=")).is_none());
        assert!(check(&get, None).is_none());
        let s = check(&get, Some("timeout=foo")).unwrap();
        assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"));
        assert_eq!(s.message, r#"invalid timeout specified in the request URL - time: invalid duration "foo""#);
        let s = check(&get, Some("timeout=10")).unwrap();
        assert_eq!(s.message, r#"invalid timeout specified in the request URL - time: missing unit in duration "10""#);
        let health = RequestInfo::resolve("GET", "/healthz", None).unwrap();
        assert!(check(&health, Some("timeout=x")).is_some(), "non-resource requests too");
        let watch = RequestInfo::resolve("GET", "/api/v1/pods", Some("watch=1")).unwrap();
        assert!(check(&watch, Some("watch=1&timeout=x")).is_none(), "a watch reads timeoutSeconds instead");
    }
}
