//! kube's WithMaxInFlightLimit: separate seat counts for read-only (get, list, watch) and
//! mutating verbs; long-running requests and `system:masters` are exempt; over the limit a
//! request is refused at once with 429 and `Retry-After: 1` (no queueing).
//!
//! `apiserver_current_inflight_requests` is a watermark, as kube's: the most seats in use during
//! the last second, published once a second. A window starts at the count then in use (kube
//! starts it at 0, which shows requests held through a whole second as none).

use once_cell::sync::Lazy;
use prometheus::{register_int_counter_vec, register_int_gauge_vec, IntCounterVec, IntGaugeVec};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// kube's inflightUsageMetricUpdatePeriod.
const WATERMARK_PERIOD: Duration = Duration::from_secs(1);

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
    /// The most seats seen in use since the last publication.
    watermark: AtomicUsize,
}

impl Seats {
    pub fn new(kind: &'static str, limit: usize) -> Arc<Seats> {
        CURRENT_INFLIGHT.with_label_values(&[kind]).set(0);
        let seats = Arc::new(Seats { kind, limit, used: AtomicUsize::new(0), watermark: AtomicUsize::new(0) });
        publish_watermarks(Arc::downgrade(&seats));
        seats
    }

    /// The watermark since the last call; the next window starts at the seats in use now.
    fn take_watermark(&self) -> usize {
        self.watermark.swap(self.used.load(Ordering::Acquire), Ordering::AcqRel)
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
                    self.watermark.fetch_max(cur + 1, Ordering::AcqRel);
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
        self.0.watermark.fetch_max(now, Ordering::AcqRel);
    }
}

/// Publishes the watermark once a period, on a thread of its own (the gauge must move even
/// when no request comes), until the seats are gone.
fn publish_watermarks(seats: Weak<Seats>) {
    let spawned = std::thread::Builder::new().name("inflight-watermark".into()).spawn(move || loop {
        std::thread::sleep(WATERMARK_PERIOD);
        let Some(seats) = seats.upgrade() else { return };
        CURRENT_INFLIGHT.with_label_values(&[seats.kind]).set(seats.take_watermark() as i64);
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the in-flight watermark thread; apiserver_current_inflight_requests stays 0");
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

/// Seats held by a request (a max-in-flight seat or a priority level's); released on drop.
/// A leaf type: the request context holds one.
#[derive(Debug)]
pub struct Permit {
    _seat: Box<dyn std::fmt::Debug + Send + Sync>,
}

impl Permit {
    pub fn new(seat: impl std::fmt::Debug + Send + Sync + 'static) -> Self {
        Permit { _seat: Box::new(seat) }
    }
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
    fn watermark_is_the_peak_since_the_last_window() {
        let s = Seats::new("watermark-kind", 5);
        let a = s.try_acquire().unwrap();
        let b = s.try_acquire().unwrap();
        let c = s.try_acquire().unwrap();
        drop((a, b));
        assert_eq!(s.take_watermark(), 3, "the peak, not the current 1");
        assert_eq!(s.take_watermark(), 1, "a seat held through a window counts in it");
        drop(c);
        assert_eq!(s.take_watermark(), 1, "it was in use during this window");
        assert_eq!(s.take_watermark(), 0);
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
