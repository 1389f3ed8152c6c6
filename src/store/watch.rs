//! In-memory watch fan-out: the single writer publishes each committed event once; every
//! watcher whose key prefix matches gets it through its own bounded buffer. A watcher whose
//! buffer is full is cut off (its stream ends, the client re-lists), so one stalled client
//! never holds memory or the writer.

use super::backend::Event;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Events a watcher may have queued before it is cut off.
pub const WATCHER_BUFFER: usize = 1024;

struct Watcher {
    prefix: String,
    tx: mpsc::Sender<Arc<Event>>,
}

#[derive(Default)]
pub struct Hub {
    watchers: Mutex<Vec<Watcher>>,
}

impl Hub {
    /// A new watcher on keys under `prefix`.
    pub fn subscribe(&self, prefix: &str) -> mpsc::Receiver<Arc<Event>> {
        let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
        self.watchers.lock().unwrap().push(Watcher { prefix: prefix.to_string(), tx });
        rx
    }

    /// Delivers `ev` to every matching watcher; drops the gone and the stalled ones.
    pub fn publish(&self, ev: &Arc<Event>) {
        let mut ws = self.watchers.lock().unwrap();
        ws.retain(|w| {
            if !ev.key.starts_with(&w.prefix) {
                return !w.tx.is_closed();
            }
            match w.tx.try_send(ev.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    crate::store::metrics::WATCHERS_CUT_OFF.inc();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        crate::store::metrics::WATCHERS.set(ws.len() as i64);
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
        Arc::new(Event { rev, kind: EventType::Added, key: key.into(), value: Arc::new(json!({})), prev: None })
    }

    #[test]
    fn fans_out_by_prefix_and_cuts_off_stalled() {
        let hub = Hub::default();
        let mut a = hub.subscribe("/registry/configmaps/a/");
        let mut all = hub.subscribe("/registry/configmaps/");
        hub.publish(&ev(1, "/registry/configmaps/a/x"));
        hub.publish(&ev(2, "/registry/configmaps/b/x"));
        assert_eq!(a.try_recv().unwrap().rev, 1);
        assert!(a.try_recv().is_err());
        assert_eq!(all.try_recv().unwrap().rev, 1);
        assert_eq!(all.try_recv().unwrap().rev, 2);
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
        assert!(all.blocking_recv().is_none());
    }
}
