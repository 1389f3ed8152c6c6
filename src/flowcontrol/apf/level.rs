//! One priority level's seats and queues (kube's fairqueuing/queueset), simplified:
//! a request that fits in the level's current seat limit runs at once when nobody waits;
//! otherwise it joins the shortest queue of its shuffle-sharded hand (or is refused when that
//! queue is full, or when the level rejects instead of queuing). Freed seats go to the head of
//! the non-empty queue with the fewest seats executing, round-robin among equals: the queues
//! share the level's seats evenly by width, which is what kube's virtual-time fair queuing
//! converges to, without the virtual clock. A request wider than the whole limit runs alone.

use super::metrics::FlowMetrics;
use super::shuffle;
use super::types::Queuing;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// kube's rejection reasons (the `reason` label).
pub const QUEUE_FULL: &str = "queue-full";
pub const CONCURRENCY_LIMIT: &str = "concurrency-limit";
pub const TIME_OUT: &str = "time-out";
pub const CANCELLED: &str = "cancelled";

/// A level's configured seat bounds (kube's NominalCL, lower and upper limits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub nominal: u32,
    pub lower: u32,
    pub upper: u32,
}

pub struct Level {
    pub name: String,
    pub uid: String,
    /// None: exempt (no limit, no queues).
    pub queuing: Option<Option<Queuing>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    limits: Limits,
    /// The seats this level may use now (moves between the lower and upper limits).
    limit: u32,
    seats_in_use: u32,
    executing: u32,
    queues: Vec<Queue>,
    waiting: usize,
    waiting_seats: u32,
    next_id: u64,
    round_robin: usize,
    /// The most seats in use plus waiting since the last `take_demand`.
    peak_demand: u32,
    dispatched: u64,
    rejected: u64,
    timed_out: u64,
    cancelled: u64,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiter>,
    seats_in_use: u32,
    executing: u32,
}

struct Waiter {
    id: u64,
    seats: u32,
    flow: Arc<FlowMetrics>,
    tx: oneshot::Sender<Seat>,
}

/// Seats held by an executing request; given back on drop.
pub struct Seat {
    level: Arc<Level>,
    queue: Option<usize>,
    seats: u32,
    flow: Arc<FlowMetrics>,
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

type Sends = Vec<(oneshot::Sender<Seat>, Seat)>;

impl Level {
    pub fn new(name: &str, uid: &str, queuing: Option<Option<Queuing>>) -> Arc<Level> {
        let queues = match queuing {
            Some(Some(q)) => (0..q.queues).map(|_| Queue::default()).collect(),
            _ => Vec::new(),
        };
        Arc::new(Level {
            name: name.to_string(),
            uid: uid.to_string(),
            queuing,
            state: Mutex::new(State { queues, ..Default::default() }),
        })
    }

