//! In-memory watch fan-out: the single writer publishes each committed event once; every
//! watcher whose key prefix matches gets it through its own bounded queue (in events and in
//! bytes). A watcher whose queue is full is cut off and what it had queued is dropped (its
//! stream ends; the client watches again from the last event it got, as after kube's cacher
//! ends a blocked watcher), so one stalled client never holds memory or the writer.
//!
//! An idle watcher costs one small allocation (its queue allocates only when events wait in
//! it), and an event is shared by all its watchers together with its rendered JSON lines
//! (`Delivery`), so a write to N watchers serializes once, not N times.

use super::backend::Event;
use bytes::Bytes;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Poll, Waker};

/// Events a watcher may have queued before it is cut off.
pub const WATCHER_BUFFER: usize = 1024;

/// Bytes of serialized objects a watcher may have queued before it is cut off (more than any
/// one object: a body is at most 3 MiB).
pub const WATCHER_BUFFER_BYTES: usize = 16 << 20;

/// The bytes of serialized object an event queued for a watcher keeps alive.
fn size(d: &Delivery) -> usize {
    d.event.raw.as_ref().map_or(0, Bytes::len)
}

/// One event on its way to watchers, with its watch line rendered once for all of them.
#[derive(Debug)]
pub struct Delivery {
    pub event: Arc<Event>,
    /// JSON lines, then protobuf frames, per event type, with the apiVersion they are of.
    lines: [OnceLock<(Box<str>, Bytes)>; 6],
}

impl Delivery {
    pub fn new(event: Arc<Event>) -> Self {
        Delivery { event, lines: Default::default() }
    }

    /// The line (or with `protobuf` the frame) for event type `ty` (ADDED, MODIFIED, DELETED)
    /// in the form most watchers send (the object as served at `api_version`): rendered by
    /// the first watcher that asks, shared after. A watcher of another version of the same
    /// storage (events.k8s.io's view of core Events, a CRD's other versions) renders its own.
    pub fn shared_line(&self, protobuf: bool, api_version: &str, ty: &str, render: impl Fn() -> Bytes) -> Bytes {
        let slot = match ty {
            "ADDED" => 0,
            "MODIFIED" => 1,
            _ => 2,
        } + if protobuf { 3 } else { 0 };
        let (v, b) = self.lines[slot].get_or_init(|| (api_version.into(), render()));
        if &**v == api_version {
            b.clone()
        } else {
            render()
        }
    }
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Arc<Delivery>>,
    /// `size` of the events queued.
    bytes: usize,
    waker: Option<Waker>,
    /// Closed by the hub (the receiver drains what is queued, then sees the end), cut off
    /// as stalled (nothing queued stays), or dropped by the receiver (the hub forgets it at the
    /// next publish).
    closed: bool,
}

impl Queue {
    fn pop(&mut self) -> Option<Arc<Delivery>> {
        let d = self.events.pop_front()?;
        self.bytes -= size(&d).min(self.bytes);
        Some(d)
    }
}

/// The receiving end of one watcher.
pub struct Receiver(Arc<Mutex<Queue>>);

