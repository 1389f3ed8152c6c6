//! One priority level's seats and queues: kube's `fairqueuing/queueset`.
//!
//! The queue set keeps a virtual clock `R` (seat-seconds) that advances, while requests wait or
//! run, at `min(seats requested, limit) / active queues` per real second: the service each
//! active queue would get from an ideal fair share of the level's seats. A request is charged
//! its work, `seats × 3 ms` (kube's estimated service time); a queue's `nextDispatchR` is the
//! virtual time at which its head may start, and is advanced by each dispatched request's work
//! and corrected by the request's real service time when it finishes. Dispatch takes the head
//! of the queue whose head would finish first in virtual time (round-robin among ties), if its
//! seats fit under the current limit; a request wider than the whole limit runs alone. A new
//! request joins the queue of its shuffle-sharded hand holding the fewest seats (waiting plus
//! executing); it is refused when the level is saturated and that queue is at its length limit.
//! A level without queues (Reject) runs what fits and refuses the rest; exempt runs everything.

use super::integrator::{DemandStats, Integrator};
use super::metrics::{self, FlowMetrics};
use super::shuffle;
use super::timing::TimingRatio;
use super::types::Queuing;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;

/// kube's rejection reasons (the `reason` label).
pub const QUEUE_FULL: &str = "queue-full";
pub const CONCURRENCY_LIMIT: &str = "concurrency-limit";
pub const TIME_OUT: &str = "time-out";
pub const CANCELLED: &str = "cancelled";

/// kube's estimated service time of one seat (`estimatedServiceDuration`), the unit of work.
const ESTIMATED_SERVICE: f64 = 0.003;
/// kube's width bounds (request/width.go) and the share of a level's nominal seats one
/// request may take (`priorityLevelMaxSeatsPercent`).
pub const MIN_SEATS: u32 = 1;
pub const MAX_SEATS: u32 = 10;
const MAX_SEATS_PERCENT: f64 = 0.15;

/// A level's configured seat bounds (kube's nominalCL, minCL and maxCL).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub nominal: u32,
    pub lower: u32,
    pub upper: u32,
}

pub struct Level {
    pub name: String,
    pub uid: String,
    /// `uid` as the X-Kubernetes-PF-PriorityLevel-UID value, built once (each request clones
    /// it); None when it is no valid header value (no header, as before).
    pub uid_header: Option<http::HeaderValue>,
    /// None: exempt (no limit, no queues); Some(None): Reject.
    pub queuing: Option<Option<Queuing>>,
    state: Mutex<State>,
}

struct State {
    limits: Limits,
    /// kube's currentCL: the seats this level may use now (borrowing moves it).
    limit: u32,
    /// The widest request this level admits (kube's MaxSeatsTracker).
    max_seats: u32,
    seats_in_use: u32,
    executing: u32,
    waiting: usize,
    waiting_seats: u32,
    queues: Vec<Queue>,
    /// The virtual clock, in seat-seconds, and when it was last advanced.
    r: f64,
    last_real: Instant,
    robin: usize,
    next_id: u64,
    demand: Integrator,
    stats: DemandStats,
    dispatched: u64,
    rejected: u64,
    timed_out: u64,
    cancelled: u64,
    /// The executing requests, by id, for kube's dump_requests.
    running: BTreeMap<u64, Running>,
    /// kube's fallback denominator of the utilization ratios: max(1, round(server seats / 10)).
    fallback: u32,
    queue_length_limit: u32,
    ratios: Ratios,
    /// None for an exempt level, which has no limit and no clock.
    gauges: Option<Gauges>,
}

impl State {
    /// The current limit, and its gauges.
    fn set_limit(&mut self, limit: u32) {
        self.limit = limit;
        if let Some(g) = &self.gauges {
            g.current_limit.set(limit as i64);
            g.concurrency_limit.set(limit as i64);
        }
    }
}

/// The level's timing ratio histograms (seat and request utilization, seat demand).
struct Ratios {
    seats: TimingRatio,
    executing: TimingRatio,
    waiting: TimingRatio,
    demand: TimingRatio,
}

