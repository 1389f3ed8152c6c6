//! kube's DroppedRequestsTracker: the `Retry-After` a priority level's 429 carries, grown as
//! TCP's congestion window shrinks. It starts at one second, doubles (to 32) while a level
//! keeps dropping at least three requests per second of it, and falls back a second at a time
//! once the drops thin out: clients that honour it (client-go does) back off instead of
//! retrying into a full level every second.

use std::collections::HashMap;
use std::sync::Mutex;

const MAX_RETRY_AFTER: i64 = 32;

/// One level's drops per second, kept as long as `retry_after` can look back.
#[derive(Debug)]
struct Stats {
    history: Vec<(i64, i64)>,
    current_unix: i64,
    current_count: i64,
    retry_after: i64,
    retry_after_update_unix: i64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats { history: Vec::new(), current_unix: 0, current_count: 0, retry_after: 1, retry_after_update_unix: 0 }
    }
}

impl Stats {
    /// kube's recordDroppedRequest: the history moves on, and `retry_after` is reconsidered,
    /// only as a new second begins.
    fn record(&mut self, unix: i64) {
        if self.current_unix == unix {
            self.current_count += 1;
            return;
        }
        self.update_history(self.current_unix, self.current_count);
        self.current_unix = unix;
        self.current_count = 1;
        self.update_retry_after(unix);
    }

    fn update_history(&mut self, unix: i64, count: i64) {
        self.history.push((unix, count));
        let keep = (2 * self.retry_after).min(MAX_RETRY_AFTER);
        let start = self.history.iter().position(|(t, _)| unix - t <= keep).unwrap_or(self.history.len());
        self.history.drain(..start);
    }

    /// kube's updateRetryAfterIfNeededLocked, over the drops of the last `retry_after` seconds.
    fn update_retry_after(&mut self, unix: i64) {
        let retry_after = self.retry_after;
        let dropped: i64 = self
            .history
            .iter()
            .rev()
            .take_while(|(t, _)| unix - t <= retry_after)
            .filter(|(t, _)| *t < unix)
            .map(|(_, n)| n)
            .sum();
        if unix - self.retry_after_update_unix >= retry_after && dropped >= 3 * retry_after {
            self.retry_after = (retry_after * 2).min(MAX_RETRY_AFTER);
            self.retry_after_update_unix = unix;
        } else if dropped < retry_after && retry_after > 1 {
            self.retry_after = retry_after - 1;
        }
    }
}

/// The drops of every priority level, by name.
#[derive(Debug, Default)]
pub struct Dropped(Mutex<HashMap<String, Stats>>);

impl Dropped {
    /// Records a drop by `level` at `unix` (seconds) and returns the Retry-After to send.
    pub fn record(&self, level: &str, unix: i64) -> u32 {
        let mut levels = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let stats = levels.entry(level.to_string()).or_default();
        stats.record(unix);
        stats.retry_after as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kube's dropped_requests_tracker_test: sustained drops double the wait second by second
    /// of it, up to 32; quiet seconds bring it down one at a time.
    #[test]
    fn retry_after_grows_under_sustained_drops_and_falls_back() {
        let d = Dropped::default();
        let mut at = 1000;
        let mut seen = Vec::new();
        for _ in 0..40 {
            let mut last = 0;
            for _ in 0..100 {
                last = d.record("tiny", at);
            }
            seen.push(last);
            at += 1;
        }
        assert_eq!(seen[0], 1);
        assert!(seen.windows(2).all(|w| w[1] >= w[0]), "{seen:?}");
        assert_eq!(*seen.last().unwrap(), 32, "{seen:?}");
        // one drop now and then: back down
        let mut quiet = Vec::new();
        for _ in 0..10 {
            at += 40;
            quiet.push(d.record("tiny", at));
        }
        assert!(quiet.windows(2).all(|w| w[1] < w[0]), "{quiet:?}");
        assert_eq!(d.record("other", at), 1, "per level");
    }
}
