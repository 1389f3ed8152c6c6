//! kube's work estimator (request/width.go, list_work_estimator.go), as far as frontdoor knows:
//! a list costs one seat per 100 objects it will process (at least 1, at most 10), counted
//! from the store's object count for resources served here; proxied resources (count unknown)
//! and everything else take 1 seat, as kube does when its count is missing. A watch takes 1
//! seat unless it asks for its initial events as a list (`sendInitialEvents=true`).
//! A write (create, update, patch, delete) takes 1 seat, and when at least 10 watches follow
//! what it writes (the watches through frontdoor, `watches.rs`), one more seat per 10 of them
//! kept for 5 ms after it finishes, reshaped to at most the level's widest request (kube's
//! mutating work estimator).

use crate::request_info::query::Query;
use crate::request_info::RequestInfo;

const MIN_SEATS: u32 = 1;
const MAX_SEATS: u32 = 10;
const OBJECTS_PER_SEAT: u64 = 100;
/// kube's `WatchesPerSeat` and `eventAdditionalDuration`.
const WATCHES_PER_SEAT: usize = 10;
const EVENT_DURATION: std::time::Duration = std::time::Duration::from_millis(5);

/// A write's fan-out: seats it holds once done, and for how long (kube's FinalSeats and
/// AdditionalLatency).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanOut {
    pub seats: u32,
    pub latency: std::time::Duration,
}

/// Whether kube's mutating estimator weighs this request (and samples its watch count).
pub fn notifies(info: &RequestInfo) -> bool {
    let mutating = info.is_resource_request && matches!(info.verb(), "create" | "update" | "patch" | "delete");
    mutating && !(info.resource() == "serviceaccounts" && info.subresource() == "token")
}

/// kube's `mutatingWorkEstimator`: `watches` interested watches, `max_seats` the level's
/// widest request (at most 10). A service account token request writes nothing watched.
pub fn fan_out(info: &RequestInfo, watches: usize, max_seats: u32) -> FanOut {
    if !notifies(info) || watches < WATCHES_PER_SEAT {
        return FanOut::default();
    }
    let seats = watches.div_ceil(WATCHES_PER_SEAT) as u32;
    let work = EVENT_DURATION * seats;
    let seats = seats.min(max_seats.clamp(MIN_SEATS, MAX_SEATS));
    FanOut { seats, latency: work / seats }
}

/// Stored objects of a group's resource, when known.
pub type ObjectCount = dyn Fn(&str, &str) -> Option<u64> + Send + Sync;

pub fn seats(info: &RequestInfo, query: &Query, count: Option<&ObjectCount>) -> u32 {
    if !info.is_resource_request || !matches!(info.verb(), "list" | "watch") {
        return MIN_SEATS;
    }
    if info.verb() == "watch" && !query.flag("sendInitialEvents") {
        return MIN_SEATS;
    }
    let Some(stored) = count.and_then(|c| c(info.api_group(), info.resource())) else { return MIN_SEATS };
    let limit = query.first("limit").and_then(|l| l.parse::<u64>().ok()).filter(|&l| l > 0 && l < stored);
    let limit = limit.unwrap_or(stored);
    // kube: a watch and a list at resourceVersion=0 are served from the watch cache
    let from_cache = info.verb() == "watch" || query.first("resourceVersion") == Some("0");
    let processed = if from_cache {
        stored
    } else if !info.field_selector().is_empty() || !info.label_selector().is_empty() {
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

    #[test]
    fn writes_pay_for_their_watchers() {
        let f = |method: &str, path: &str, watches: usize, max: u32| {
            fan_out(&RequestInfo::resolve(method, path, None).unwrap(), watches, max)
        };
        let ms = std::time::Duration::from_micros;
        assert_eq!(f("POST", "/api/v1/namespaces/a/configmaps", 9, 10), FanOut::default(), "under 10 watches");
        assert_eq!(f("POST", "/api/v1/namespaces/a/configmaps", 10, 10), FanOut { seats: 1, latency: ms(5000) });
        assert_eq!(f("PUT", "/api/v1/namespaces/a/configmaps/c", 35, 10), FanOut { seats: 4, latency: ms(5000) });
        // 25 seats of 5 ms reshaped to the widest the level allows: 10 (or 3) seats, longer
        assert_eq!(f("DELETE", "/api/v1/namespaces/a/configmaps/c", 250, 10), FanOut { seats: 10, latency: ms(12500) });
        assert_eq!(
            f("PATCH", "/api/v1/namespaces/a/configmaps/c", 250, 3),
            FanOut { seats: 3, latency: std::time::Duration::from_nanos(41_666_666) }
        );
        assert_eq!(f("GET", "/api/v1/namespaces/a/configmaps/c", 250, 10), FanOut::default(), "a read");
        assert_eq!(f("POST", "/api/v1/namespaces/a/serviceaccounts/s/token", 250, 10), FanOut::default());
        assert_eq!(f("DELETE", "/api/v1/namespaces/a/configmaps", 250, 10), FanOut::default(), "deletecollection");
    }
}