impl Ratios {
    fn new(level: &str) -> Ratios {
        Ratios {
            seats: metrics::SEAT_UTILIZATION.with(&[level], 1.0),
            executing: metrics::REQUEST_UTILIZATION.with(&["executing", level], 1.0),
            waiting: metrics::REQUEST_UTILIZATION.with(&["waiting", level], 1.0),
            demand: metrics::DEMAND_SEATS.with(&[level], 1.0),
        }
    }
}

/// The level's gauges of its limit and of its fair-queuing clock, resolved once.
struct Gauges {
    current_limit: prometheus::IntGauge,
    concurrency_limit: prometheus::IntGauge,
    current_r: prometheus::Gauge,
    dispatch_r: prometheus::Gauge,
    latest_s: prometheus::Gauge,
    /// min and max of the next virtual starts, plain and discounted by the work in progress.
    next_s: [prometheus::Gauge; 2],
    next_discounted_s: [prometheus::Gauge; 2],
}

impl Gauges {
    fn new(level: &str) -> Gauges {
        let bounds =
            |v: &prometheus::GaugeVec| [v.with_label_values(&[level, "min"]), v.with_label_values(&[level, "max"])];
        Gauges {
            current_limit: metrics::CURRENT_LIMIT.with_label_values(&[level]),
            concurrency_limit: metrics::CONCURRENCY_LIMIT.with_label_values(&[level]),
            current_r: metrics::CURRENT_R.with_label_values(&[level]),
            dispatch_r: metrics::DISPATCH_R.with_label_values(&[level]),
            latest_s: metrics::LATEST_S.with_label_values(&[level]),
            next_s: bounds(&metrics::NEXT_S_BOUNDS),
            next_discounted_s: bounds(&metrics::NEXT_DISCOUNTED_S_BOUNDS),
        }
    }

    /// kube's `SetDispatchMetrics`, at each dispatch from a queue.
    fn dispatched(&self, r: f64, s: f64, next: (f64, f64), discounted: (f64, f64)) {
        self.dispatch_r.set(r);
        self.latest_s.set(s);
        self.next_s[0].set(next.0);
        self.next_s[1].set(next.1);
        self.next_discounted_s[0].set(discounted.0);
        self.next_discounted_s[1].set(discounted.1);
    }
}

/// What kube's `dump_requests` shows of a request (its `RequestDump`).
pub struct Request {
    pub flow_schema: Arc<str>,
    pub distinguisher: String,
    pub user: String,
    pub info: Arc<crate::request_info::RequestInfo>,
    pub arrive: SystemTime,
    /// A write's seats after it finishes, and how long (kube's FinalSeats, AdditionalLatency).
    pub fan_out: super::width::FanOut,
}

struct Running {
    queue: Option<usize>,
    seats: u32,
    started: SystemTime,
    req: Arc<Request>,
}

/// One dump_requests row's facts: queue index and index in it (-1: none, or executing), the
/// request, its seats, and when it started (None: waiting).
pub struct RequestRow {
    pub queue: i64,
    pub index: i64,
    pub seats: u32,
    pub started: Option<SystemTime>,
    pub req: Arc<Request>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiter>,
    /// The seats of `waiting`, kept as they come and go: read for every queue at each
    /// admission and release, under the level's lock.
    waiting_seats: u32,
    next_dispatch_r: f64,
    seats_in_use: u32,
    executing: u32,
}

struct Waiter {
    id: u64,
    seats: u32,
    arrival_r: f64,
    flow: Arc<FlowMetrics>,
    tx: Option<oneshot::Sender<Seat>>,
    req: Option<Arc<Request>>,
}

impl Waiter {
    fn work(&self) -> f64 {
        self.seats as f64 * ESTIMATED_SERVICE
    }
}

