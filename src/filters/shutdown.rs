//! Graceful shutdown, as kube-apiserver: on SIGTERM `/readyz` fails at once, requests are
//! still served for `--shutdown-delay-duration`, then the requests in flight drain (bounded
//! by `--shutdown-drain-timeout`) before the listeners close and the process exits.

use crate::endpoints::health::Health;
use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Counts non-long-running requests in flight, for the drain.
#[derive(Default)]
pub struct Drain {
    active: AtomicUsize,
    closing: AtomicBool,
    idle: Notify,
    /// What ends long-running requests (the store's watches) when the drain begins: each
    /// watch waits on its own events only, where a wait of its own on the drain was ~80 bytes
    /// of every idle watch.
    on_close: std::sync::Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
}

/// Held by a request while it counts toward the drain; released on drop.
pub struct DrainGuard(Arc<Drain>);

impl Drop for DrainGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drain {
    /// Tracks a request that started before the drain began; later ones are not waited for.
    pub fn track(self: &Arc<Self>) -> Option<DrainGuard> {
        if self.closing.load(Ordering::Acquire) {
            return None;
        }
        self.active.fetch_add(1, Ordering::AcqRel);
        Some(DrainGuard(self.clone()))
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Runs `close` when the drain begins (at once if it has).
    pub fn on_close(&self, close: impl Fn() + Send + Sync + 'static) {
        let mut hooks = self.on_close.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_closing() {
            close();
        }
        hooks.push(Box::new(close));
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Stops tracking new requests and waits until the tracked ones are done.
    pub async fn close_and_wait(&self, limit: Duration) -> bool {
        {
            // under the hooks' lock: a hook added meanwhile sees the drain begun
            let hooks = self.on_close.lock().unwrap_or_else(|e| e.into_inner());
            self.closing.store(true, Ordering::Release);
            hooks.iter().for_each(|close| close());
        }
        let wait = async {
            loop {
                let notified = self.idle.notified();
                if self.active.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

/// How long the drained connections get to flush the last responses before pingora stops.
const FLUSH_GRACE: Duration = Duration::from_millis(250);

/// pingora's shutdown signal, with kube's shutdown sequence before it.
pub struct SignalWatch {
    pub health: Arc<Health>,
    pub drain: Arc<Drain>,
    pub delay: Duration,
    pub drain_timeout: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for SignalWatch {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => return ShutdownSignal::FastShutdown,
        }
        tracing::info!(delay = ?self.delay, "SIGTERM received: /readyz now fails; still serving during the shutdown delay");
        self.health.begin_shutdown();
        tokio::time::sleep(self.delay).await;
        let n = self.drain.active();
        tracing::info!(in_flight = n, "shutdown delay over: draining in-flight requests");
        if self.drain.close_and_wait(self.drain_timeout).await {
            // a request is done when its last bytes are handed to the connection; on HTTP/2 the
            // connection's own task still has to put them on the wire, and pingora's shutdown
            // drops that task at once
            tokio::time::sleep(FLUSH_GRACE).await;
        } else {
            tracing::warn!(left = self.drain.active(), "drain timeout reached; exiting with requests in flight");
        }
        ShutdownSignal::GracefulTerminate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_waits_for_tracked_requests_only() {
        let d = Arc::new(Drain::default());
        let g = d.track().unwrap();
        let d2 = d.clone();
        let waiter = tokio::spawn(async move { d2.close_and_wait(Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "waits while a request is in flight");
        assert!(d.track().is_none(), "requests after the drain began are not tracked");
        drop(g);
        assert!(waiter.await.unwrap());
        let d = Arc::new(Drain::default());
        let _g = d.track().unwrap();
        assert!(!d.close_and_wait(Duration::from_millis(20)).await, "bounded by the limit");
    }

    #[tokio::test]
    async fn close_hooks_run_when_the_drain_begins() {
        use std::sync::atomic::AtomicUsize;
        let d = Arc::new(Drain::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = |runs: &Arc<AtomicUsize>| {
            let runs = runs.clone();
            move || {
                runs.fetch_add(1, Ordering::SeqCst);
            }
        };
        d.on_close(counted(&runs));
        assert_eq!(runs.load(Ordering::SeqCst), 0, "not before the drain");
        d.close_and_wait(Duration::from_millis(10)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // one added once the drain has begun runs at once
        d.on_close(counted(&runs));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
