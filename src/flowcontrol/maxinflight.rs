//! kube's WithMaxInFlightLimit: separate seat counts for read-only (get, list, watch) and
//! mutating verbs; long-running requests and `system:masters` are exempt; over the limit a
//! request is refused at once with 429 and `Retry-After: 1` (no queueing).

use once_cell::sync::Lazy;
use prometheus::{register_int_counter_vec, register_int_gauge_vec, IntCounterVec, IntGaugeVec};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub static CURRENT_INFLIGHT: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "apiserver_current_inflight_requests",
        "Maximal number of currently used inflight request limit of this apiserver per request kind in last second.",
        &["request_kind"]
    )
    .expect("register apiserver_current_inflight_requests")
});

pub static DROPPED_REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "apiserver_dropped_requests_total",
        "Number of requests dropped with 'Try again later' response",
        &["request_kind"]
    )
    .expect("register apiserver_dropped_requests_total")
});

pub static REQUEST_TERMINATIONS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "apiserver_request_terminations_total",
        "Number of requests which apiserver terminated in self-defense.",
        &["verb", "group", "version", "resource", "subresource", "scope", "component", "code"]
    )
    .expect("register apiserver_request_terminations_total")
});

pub const READ_ONLY: &str = "readOnly";
pub const MUTATING: &str = "mutating";

/// One kind's seats (0 = unlimited).
#[derive(Debug)]
pub struct Seats {
    kind: &'static str,
    limit: usize,
    used: AtomicUsize,
}

impl Seats {
    pub fn new(kind: &'static str, limit: usize) -> Arc<Seats> {
        CURRENT_INFLIGHT.with_label_values(&[kind]).set(0);
        Arc::new(Seats { kind, limit, used: AtomicUsize::new(0) })
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Takes a seat, or None when all are taken.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Seat> {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            if cur >= self.limit {
                return None;
            }
            match self.used.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    CURRENT_INFLIGHT.with_label_values(&[self.kind]).set((cur + 1) as i64);
                    return Some(Seat(self.clone()));
                }
                Err(now) => cur = now,
            }
        }
    }

    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// A held seat; released on drop.
#[derive(Debug)]
pub struct Seat(Arc<Seats>);

impl Drop for Seat {
    fn drop(&mut self) {
        let now = self.0.used.fetch_sub(1, Ordering::AcqRel) - 1;
        CURRENT_INFLIGHT.with_label_values(&[self.0.kind]).set(now as i64);
    }
}

/// The two pools; None for a limit of 0.
pub struct MaxInFlight {
    pub read_only: Option<Arc<Seats>>,
    pub mutating: Option<Arc<Seats>>,
}

impl MaxInFlight {
    pub fn new(read_only: usize, mutating: usize) -> Self {
        Lazy::force(&DROPPED_REQUESTS);
        Lazy::force(&REQUEST_TERMINATIONS);
        MaxInFlight {
            read_only: (read_only > 0).then(|| Seats::new(READ_ONLY, read_only)),
            mutating: (mutating > 0).then(|| Seats::new(MUTATING, mutating)),
        }
    }
}

/// kube's nonMutatingRequestVerbs.
pub fn is_mutating(verb: &str) -> bool {
    !matches!(verb, "get" | "list" | "watch")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_are_limited_and_released_on_drop() {
        let s = Seats::new("test-kind", 2);
        let a = s.try_acquire().unwrap();
        let b = s.try_acquire().unwrap();
        assert!(s.try_acquire().is_none());
        drop(a);
        assert_eq!(s.in_use(), 1);
        let _c = s.try_acquire().unwrap();
        drop(b);
        assert_eq!(s.in_use(), 1);
    }

    #[test]
    fn mutating_verbs() {
        for v in ["get", "list", "watch"] {
            assert!(!is_mutating(v));
        }
        for v in ["create", "update", "patch", "delete", "deletecollection", "post", "head", "proxy"] {
            assert!(is_mutating(v));
        }
    }
}