/// Seats held by an executing request; given back on drop.
pub struct Seat {
    level: Arc<Level>,
    /// The request's id in `running`, when it is shown there.
    id: Option<u64>,
    queue: Option<usize>,
    seats: u32,
    started: Instant,
    flow: Arc<FlowMetrics>,
    /// A watch's seat: its execution time is counted as `type="watch"`.
    pub watch: bool,
    /// How long the seats stay taken after the request ends (a write's event fan-out).
    pub linger: Duration,
}

impl std::fmt::Debug for Seat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Seat({}, {} seats)", self.level.name, self.seats)
    }
}

/// What becomes of a request offered to a level.
pub enum Admission {
    Now(Seat),
    Queued(Ticket),
    Rejected(&'static str),
}

/// A place in a queue; leaving it (drop) before a seat comes counts as cancelled.
pub struct Ticket {
    level: Arc<Level>,
    queue: usize,
    id: u64,
    flow: Arc<FlowMetrics>,
    rx: oneshot::Receiver<Seat>,
    done: bool,
}

/// Seats for dispatched waiters (by id), delivered once the lock is released.
type Sends = Vec<(u64, oneshot::Sender<Seat>, Seat)>;

impl Level {
    pub fn new(name: &str, uid: &str, queuing: Option<Option<Queuing>>) -> Arc<Level> {
        let queues = match queuing {
            Some(Some(q)) => (0..q.queues).map(|_| Queue::default()).collect(),
            _ => Vec::new(),
        };
        let now = Instant::now();
        let robin = queues.len().saturating_sub(1);
        Arc::new(Level {
            name: name.to_string(),
            uid: uid.to_string(),
            uid_header: http::HeaderValue::from_str(uid).ok(),
            queuing,
            state: Mutex::new(State {
                limits: Limits::default(),
                limit: 0,
                max_seats: MAX_SEATS,
                seats_in_use: 0,
                executing: 0,
                waiting: 0,
                waiting_seats: 0,
                queues,
                r: 0.0,
                last_real: now,
                robin,
                next_id: 0,
                demand: Integrator::new(now),
                stats: DemandStats::default(),
                dispatched: 0,
                rejected: 0,
                timed_out: 0,
                cancelled: 0,
                running: BTreeMap::new(),
                fallback: 1,
                queue_length_limit: match queuing {
                    Some(Some(q)) => q.queue_length_limit,
                    _ => 0,
                },
                ratios: Ratios::new(name),
                gauges: queuing.is_some().then(|| Gauges::new(name)),
            }),
        })
    }

