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

use super::apf::metrics::READ_VS_WRITE;
use super::apf::timing::TimingRatio;

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
pub struct Seats {
    kind: &'static str,
    limit: usize,
    used: AtomicUsize,
    /// The most seats seen in use since the last publication.
    watermark: AtomicUsize,
    /// `read_vs_write_current_requests{phase="executing"}`: seats in use over the limit (1 when
    /// unlimited, as under APF).
    executing: Gauge,
    /// Its `phase="waiting"` twin: APF's requests of this kind waiting in queues.
    waiting: Option<Gauge>,
}

impl std::fmt::Debug for Seats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Seats({}, {}/{})", self.kind, self.in_use(), self.limit)
    }
}

/// A count observed as a ratio of a limit by a timing ratio histogram.
struct Gauge {
    count: AtomicUsize,
    ratio: TimingRatio,
    denominator: f64,
}

impl Gauge {
    fn new(phase: &str, kind: &str, limit: usize) -> Gauge {
        let denominator = if limit == usize::MAX { 1.0 } else { limit as f64 };
        let ratio = READ_VS_WRITE.with(&[phase, kind], denominator);
        Gauge { count: AtomicUsize::new(0), ratio, denominator }
    }

    fn observe(&self, count: usize) {
        self.ratio.set(READ_VS_WRITE.bounds(), count as f64, self.denominator);
    }

    fn add(&self) {
        self.observe(self.count.fetch_add(1, Ordering::AcqRel) + 1);
    }

    fn sub(&self) {
        self.observe(self.count.fetch_sub(1, Ordering::AcqRel) - 1);
    }
}

impl Seats {
    pub fn new(kind: &'static str, limit: usize) -> Arc<Seats> {
        Self::build(kind, limit, false)
    }

    /// Unlimited seats that count what executes and what waits (APF's watermarks).
    pub fn counting(kind: &'static str) -> Arc<Seats> {
        Self::build(kind, usize::MAX, true)
    }

    fn build(kind: &'static str, limit: usize, waits: bool) -> Arc<Seats> {
        CURRENT_INFLIGHT.with_label_values(&[kind]).set(0);
        let seats = Arc::new(Seats {
            kind,
            limit,
            used: AtomicUsize::new(0),
            watermark: AtomicUsize::new(0),
            executing: Gauge::new("executing", kind, limit),
            waiting: waits.then(|| Gauge::new("waiting", kind, usize::MAX)),
        });
        publish_watermarks(Arc::downgrade(&seats));
        seats
    }

    /// Counts a request of this kind waiting in a queue until the value is dropped.
    pub fn waiting(self: &Arc<Self>) -> Option<Waiting> {
        let gauge = self.waiting.as_ref()?;
        gauge.add();
        Some(Waiting(self.clone()))
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
                    self.executing.add();
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
        self.0.executing.sub();
    }
}

/// A request counted as waiting; uncounted on drop.
pub struct Waiting(Arc<Seats>);

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(g) = &self.0.waiting {
            g.sub();
        }
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

    /// No limits: only counts, for APF's watermarks of what executes and waits.
    pub fn counting() -> Self {
        MaxInFlight { read_only: Some(Seats::counting(READ_ONLY)), mutating: Some(Seats::counting(MUTATING)) }
    }

    /// The seats of a verb's kind (None: unlimited).
    pub fn of(&self, verb: &str) -> Option<&Arc<Seats>> {
        if is_mutating(verb) {
            self.mutating.as_ref()
        } else {
            self.read_only.as_ref()
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

    /// kube's `read_vs_write_current_requests`: seats in use over the limit, and APF's waiting
    /// requests (over 1), timed in nanoseconds.
    #[test]
    fn read_vs_write_ratios_follow_the_counts() {
        let limited = Seats::new("rw-limited", 4);
        let held = [limited.try_acquire().unwrap(), limited.try_acquire().unwrap()];
        std::thread::sleep(Duration::from_millis(20));
        drop(held);
        let counting = Seats::counting("rw-counting");
        let waiting = counting.waiting().expect("APF counts waiters");
        std::thread::sleep(Duration::from_millis(20));
        drop(waiting);
        assert!(limited.waiting().is_none(), "max-in-flight does not queue");
        let sum = |phase: &str, kind: &str| {
            let family = prometheus::gather()
                .into_iter()
                .find(|f| f.get_name() == "apiserver_flowcontrol_read_vs_write_current_requests")
                .expect("registered");
            let m = family.get_metric().iter().find(|m| {
                let l: Vec<(&str, &str)> = m.get_label().iter().map(|l| (l.get_name(), l.get_value())).collect();
                l == [("phase", phase), ("request_kind", kind)]
            });
            m.map(|m| m.get_histogram().get_sample_sum()).unwrap_or(-1.0)
        };
        // two of four seats for 20 ms: at least 0.5 × 20e6; one waiter over 1 for 20 ms
        let executing = sum("executing", "rw-limited");
        assert!((0.5 * 20e6..0.5 * 2e9).contains(&executing), "{executing}");
        let waited = sum("waiting", "rw-counting");
        assert!((20e6..2e9).contains(&waited), "{waited}");
        assert_eq!(sum("waiting", "rw-limited"), -1.0, "no waiting series without APF");
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
