//! kube's work estimator (request/width.go, list_work_estimator.go), as far as frontdoor knows:
//! a list costs one seat per 100 objects it will process (at least 1, at most 10), counted
//! from the store's object count for resources served here; proxied resources (count unknown)
//! and everything else take 1 seat, as kube does when its count is missing. A watch takes 1
//! seat unless it asks for its initial events as a list (`sendInitialEvents=true`).
//! Mutating requests take 1 seat (kube's extra seats for watch fan-out are not modelled).

use crate::request_info::query::Query;
use crate::request_info::RequestInfo;

const MIN_SEATS: u32 = 1;
const MAX_SEATS: u32 = 10;
const OBJECTS_PER_SEAT: u64 = 100;

/// Stored objects of a group's resource, when known.
pub type ObjectCount = dyn Fn(&str, &str) -> Option<u64> + Send + Sync;

pub fn seats(info: &RequestInfo, query: &Query, count: Option<&ObjectCount>) -> u32 {
    if !info.is_resource_request || !matches!(info.verb.as_str(), "list" | "watch") {
        return MIN_SEATS;
    }
    if info.verb == "watch" && !query.flag("sendInitialEvents") {
        return MIN_SEATS;
    }
    let Some(stored) = count.and_then(|c| c(&info.api_group, &info.resource)) else { return MIN_SEATS };
    let limit = query.first("limit").and_then(|l| l.parse::<u64>().ok()).filter(|&l| l > 0 && l < stored);
    let limit = limit.unwrap_or(stored);
    // kube: a watch and a list at resourceVersion=0 are served from the watch cache
    let from_cache = info.verb == "watch" || query.first("resourceVersion") == Some("0");
    let processed = if from_cache {
        stored
    } else if !info.field_selector.is_empty() || !info.label_selector.is_empty() {
        stored + limit
    } else {
        2 * limit
    };
    (processed.div_ceil(OBJECTS_PER_SEAT) as u32).clamp(MIN_SEATS, MAX_SEATS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(method: &str, path: &str, q: &str, stored: Option<u64>) -> u32 {
        let info = RequestInfo::resolve(method, path, Some(q)).unwrap();
        let query = Query::parse(q);
        let count = move |_: &str, _: &str| stored;
        seats(&info, &query, Some(&count))
    }

    #[test]
    fn widths() {
        assert_eq!(w("GET", "/api/v1/namespaces/a/pods/p", "", Some(5000)), 1, "get");
        assert_eq!(w("POST", "/api/v1/namespaces/a/pods", "", Some(5000)), 1, "create");
        assert_eq!(w("GET", "/api/v1/pods", "", None), 1, "count unknown");
        assert_eq!(w("GET", "/api/v1/pods", "", Some(0)), 1, "at least one");
        assert_eq!(w("GET", "/api/v1/pods", "", Some(120)), 3, "2 * 120 / 100");
        assert_eq!(w("GET", "/api/v1/pods", "limit=50", Some(120)), 1);
        assert_eq!(w("GET", "/api/v1/pods", "labelSelector=a%3Db&limit=50", Some(120)), 2, "170 / 100");
        assert_eq!(w("GET", "/api/v1/pods", "resourceVersion=0", Some(250)), 3, "from cache");
        assert_eq!(w("GET", "/api/v1/pods", "", Some(100_000)), 10, "at most ten");
        assert_eq!(w("GET", "/api/v1/pods", "watch=true", Some(5000)), 1, "watch");
        assert_eq!(w("GET", "/api/v1/pods", "watch=true&sendInitialEvents=true", Some(450)), 5);
        assert_eq!(w("GET", "/healthz", "", Some(5000)), 1);
    }
}