    pub fn is_exempt(&self) -> bool {
        self.queuing.is_none()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The server's seats, for the utilization ratios of a level without a limit.
    pub fn set_server_seats(&self, seats: u32) {
        let mut s = self.lock();
        s.fallback = ((seats as f64 / 10.0).round() as u32).max(1);
        note_demand(&mut s);
    }

    /// The widest request this level admits, in seats.
    pub fn max_seats(&self) -> u32 {
        self.lock().max_seats
    }

    /// The configured bounds and the current limit.
    pub fn limits(&self) -> (Limits, u32) {
        let s = self.lock();
        (s.limits, s.limit)
    }

    /// New bounds (a configuration change). A new level starts at kube's initial currentCL,
    /// `nominal - lendable/2`; an existing one keeps its current limit until the next
    /// borrowing round.
    pub fn set_limits(self: &Arc<Self>, limits: Limits, fresh: bool) {
        let sends = {
            let mut s = self.lock();
            s.limits = limits;
            if fresh {
                let limit = limits.nominal - (limits.nominal - limits.lower) / 2;
                s.set_limit(limit);
            }
            note_demand(&mut s);
            s.max_seats = match self.queuing {
                // kube: max(1, min(ceil(0.15 × nominal), nominal / handSize)), at most 10
                Some(Some(q)) => {
                    let pct = (limits.nominal as f64 * MAX_SEATS_PERCENT).ceil() as u32;
                    pct.min(limits.nominal / q.hand_size.max(1)).clamp(MIN_SEATS, MAX_SEATS)
                }
                _ => MAX_SEATS,
            };
            self.dispatch(&mut s)
        };
        deliver(sends);
    }

    /// The seats this level may use from now on (borrowing, see `limits.rs`).
    pub fn set_current_limit(self: &Arc<Self>, limit: u32) {
        let sends = {
            let mut s = self.lock();
            s.set_limit(limit);
            note_demand(&mut s);
            self.dispatch(&mut s)
        };
        deliver(sends);
    }

    /// Ends a borrowing period: the seat demand (executing plus waiting seats) observed in it,
    /// folded into the level's demand statistics.
    pub fn demand_period(&self) -> DemandStats {
        let mut s = self.lock();
        let obs = s.demand.reset(Instant::now());
        s.stats.update(obs);
        s.stats
    }

    /// Offers a request of `width` seats from flow `hash` (`req`: what the dump shows of it).
    pub fn admit(
        self: &Arc<Self>,
        flow: &Arc<FlowMetrics>,
        hash: u64,
        width: u32,
        req: Option<Arc<Request>>,
    ) -> Admission {
        let mut s = self.lock();
        let width = width.clamp(MIN_SEATS, s.max_seats);
        flow.estimated_seats().observe(width as f64);
        let Some(queuing) = self.queuing else {
            // exempt: runs at once, its seats counted for the demand
            s.executing += 1;
            s.seats_in_use += width;
            s.dispatched += 1;
            note_demand(&mut s);
            return Admission::Now(self.seat(None, None, width, flow));
        };
        self.sync_time(&mut s);
        let Some(q) = queuing else {
            if !can_accommodate(&s, width) {
                s.rejected += 1;
                return Admission::Rejected(CONCURRENCY_LIMIT);
            }
            return Admission::Now(self.start(&mut s, None, width, flow, req));
        };
        let queue = choose_queue(&s, hash, q);
        if s.seats_in_use >= s.limit && s.queues[queue].waiting.len() >= q.queue_length_limit as usize {
            s.rejected += 1;
            return Admission::Rejected(QUEUE_FULL);
        }
        // enqueue: an idle queue starts at the current virtual time
        let r = s.r;
        let id = s.next_id;
        s.next_id += 1;
        let qu = &mut s.queues[queue];
        if qu.waiting.is_empty() && qu.executing == 0 {
            qu.next_dispatch_r = r;
        }
        let (tx, rx) = oneshot::channel();
        qu.waiting.push_back(Waiter { id, seats: width, arrival_r: r, flow: flow.clone(), tx: Some(tx), req });
        qu.waiting_seats += width;
        flow.queue_length().observe(qu.waiting.len() as f64);
        s.waiting += 1;
        s.waiting_seats += width;
        note_demand(&mut s);
        flow.inqueue().inc();
        flow.inqueue_seats().add(width as i64);
        let mut sends = self.dispatch(&mut s);
        drop(s);
        // dispatched at once: no wait
        let mine = sends.iter().position(|(i, _, _)| *i == id).map(|p| sends.swap_remove(p));
        deliver(sends);
        match mine {
            Some((_, _, seat)) => Admission::Now(seat),
            None => Admission::Queued(Ticket { level: self.clone(), queue, id, flow: flow.clone(), rx, done: false }),
        }
    }

    /// Advances the virtual clock to now.
    fn sync_time(&self, s: &mut State) {
        let now = Instant::now();
        let dt = now.saturating_duration_since(s.last_real).as_secs_f64();
        s.last_real = now;
        s.r += dt * virtual_time_ratio(s);
        if let Some(g) = &s.gauges {
            g.current_r.set(s.r);
        }
    }

    /// Accounts a request starting on `width` seats.
    fn start(
        self: &Arc<Self>,
        s: &mut State,
        queue: Option<usize>,
        width: u32,
        flow: &Arc<FlowMetrics>,
        req: Option<Arc<Request>>,
    ) -> Seat {
        let id = req.map(|req| {
            let id = s.next_id;
            s.next_id += 1;
            s.running.insert(id, Running { queue, seats: width, started: SystemTime::now(), req });
            id
        });
        s.seats_in_use += width;
        s.executing += 1;
        s.dispatched += 1;
        if let Some(q) = queue {
            s.queues[q].seats_in_use += width;
            s.queues[q].executing += 1;
        }
        note_demand(s);
        self.seat(id, queue, width, flow)
    }

    fn seat(self: &Arc<Self>, id: Option<u64>, queue: Option<usize>, width: u32, flow: &Arc<FlowMetrics>) -> Seat {
        flow.dispatched().inc();
        flow.executing().inc();
        flow.seats_in_use(width as i64);
        Seat {
            level: self.clone(),
            id,
            queue,
            seats: width,
            started: Instant::now(),
            flow: flow.clone(),
            watch: false,
            linger: Duration::ZERO,
        }
    }

    /// kube's `dispatchAsMuchAsPossibleLocked`; the seats are delivered after the lock.
    fn dispatch(self: &Arc<Self>, s: &mut State) -> Sends {
        let mut sends = Vec::new();
        while s.waiting > 0 && s.seats_in_use < s.limit {
            let Some(q) = find_dispatch_queue(s) else { break };
            let mut w = s.queues[q].waiting.pop_front().expect("non-empty");
            s.queues[q].waiting_seats -= w.seats;
            s.waiting -= 1;
            s.waiting_seats -= w.seats;
            s.queues[q].next_dispatch_r += w.work();
            w.flow.inqueue().dec();
            w.flow.inqueue_seats().sub(w.seats as i64);
            let seat = self.start(s, Some(q), w.seats, &w.flow, w.req.take());
            if let Some(tx) = w.tx.take() {
                sends.push((w.id, tx, seat));
            }
        }
        sends
    }

    /// kube's `finishRequestLocked`: the queue is charged the real service time instead of
    /// the estimate, then whatever now fits is dispatched.
    fn release(self: &Arc<Self>, id: Option<u64>, queue: Option<usize>, width: u32, started: Instant) {
        let sends = {
            let mut s = self.lock();
            self.sync_time(&mut s);
            if let Some(id) = id {
                s.running.remove(&id);
            }
            s.executing -= 1;
            s.seats_in_use -= width;
            if let Some(q) = queue {
                let actual = started.elapsed().as_secs_f64();
                let qu = &mut s.queues[q];
                qu.seats_in_use -= width;
                qu.executing -= 1;
                qu.next_dispatch_r -= width as f64 * (ESTIMATED_SERVICE - actual);
                // kube's anti-windup: dispatch in the virtual world never precedes arrival
                if let Some(head) = qu.waiting.front() {
                    qu.next_dispatch_r = qu.next_dispatch_r.max(head.arrival_r);
                }
            }
            note_demand(&mut s);
            self.dispatch(&mut s)
        };
        deliver(sends);
    }

    /// Takes a waiter out of its queue; false when it was already dispatched.
    fn withdraw(&self, queue: usize, id: u64, flow: &FlowMetrics, timed_out: bool) -> bool {
        let mut s = self.lock();
        self.sync_time(&mut s);
        let Some(pos) = s.queues[queue].waiting.iter().position(|w| w.id == id) else { return false };
        let w = s.queues[queue].waiting.remove(pos).expect("present");
        s.queues[queue].waiting_seats -= w.seats;
        s.waiting -= 1;
        s.waiting_seats -= w.seats;
        s.rejected += 1;
        note_demand(&mut s);
        if timed_out {
            s.timed_out += 1;
        } else {
            // the client left while queued: no wait ends to count it, so it is counted here
            s.cancelled += 1;
            flow.rejected(CANCELLED);
        }
        flow.inqueue().dec();
        flow.inqueue_seats().sub(w.seats as i64);
        true
    }

    /// kube's dump_requests rows: each queue's waiting requests in order, then its executing
    /// ones; then the executing requests of a level without queues (Reject).
    pub fn dump_requests(&self) -> Vec<RequestRow> {
        let s = self.lock();
        let mut rows = Vec::new();
        let running = |queue: Option<usize>| {
            s.running.values().filter(move |r| r.queue == queue).map(move |r| RequestRow {
                queue: queue.map_or(-1, |q| q as i64),
                index: -1,
                seats: r.seats,
                started: Some(r.started),
                req: r.req.clone(),
            })
        };
        for (i, q) in s.queues.iter().enumerate() {
            for (j, w) in q.waiting.iter().enumerate() {
                if let Some(req) = &w.req {
                    rows.push(RequestRow {
                        queue: i as i64,
                        index: j as i64,
                        seats: w.seats,
                        started: None,
                        req: req.clone(),
                    });
                }
            }
            rows.extend(running(Some(i)));
        }
        rows.extend(running(None));
        rows
    }

    /// kube's dump_priority_levels row (after the name).
    pub fn dump_row(&self) -> Vec<String> {
        if self.is_exempt() {
            return vec!["<none>".to_string(); 9];
        }
        let s = self.lock();
        // kube: a queue is active while requests wait in it
        let active = s.queues.iter().filter(|q| !q.waiting.is_empty()).count();
        vec![
            active.to_string(),
            (s.executing == 0 && s.waiting == 0).to_string(),
            "false".to_string(),
            s.waiting.to_string(),
            s.executing.to_string(),
            s.dispatched.to_string(),
            s.rejected.to_string(),
            s.timed_out.to_string(),
            s.cancelled.to_string(),
        ]
    }

    /// kube's dump_queues rows (after the name): seat-seconds print as kube's `%d.%08dss`.
    pub fn dump_queues(&self) -> Vec<Vec<String>> {
        if self.queuing.flatten().is_none() {
            return vec![vec!["<none>".to_string(); 8]];
        }
        let s = self.lock();
        s.queues
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let seats = q.waiting_seats;
                let work: f64 = q.waiting.iter().map(Waiter::work).sum();
                vec![
                    i.to_string(),
                    q.waiting.len().to_string(),
                    q.executing.to_string(),
                    q.seats_in_use.to_string(),
                    format!("{:.8}ss", q.next_dispatch_r),
                    seats.to_string(),
                    seats.to_string(),
                    format!("{work:.8}ss"),
                ]
            })
            .collect()
    }
}

