//! How the store's controllers run (kube-controller-manager's informer and work queue, as a
//! thread of the store): each follows every write through a storage watch that starts with
//! the full state, so what a restart left behind, or another replica on the same etcd wrote,
//! is seen as well; it observes each change, then works off what is due. A watch cut off for
//! falling behind starts over from the full state with a fresh controller.

use super::backend::Event;
use super::{Shared, Store};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// One controller's state between changes.
pub trait Controller: Send + 'static {
    /// Takes note of one change (queues what it concerns).
    fn observe(&mut self, ev: &Event);
    /// Acts on what is due.
    fn work(&mut self, store: &Store);
    /// When something queued is due next (None: nothing is queued).
    fn next_due(&self) -> Option<Instant>;
}

/// Starts a controller thread `name` over `store`, built afresh by `make` at each (re)start.
/// It ends with the store.
pub fn start<C: Controller>(store: &Store, name: &str, make: impl Fn(&Store) -> C + Send + 'static) {
    let weak: Weak<Shared> = Arc::downgrade(&store.shared);
    let thread_name = name.to_string();
    let spawned = std::thread::Builder::new().name(name.into()).spawn(move || run(weak, &thread_name, make));
    if let Err(e) = spawned {
        tracing::error!(error = %e, controller = name, "cannot start a controller");
    }
}

fn run<C: Controller>(weak: Weak<Shared>, name: &str, make: impl Fn(&Store) -> C) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_time().build() else {
        tracing::error!(controller = name, "no runtime for a controller");
        return;
    };
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let store = Store { shared };
        let mut watch = match store.storage.watch("/registry/", None) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, controller = name, "cannot watch the store");
                drop(store);
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let mut c = make(&store);
        drop(store);
        for ev in std::mem::take(&mut watch.initial) {
            c.observe(&ev);
        }
        loop {
            // everything already queued is observed before acting, so the controller's view is current
            let ended = loop {
                match watch.rx.try_recv() {
                    Ok(d) => c.observe(&d.event),
                    Err(ended) => break ended,
                }
            };
            if ended {
                break;
            }
            let Some(shared) = weak.upgrade() else { return };
            // a bug in one pass must not end the controller
            let worked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.work(&Store { shared })));
            if worked.is_err() {
                tracing::error!(controller = name, "controller pass panicked; starting over");
                std::thread::sleep(Duration::from_secs(1));
                break;
            }
            let wait = c.next_due().map(|d| d.saturating_duration_since(Instant::now()));
            let next = rt.block_on(async {
                match wait {
                    Some(w) => tokio::time::timeout(w, watch.rx.recv()).await.ok(),
                    None => Some(watch.rx.recv().await),
                }
            });
            match next {
                Some(Some(d)) => c.observe(&d.event),
                Some(None) => break,
                None => {} // something queued is due
            }
            if weak.strong_count() == 0 {
                return;
            }
        }
    }
}