    pub fn is_exempt(&self) -> bool {
        self.queuing.is_none()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn limits(&self) -> (Limits, u32) {
        let s = self.lock();
        (s.limits, s.limit)
    }

    /// New bounds (a reload); the current limit starts at the nominal seats.
    pub fn set_limits(self: &Arc<Self>, limits: Limits) {
        let sends = {
            let mut s = self.lock();
            if s.limits != limits {
                s.limits = limits;
                s.limit = limits.nominal;
            }
            self.dispatch(&mut s)
        };
        deliver(sends);
    }

    /// The seats this level may use from now on (borrowing, see `limits.rs`).
    pub fn set_current_limit(self: &Arc<Self>, limit: u32) {
        let sends = {
            let mut s = self.lock();
            s.limit = limit;
            self.dispatch(&mut s)
        };
        deliver(sends);
    }

    /// The peak seat demand (executing plus waiting) since the last call.
    pub fn take_demand(&self) -> u32 {
        let mut s = self.lock();
        let now = s.seats_in_use + s.waiting_seats;
        std::mem::replace(&mut s.peak_demand, now).max(now)
    }

    /// Offers a request of `width` seats from flow `hash`.
    pub fn admit(self: &Arc<Self>, flow: &Arc<FlowMetrics>, hash: u64, width: u32) -> Admission {
        let width = width.max(1);
        let mut s = self.lock();
        let Some(queuing) = self.queuing else {
            s.executing += 1;
            s.dispatched += 1;
            return Admission::Now(self.seat(&mut s, None, 0, flow));
        };
        // the flow's queue: the shortest of its hand (it counts the seats its requests run on)
        let queue = queuing.map(|q| {
            shuffle::deal(hash, q.queues, q.hand_size)
                .into_iter()
                .min_by_key(|&i| {
                    let qu = &s.queues[i];
                    qu.waiting.iter().map(|w| w.seats).sum::<u32>() + qu.seats_in_use
                })
                .unwrap_or(0)
        });
        let fits = s.seats_in_use + width <= s.limit || s.seats_in_use == 0;
        if fits && s.waiting == 0 {
            return Admission::Now(self.start(&mut s, queue, width, flow));
        }
        let (Some(q), Some(queue)) = (queuing, queue) else {
            s.rejected += 1;
            return Admission::Rejected(CONCURRENCY_LIMIT);
        };
        if s.queues[queue].waiting.len() >= q.queue_length_limit as usize {
            s.rejected += 1;
            return Admission::Rejected(QUEUE_FULL);
        }
        let (tx, rx) = oneshot::channel();
        let id = s.next_id;
        s.next_id += 1;
        s.queues[queue].waiting.push_back(Waiter { id, seats: width, flow: flow.clone(), tx });
        s.waiting += 1;
        s.waiting_seats += width;
        s.peak_demand = s.peak_demand.max(s.seats_in_use + s.waiting_seats);
        flow.inqueue().inc();
        let sends = self.dispatch(&mut s);
        drop(s);
        deliver(sends);
        Admission::Queued(Ticket { level: self.clone(), queue, id, flow: flow.clone(), rx, done: false })
    }

    /// Accounts a request starting on `width` seats.
    fn start(self: &Arc<Self>, s: &mut State, queue: Option<usize>, width: u32, flow: &Arc<FlowMetrics>) -> Seat {
        s.seats_in_use += width;
        s.executing += 1;
        s.dispatched += 1;
        if let Some(q) = queue {
            s.queues[q].seats_in_use += width;
            s.queues[q].executing += 1;
        }
        s.peak_demand = s.peak_demand.max(s.seats_in_use + s.waiting_seats);
        self.seat(s, queue, width, flow)
    }

    fn seat(self: &Arc<Self>, _s: &mut State, queue: Option<usize>, width: u32, flow: &Arc<FlowMetrics>) -> Seat {
        flow.dispatched().inc();
        flow.executing().inc();
        flow.executing_seats().add(width as i64);
        Seat { level: self.clone(), queue, seats: width, flow: flow.clone() }
    }

    /// Starts queued requests while seats allow; the seats are delivered after the lock.
    fn dispatch(self: &Arc<Self>, s: &mut State) -> Sends {
        let mut sends = Vec::new();
        while s.waiting > 0 {
            let n = s.queues.len();
            let Some(q) = (0..n)
                .map(|k| (s.round_robin + k) % n)
                .filter(|&i| !s.queues[i].waiting.is_empty())
                .min_by_key(|&i| s.queues[i].seats_in_use)
            else {
                break;
            };
            let width = s.queues[q].waiting.front().map(|w| w.seats).unwrap_or(1);
            if s.seats_in_use + width > s.limit && s.seats_in_use > 0 {
                break;
            }
            let w = s.queues[q].waiting.pop_front().expect("non-empty");
            s.waiting -= 1;
            s.waiting_seats -= w.seats;
            s.round_robin = (q + 1) % n;
            w.flow.inqueue().dec();
            let seat = self.start(s, Some(q), w.seats, &w.flow);
            sends.push((w.tx, seat));
        }
        sends
    }

    fn release(self: &Arc<Self>, queue: Option<usize>, width: u32, flow: &FlowMetrics) {
        flow.executing().dec();
        flow.executing_seats().sub(width as i64);
        let sends = {
            let mut s = self.lock();
            s.executing -= 1;
            s.seats_in_use -= width;
            if let Some(q) = queue {
                s.queues[q].seats_in_use -= width;
                s.queues[q].executing -= 1;
            }
            self.dispatch(&mut s)
        };
        deliver(sends);
    }

    /// Takes a waiter out of its queue; false when it was already dispatched.
    fn withdraw(&self, queue: usize, id: u64, flow: &FlowMetrics, timed_out: bool) -> bool {
        let mut s = self.lock();
        let Some(pos) = s.queues[queue].waiting.iter().position(|w| w.id == id) else { return false };
        let w = s.queues[queue].waiting.remove(pos).expect("present");
        s.waiting -= 1;
        s.waiting_seats -= w.seats;
        s.rejected += 1;
        if timed_out {
            s.timed_out += 1;
        } else {
            // the client left while queued: no wait ends to count it, so it is counted here
            s.cancelled += 1;
            flow.rejected(CANCELLED);
        }
        flow.inqueue().dec();
        true
    }

    /// kube's dump_priority_levels row (after the name).
    pub fn dump_row(&self) -> Vec<String> {
        if self.is_exempt() {
            return vec!["<none>".to_string(); 9];
        }
        let s = self.lock();
        let active = s.queues.iter().filter(|q| !q.waiting.is_empty() || q.executing > 0).count();
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

    /// kube's dump_queues rows (after the name); virtual time is not kept, so NextDispatchR
    /// and TotalWorkSum read zero.
    pub fn dump_queues(&self) -> Vec<Vec<String>> {
        if self.queuing.flatten().is_none() {
            return vec![vec!["<none>".to_string(); 8]];
        }
        let s = self.lock();
        s.queues
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let queued: u32 = q.waiting.iter().map(|w| w.seats).sum();
                vec![
                    i.to_string(),
                    q.waiting.len().to_string(),
                    q.executing.to_string(),
                    q.seats_in_use.to_string(),
                    "0.00000000ss".to_string(),
                    queued.to_string(),
                    queued.to_string(),
                    "0.00000000ss".to_string(),
                ]
            })
            .collect()
    }
}

fn deliver(sends: Sends) {
    for (tx, seat) in sends {
        // a waiter that left gives the seat straight back (the Seat drops here, unlocked)
        let _ = tx.send(seat);
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if self.level.is_exempt() {
            self.flow.executing().dec();
            let mut s = self.level.lock();
            s.executing -= 1;
            return;
        }
        let level = self.level.clone();
        level.release(self.queue, self.seats, &self.flow);
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

/// When a wait started, for the wait-duration histogram.
pub fn since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(queues: u32, hand: u32, qlen: u32, limit: u32) -> Arc<Level> {
        let l = Level::new("test", "uid", Some(Some(Queuing { queues, hand_size: hand, queue_length_limit: qlen })));
        l.set_limits(Limits { nominal: limit, lower: limit, upper: limit });
        l
    }

    #[tokio::test]
    async fn queues_then_dispatches_on_release() {
        let l = level(4, 2, 2, 2);
        let fs = FlowMetrics::new("test", "fs");
        let Admission::Now(a) = l.admit(&fs, 1, 1) else { panic!("first runs") };
        let Admission::Now(_b) = l.admit(&fs, 1, 1) else { panic!("second runs") };
        let Admission::Queued(t) = l.admit(&fs, 1, 1) else { panic!("third waits") };
        drop(a);
        let seat = t.wait(Duration::from_secs(1)).await.expect("dispatched");
        assert_eq!(l.limits().1, 2);
        drop(seat);
        assert!(matches!(l.admit(&fs, 1, 1), Admission::Now(_)));
    }

    #[tokio::test]
    async fn queue_full_time_out_and_cancel() {
        let l = level(1, 1, 1, 1);
        let fs = FlowMetrics::new("test", "fs");
        let Admission::Now(_a) = l.admit(&fs, 1, 1) else { panic!() };
        let Admission::Queued(t) = l.admit(&fs, 1, 1) else { panic!() };
        assert!(matches!(l.admit(&fs, 1, 1), Admission::Rejected(QUEUE_FULL)));
        assert_eq!(t.wait(Duration::from_millis(20)).await.unwrap_err(), TIME_OUT);
        let Admission::Queued(t) = l.admit(&fs, 1, 1) else { panic!() };
        drop(t);
        assert_eq!(l.dump_row()[8], "1", "cancelled");
        assert_eq!(l.dump_row()[7], "1", "timed out");
    }

    #[test]
    fn reject_levels_refuse_at_the_limit_and_wide_requests_run_alone() {
        let l = Level::new("r", "u", Some(None));
        l.set_limits(Limits { nominal: 3, lower: 3, upper: 3 });
        let fs = FlowMetrics::new("test", "fs");
        let Admission::Now(wide) = l.admit(&fs, 0, 10) else { panic!("wider than the limit, alone") };
        assert!(matches!(l.admit(&fs, 0, 1), Admission::Rejected(CONCURRENCY_LIMIT)));
        drop(wide);
        assert!(matches!(l.admit(&fs, 0, 1), Admission::Now(_)));
    }

    #[tokio::test]
    async fn freed_seats_go_to_the_queue_with_the_fewest_executing() {
        // 2 queues, hand 1: flows land on fixed queues
        let l = level(2, 1, 100, 2);
        let fs = FlowMetrics::new("test", "fs");
        let (mut heavy, mut light) = (None, None);
        for h in 0..100u64 {
            let q = shuffle::deal(h, 2, 1)[0];
            if q == 0 && heavy.is_none() {
                heavy = Some(h);
            }
            if q == 1 && light.is_none() {
                light = Some(h);
            }
        }
        let (heavy, light) = (heavy.unwrap(), light.unwrap());
        let Admission::Now(a) = l.admit(&fs, heavy, 1) else { panic!() };
        let Admission::Now(b) = l.admit(&fs, heavy, 1) else { panic!() };
        let mut heavy_waiting: Vec<Ticket> = (0..5)
            .map(|_| match l.admit(&fs, heavy, 1) {
                Admission::Queued(t) => t,
                _ => panic!(),
            })
            .collect();
        let Admission::Queued(lt) = l.admit(&fs, light, 1) else { panic!() };
        drop(a);
        // the light flow's queue has no seats in use: it goes first despite arriving last
        let seat = lt.wait(Duration::from_millis(100)).await.expect("light flow served first");
        drop((seat, b));
        let first = heavy_waiting.remove(0);
        first.wait(Duration::from_millis(100)).await.expect("then the heavy one");
    }
}