/// The seats requested now (executing plus waiting), for borrowing's demand statistics, and
/// the utilization ratios as they are from now on.
fn note_demand(s: &mut State) {
    let now = Instant::now();
    let x = (s.seats_in_use + s.waiting_seats) as f64;
    s.demand.set(now, x);
    let limit = if s.limit == 0 { s.fallback } else { s.limit } as f64;
    let queue_capacity = match s.queues.first() {
        Some(_) => s.queues.len() as f64 * s.queue_length_limit.max(1) as f64,
        None => 1.0,
    };
    let r = &s.ratios;
    r.seats.set_at(metrics::SEAT_UTILIZATION.bounds(), now, s.seats_in_use as f64, limit);
    r.executing.set_at(metrics::REQUEST_UTILIZATION.bounds(), now, s.executing as f64, limit);
    r.waiting.set_at(metrics::REQUEST_UTILIZATION.bounds(), now, s.waiting as f64, queue_capacity);
    r.demand.set_at(metrics::DEMAND_SEATS.bounds(), now, x, limit);
}

/// kube's `getVirtualTimeRatioLocked`: the fair share of seats of each active queue.
fn virtual_time_ratio(s: &State) -> f64 {
    let mut active = 0u32;
    let mut requested = 0u32;
    for q in &s.queues {
        if !q.waiting.is_empty() || q.executing > 0 {
            active += 1;
            requested += q.seats_in_use + q.waiting_seats;
        }
    }
    if active == 0 {
        return 0.0;
    }
    requested.min(s.limit) as f64 / active as f64
}