impl Receiver {
    /// The next event; `None` once the watcher was cut off and its queue is drained.
    pub async fn recv(&mut self) -> Option<Arc<Delivery>> {
        poll_fn(|cx| {
            let mut q = self.0.lock().unwrap();
            if let Some(d) = q.pop() {
                return Poll::Ready(Some(d));
            }
            if q.closed {
                return Poll::Ready(None);
            }
            if !q.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                q.waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// The next queued event, if any (`Err(true)` once cut off and drained).
    pub fn try_recv(&mut self) -> Result<Arc<Delivery>, bool> {
        let mut q = self.0.lock().unwrap();
        q.pop().ok_or(q.closed)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut q = self.0.lock().unwrap();
        q.closed = true;
        q.events = VecDeque::new();
        q.waker = None;
    }
}

struct Watcher {
    prefix: Box<str>,
    queue: Arc<Mutex<Queue>>,
}

#[derive(Default)]
pub struct Hub {
    watchers: Mutex<Vec<Watcher>>,
    /// The server is shutting down: every watcher is closed, a new one at once.
    shut: AtomicBool,
}

impl Hub {
    /// A new watcher on keys under `prefix`.
    pub fn subscribe(&self, prefix: &str) -> Receiver {
        let mut ws = self.watchers.lock().unwrap();
        // under the lock, so that no watcher slips in past `shut_down`
        let closed = self.shut.load(Ordering::Acquire);
        let queue = Arc::new(Mutex::new(Queue { closed, ..Queue::default() }));
        if !closed {
            ws.push(Watcher { prefix: prefix.into(), queue: queue.clone() });
        }
        Receiver(queue)
    }

    /// Delivers `ev` to every matching watcher; drops the gone and the stalled ones.
    pub fn publish(&self, ev: &Arc<Event>) {
        let delivery = Arc::new(Delivery::new(ev.clone()));
        let mut ws = self.watchers.lock().unwrap();
        ws.retain(|w| {
            let mut q = w.queue.lock().unwrap();
            if q.closed {
                return false;
            }
            if !ev.key.starts_with(&*w.prefix) {
                return true;
            }
            let n = size(&delivery);
            let full = q.events.len() >= WATCHER_BUFFER || (!q.events.is_empty() && q.bytes + n > WATCHER_BUFFER_BYTES);
            if full {
                crate::store::metrics::WATCHERS_CUT_OFF.inc();
                q.closed = true;
                // what a stalled client has not read goes now, not when its stream times out
                q.events = VecDeque::new();
                q.bytes = 0;
            } else {
                q.bytes += n;
                q.events.push_back(delivery.clone());
            }
            if let Some(w) = q.waker.take() {
                w.wake();
            }
            !q.closed
        });
        crate::store::metrics::WATCHERS.set(ws.len() as i64);
    }

    /// Ends every watcher (each drains what is queued, then sees the end), as kube's cacher
    /// does when its view starts over; they come back with a resourceVersion and are told
    /// whether it is still served.
    pub fn close_all(&self) {
        let mut ws = self.watchers.lock().unwrap();
        for w in ws.drain(..) {
            let mut q = w.queue.lock().unwrap();
            q.closed = true;
            if let Some(w) = q.waker.take() {
                w.wake();
            }
        }
        crate::store::metrics::WATCHERS.set(0);
    }

    /// Ends every watcher, and every one subscribed later (each drains what is queued, then
    /// sees the end): the server is shutting down, and its clients watch again elsewhere.
    pub fn shut_down(&self) {
        self.shut.store(true, Ordering::Release);
        self.close_all();
    }

    pub fn len(&self) -> usize {
        self.watchers.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::backend::EventType;
    use serde_json::json;

    fn ev(rev: u64, key: &str) -> Arc<Event> {
        Arc::new(Event {
            rev,
            kind: EventType::Added,
            key: key.into(),
            value: Arc::new(json!({})),
            prev: None,
            raw: None,
        })
    }

    #[test]
    fn fans_out_by_prefix_and_cuts_off_stalled() {
        let hub = Hub::default();
        let mut a = hub.subscribe("/registry/configmaps/a/");
        let mut all = hub.subscribe("/registry/configmaps/");
        hub.publish(&ev(1, "/registry/configmaps/a/x"));
        hub.publish(&ev(2, "/registry/configmaps/b/x"));
        assert_eq!(a.try_recv().unwrap().event.rev, 1);
        assert!(a.try_recv().is_err());
        assert_eq!(all.try_recv().unwrap().event.rev, 1);
        assert_eq!(all.try_recv().unwrap().event.rev, 2);
        // `all` stops reading; `a` keeps up
        for i in 0..WATCHER_BUFFER as u64 + 1 {
            hub.publish(&ev(10 + i, "/registry/configmaps/a/x"));
            a.try_recv().unwrap();
        }
        assert_eq!(hub.len(), 1, "the stalled watcher was cut off");
        // what it had queued is gone with it; the receiver sees the end
        assert!(all.try_recv().unwrap_err());
        // a dropped receiver is forgotten at the next publish
        drop(a);
        hub.publish(&ev(5000, "/registry/configmaps/a/x"));
        assert!(hub.is_empty());
    }

    /// At shutdown every watcher ends after what it has queued, and one subscribed later
    /// starts ended.
    #[test]
    fn a_shut_hub_ends_present_and_later_watchers() {
        let hub = Hub::default();
        let mut w = hub.subscribe("/registry/configmaps/");
        hub.publish(&ev(1, "/registry/configmaps/a/x"));
        hub.shut_down();
        assert_eq!(w.try_recv().unwrap().event.rev, 1, "what was queued comes first");
        assert!(w.try_recv().unwrap_err(), "then the end");
        let mut later = hub.subscribe("/registry/configmaps/");
        assert!(later.try_recv().unwrap_err(), "a watcher after the shutdown starts ended");
        hub.publish(&ev(2, "/registry/configmaps/a/x"));
        assert!(later.try_recv().unwrap_err());
        assert!(hub.is_empty());
    }

    /// A watcher is cut off past its bytes too, whatever the count: large objects churned
    /// past a stalled client pin no more than `WATCHER_BUFFER_BYTES` of them.
    #[test]
    fn cut_off_past_its_bytes() {
        let big = |rev| {
            let mut e = Arc::unwrap_or_clone(ev(rev, "/registry/configmaps/a/x"));
            e.raw = Some(Bytes::from(vec![b' '; 1 << 20]));
            Arc::new(e)
        };
        let hub = Hub::default();
        let mut stalled = hub.subscribe("/registry/configmaps/");
        let mut reading = hub.subscribe("/registry/configmaps/");
        for rev in 0..(WATCHER_BUFFER_BYTES >> 20) as u64 {
            hub.publish(&big(rev));
            reading.try_recv().unwrap();
        }
        assert_eq!(hub.len(), 2, "{} MiB queued: not past", WATCHER_BUFFER_BYTES >> 20);
        hub.publish(&big(99));
        assert_eq!(hub.len(), 1, "one more MiB: the stalled watcher is cut off");
        assert!(stalled.try_recv().unwrap_err());
        assert_eq!(reading.try_recv().unwrap().event.rev, 99, "the one reading goes on");
        // one event larger than the bytes still reaches a watcher that keeps up
        let mut e = Arc::unwrap_or_clone(ev(100, "/registry/configmaps/a/x"));
        e.raw = Some(Bytes::from(vec![b' '; WATCHER_BUFFER_BYTES + 1]));
        hub.publish(&Arc::new(e));
        assert_eq!(reading.try_recv().unwrap().event.rev, 100);
    }

    #[tokio::test]
    async fn close_all_ends_every_watcher_after_what_it_has_queued() {
        let hub = Arc::new(Hub::default());
        let mut queued = hub.subscribe("/registry/configmaps/");
        let mut waiting = hub.subscribe("/registry/secrets/");
        hub.publish(&ev(3, "/registry/configmaps/a/x"));
        let h = hub.clone();
        let t = tokio::spawn(async move { waiting.recv().await.map(|d| d.event.rev) });
        tokio::task::yield_now().await;
        h.close_all();
        assert_eq!(t.await.unwrap(), None, "a waiting watcher is woken and ends");
        assert_eq!(queued.recv().await.unwrap().event.rev, 3, "what was queued is still delivered");
        assert!(queued.recv().await.is_none());
        assert!(hub.is_empty());
        let mut later = hub.subscribe("/registry/configmaps/");
        hub.publish(&ev(4, "/registry/configmaps/a/x"));
        assert_eq!(later.try_recv().unwrap().event.rev, 4, "a watch started afterwards is served");
    }

    #[tokio::test]
    async fn recv_wakes_on_publish_and_shares_the_line() {
        let hub = Arc::new(Hub::default());
        let mut a = hub.subscribe("/registry/configmaps/");
        let mut b = hub.subscribe("/registry/configmaps/");
        let h = hub.clone();
        let t = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            h.publish(&ev(7, "/registry/configmaps/a/x"));
        });
        let da = a.recv().await.unwrap();
        let db = b.recv().await.unwrap();
        t.await.unwrap();
        assert!(Arc::ptr_eq(&da, &db), "one delivery for all watchers");
        let renders = std::cell::Cell::new(0);
        let render = |v: &'static [u8]| {
            renders.set(renders.get() + 1);
            Bytes::from_static(v)
        };
        assert_eq!(da.shared_line(false, "v1", "ADDED", || render(b"1")), Bytes::from_static(b"1"));
        assert_eq!(db.shared_line(false, "v1", "ADDED", || render(b"2")), Bytes::from_static(b"1"));
        assert_eq!(renders.get(), 1, "rendered once for both");
        // another version's watcher, another type, another form: each its own
        assert_eq!(db.shared_line(false, "events.k8s.io/v1", "ADDED", || render(b"3")), Bytes::from_static(b"3"));
        assert_eq!(db.shared_line(false, "v1", "DELETED", || render(b"4")), Bytes::from_static(b"4"));
        assert_eq!(da.shared_line(true, "v1", "ADDED", || render(b"5")), Bytes::from_static(b"5"));
        assert_eq!(db.shared_line(true, "v1", "ADDED", || render(b"6")), Bytes::from_static(b"5"));
        assert_eq!(renders.get(), 4);
    }
}
