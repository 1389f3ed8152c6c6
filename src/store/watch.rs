//! In-memory watch fan-out: the single writer publishes each committed event once; every
//! watcher whose key prefix matches gets it through its own bounded queue. A watcher whose
//! queue is full is cut off (its stream ends, the client re-lists), so one stalled client
//! never holds memory or the writer.
//!
//! An idle watcher costs one small allocation (its queue allocates only when events wait in
//! it), and an event is shared by all its watchers together with its rendered JSON lines
//! (`Delivery`), so a write to N watchers serializes once, not N times.

use super::backend::Event;
use bytes::Bytes;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Poll, Waker};

/// Events a watcher may have queued before it is cut off.
pub const WATCHER_BUFFER: usize = 1024;

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
    waker: Option<Waker>,
    /// Cut off by the hub (the receiver drains what is queued, then sees the end) or
    /// dropped by the receiver (the hub forgets it at the next publish).
    closed: bool,
}

/// The receiving end of one watcher.
pub struct Receiver(Arc<Mutex<Queue>>);

impl Receiver {
    /// The next event; `None` once the watcher was cut off and its queue is drained.
    pub async fn recv(&mut self) -> Option<Arc<Delivery>> {
        poll_fn(|cx| {
            let mut q = self.0.lock().unwrap();
            if let Some(d) = q.events.pop_front() {
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
        q.events.pop_front().ok_or(q.closed)
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
}

impl Hub {
    /// A new watcher on keys under `prefix`.
    pub fn subscribe(&self, prefix: &str) -> Receiver {
        let queue = Arc::new(Mutex::new(Queue::default()));
        self.watchers.lock().unwrap().push(Watcher { prefix: prefix.into(), queue: queue.clone() });
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
            if q.events.len() >= WATCHER_BUFFER {
                crate::store::metrics::WATCHERS_CUT_OFF.inc();
                q.closed = true;
            } else {
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
        let mut n = 0;
        while all.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, WATCHER_BUFFER);
        // a closed stream: the receiver sees the end
        assert!(all.try_recv().unwrap_err());
        // a dropped receiver is forgotten at the next publish
        drop(a);
        hub.publish(&ev(5000, "/registry/configmaps/a/x"));
        assert!(hub.is_empty());
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