/// kube's `canAccommodateSeatsLocked`.
fn can_accommodate(s: &State, seats: u32) -> bool {
    if seats > s.limit {
        // wider than the whole limit: it runs alone
        return s.executing == 0;
    }
    s.seats_in_use + seats <= s.limit
}

/// kube's `shuffleShardLocked`: the queue of the flow's hand with the fewest seats waiting
/// and executing (the first such in dealing order).
fn choose_queue(s: &State, hash: u64, q: Queuing) -> usize {
    let mut best = (u32::MAX, 0usize);
    shuffle::deal(hash, q.queues, q.hand_size, |i| {
        let seats = s.queues[i].waiting_seats + s.queues[i].seats_in_use;
        if seats < best.0 {
            best = (seats, i);
        }
    });
    best.1
}

/// kube's `findDispatchQueueToBoundLocked`: the queue whose head has the smallest virtual
/// finish time, scanning round-robin from after the last choice, if that head fits.
fn find_dispatch_queue(s: &mut State) -> Option<usize> {
    let n = s.queues.len();
    let mut best: Option<(f64, usize)> = None;
    // the virtual starts of the queues' heads, plain and less the work in progress
    let (mut next, mut discounted) = ((f64::MAX, f64::MIN), (f64::MAX, f64::MIN));
    for _ in 0..n {
        s.robin = (s.robin + 1) % n;
        let q = &s.queues[s.robin];
        if let Some(head) = q.waiting.front() {
            let start = q.next_dispatch_r;
            let less = start - q.seats_in_use as f64 * ESTIMATED_SERVICE;
            next = (next.0.min(start), next.1.max(start));
            discounted = (discounted.0.min(less), discounted.1.max(less));
            let finish = start + head.work();
            if best.is_none_or(|(f, _)| finish < f) {
                best = Some((finish, s.robin));
            }
        }
    }
    let (_, q) = best?;
    let head = s.queues[q].waiting.front()?;
    if !can_accommodate(s, head.seats) {
        head.flow.no_accommodation();
        return None;
    }
    // the next scan starts after the chosen queue: the others win ties
    s.robin = q;
    if let Some(g) = &s.gauges {
        g.dispatched(s.r, s.queues[q].next_dispatch_r, next, discounted);
    }
    Some(q)
}

