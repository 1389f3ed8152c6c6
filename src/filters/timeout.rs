//! The timeout for non-long-running requests (kube's WithTimeoutForNonLongRunningRequests):
//! such a request that runs past `--request-timeout` is answered 504. Watches and other
//! long-running requests are exempt. A request may ask for less with `?timeout=`.

use crate::api::Status;
use crate::request_info::RequestInfo;
use std::time::Duration;

/// kube's message for a request cut off by the timeout filter.
pub fn status() -> Status {
    Status::timeout()
}

/// The deadline for this request, or None for long-running requests.
pub fn deadline(info: &RequestInfo, query: Option<&str>, default: Duration) -> Option<Duration> {
    if info.is_long_running() || default.is_zero() {
        return None;
    }
    let asked = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "timeout")
        .and_then(|(_, v)| crate::config::parse_duration(&v).ok())
        .filter(|d| !d.is_zero());
    Some(asked.map_or(default, |d| d.min(default)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(status().code, 504);
    }
}