fn deliver(sends: Sends) {
    for (_, tx, seat) in sends {
        // a waiter that left gives the seat straight back (the Seat drops here, unlocked)
        let _ = tx.send(seat);
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.flow.executed(self.watch).observe(self.started.elapsed().as_secs_f64());
        self.flow.executing().dec();
        self.flow.seats_in_use(-(self.seats as i64));
        if self.level.is_exempt() {
            let mut s = self.level.lock();
            s.executing -= 1;
            s.seats_in_use -= self.seats;
            note_demand(&mut s);
            return;
        }
        let (level, id, queue, seats, started) = (self.level.clone(), self.id, self.queue, self.seats, self.started);
        // a write's seats stay taken while its events go out (kube's AdditionalLatency)
        if !self.linger.is_zero() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let linger = self.linger;
                rt.spawn(async move {
                    tokio::time::sleep(linger).await;
                    level.release(id, queue, seats, started);
                });
                return;
            }
        }
        level.release(id, queue, seats, started);
    }
}

impl Ticket {
    /// Waits up to `limit` for a seat; Err is the rejection reason.
    pub async fn wait(mut self, limit: Duration) -> Result<Seat, &'static str> {
        match tokio::time::timeout(limit, &mut self.rx).await {
            Ok(Ok(seat)) => {
                self.done = true;
                Ok(seat)
            }
            Ok(Err(_)) => {
                self.done = true;
                Err(CANCELLED)
            }
            Err(_) => {
                self.done = true;
                if self.level.withdraw(self.queue, self.id, &self.flow, true) {
                    return Err(TIME_OUT);
                }
                // dispatched just now: the seat is in the channel
                self.rx.try_recv().map_err(|_| CANCELLED)
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done {
            self.level.withdraw(self.queue, self.id, &self.flow, false);
        }
    }
}

#[cfg(test)]
mod tests;
