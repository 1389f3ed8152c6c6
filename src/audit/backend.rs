//! Audit backends and their modes (kube's `--audit-*-mode`): `blocking` delivers in the
//! request's path, `blocking-strict` also fails the request if the RequestReceived event
//! cannot be stored, `batch` queues into a bounded buffer drained by a background worker;
//! a full buffer drops the event and counts it (`apiserver_audit_error_total{plugin="buffered"}`).

use super::log::LogWriter;
use super::metrics::{BUFFERED_ERRORS, ERROR_TOTAL};
use super::webhook::Webhook;
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The batch log worker's pause between two writes when `--audit-log-batch-max-wait` is 0:
/// events queued meanwhile go out in the next single write, and producers never have to wake
/// the worker per event (each wake-up costs both cores a context switch).
const LOG_PACE: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Blocking,
    #[value(name = "blocking-strict")]
    BlockingStrict,
    Batch,
}

#[derive(Debug, Clone)]
pub struct BatchConfig {
    pub buffer_size: usize,
    pub max_batch_size: usize,
    pub max_batch_wait: Duration,
    pub throttle_enable: bool,
    pub throttle_qps: f32,
    pub throttle_burst: usize,
}

/// Where events end up.
pub enum Sink {
    Log(Mutex<LogWriter>),
    Webhook(Webhook),
}

impl Sink {
    fn plugin(&self) -> &'static str {
        match self {
            Sink::Log(_) => "log",
            Sink::Webhook(_) => "webhook",
        }
    }

    fn report(&self, r: anyhow::Result<()>, events: usize) -> bool {
        if let Err(e) = &r {
            let plugin = self.plugin();
            tracing::error!(plugin, events, error = %format!("{e:#}"), "audit backend failed to store events");
            ERROR_TOTAL.with_label_values(&[plugin]).inc_by(events as u64);
        }
        r.is_ok()
    }

    /// Writes `events` JSON lines (each ending in a newline) to the log, in one write.
    fn write_log(&self, lines: &[u8], events: usize) -> bool {
        let r = match self {
            Sink::Log(w) => w.lock().unwrap_or_else(|p| p.into_inner()).write_lines(lines).map_err(anyhow::Error::from),
            Sink::Webhook(_) => Err(anyhow::anyhow!("not a log")),
        };
        self.report(r, events)
    }

    /// Posts one batch to the webhook.
    async fn post(&self, events: &[Bytes]) -> bool {
        let r = match self {
            Sink::Webhook(w) => w.post(events).await,
            Sink::Log(_) => Err(anyhow::anyhow!("not a webhook")),
        };
        self.report(r, events.len())
    }
}

type Item = (Bytes, Option<oneshot::Sender<bool>>);

/// What became of an event handed to a backend.
pub enum Submitted {
    /// Stored (or queued, in batch mode): true; not stored or dropped: false.
    Done(bool),
    /// A blocking webhook: the request waits for the receiver's answer.
    Pending(Pending),
}

pub struct Pending {
    queue: mpsc::Sender<Item>,
    event: Bytes,
}

impl Pending {
    /// Queues the event (waiting for room) and waits until the worker delivered it.
    pub async fn wait(self) -> bool {
        let (ack, done) = oneshot::channel();
        if self.queue.send((self.event, Some(ack))).await.is_err() {
            return false;
        }
        done.await.unwrap_or(false)
    }
}

pub struct Backend {
    mode: Mode,
    sink: Arc<Sink>,
    queue: Option<mpsc::Sender<Item>>,
}

impl Backend {
    /// A backend; log sinks in blocking modes write in the request path, everything else
    /// goes through a worker thread of its own (so a slow receiver never holds a request
    /// runtime thread).
    pub fn new(name: &'static str, mode: Mode, sink: Sink, batch: BatchConfig) -> Backend {
        let sink = Arc::new(sink);
        let direct = matches!(*sink, Sink::Log(_)) && mode != Mode::Batch;
        let queue = (!direct).then(|| {
            let batch = if mode == Mode::Batch {
                batch
            } else {
                BatchConfig { max_batch_size: 1, throttle_enable: false, ..batch }
            };
            let (tx, rx) = mpsc::channel(batch.buffer_size.max(1));
            let sink = sink.clone();
            std::thread::Builder::new()
                .name(format!("audit-{name}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("audit runtime");
                    rt.block_on(worker(rx, sink, batch));
                })
                .expect("spawn audit worker");
            tx
        });
        Backend { mode, sink, queue }
    }

    pub fn strict(&self) -> bool {
        self.mode == Mode::BlockingStrict
    }

    /// Hands one event over as the mode promises. `line` is the serialised event followed by
    /// a newline: a blocking log writes it as it is, in one write, before this returns.
    pub fn submit(&self, line: &[u8]) -> Submitted {
        let event = || Bytes::copy_from_slice(line.strip_suffix(b"\n").unwrap_or(line));
        match (&self.queue, self.mode) {
            (None, _) => Submitted::Done(self.sink.write_log(line, 1)),
            (Some(q), Mode::Batch) => Submitted::Done(match q.try_send((event(), None)) {
                Ok(()) => true,
                Err(_) => {
                    BUFFERED_ERRORS.inc();
                    false
                }
            }),
            (Some(q), _) => Submitted::Pending(Pending { queue: q.clone(), event: event() }),
        }
    }

    /// `submit`, then the wait a blocking webhook needs; false when not stored or dropped.
    pub async fn process(&self, line: &[u8]) -> bool {
        match self.submit(line) {
            Submitted::Done(ok) => ok,
            Submitted::Pending(p) => p.wait().await,
        }
    }
}

/// Drains the queue in batches of up to `max_batch_size`, waiting at most `max_batch_wait`
/// for a batch to fill, at most `throttle_qps` batches a second when throttled. The log
/// writes every batch already queued in one write (the file's content is the same as batch
/// by batch); the webhook posts one EventList per batch.
async fn worker(mut rx: mpsc::Receiver<Item>, sink: Arc<Sink>, cfg: BatchConfig) {
    let mut bucket = TokenBucket::new(cfg.throttle_qps, cfg.throttle_burst);
    let max = cfg.max_batch_size.max(1);
    let is_log = matches!(*sink, Sink::Log(_));
    let mut items: Vec<Item> = Vec::new();
    let mut lines: Vec<u8> = Vec::new();
    while let Some(first) = rx.recv().await {
        items.push(first);
        let deadline = tokio::time::Instant::now() + cfg.max_batch_wait;
        while items.len() < max {
            match rx.try_recv() {
                Ok(item) => items.push(item),
                Err(_) if cfg.max_batch_wait.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(item)) => items.push(item),
                    _ => break,
                },
            }
        }
        let ok = if is_log {
            while items.len() < cfg.buffer_size.max(max) {
                match rx.try_recv() {
                    Ok(item) => items.push(item),
                    Err(_) => break,
                }
            }
            if cfg.throttle_enable {
                for _ in 0..items.len().div_ceil(max) {
                    bucket.take().await;
                }
            }
            lines.clear();
            for (e, _) in &items {
                lines.extend_from_slice(e);
                lines.push(b'\n');
            }
            sink.write_log(&lines, items.len())
        } else {
            if cfg.throttle_enable {
                bucket.take().await;
            }
            let events: Vec<Bytes> = items.iter().map(|(e, _)| e.clone()).collect();
            sink.post(&events).await
        };
        for (_, ack) in items.drain(..) {
            if let Some(ack) = ack {
                let _ = ack.send(ok);
            }
        }
        if is_log && cfg.max_batch_wait.is_zero() {
            tokio::time::sleep(LOG_PACE).await;
        }
    }
}

struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(qps: f32, burst: usize) -> Self {
        let burst = burst.max(1) as f64;
        TokenBucket { qps: (qps as f64).max(0.001), burst, tokens: burst, last: Instant::now() }
    }

    async fn take(&mut self) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.qps).min(self.burst);
        self.last = now;
        if self.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.qps);
            tokio::time::sleep(wait).await;
            self.tokens = 1.0;
            self.last = Instant::now();
        }
        self.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(buffer: usize) -> BatchConfig {
        BatchConfig {
            buffer_size: buffer,
            max_batch_size: 400,
            max_batch_wait: Duration::from_millis(20),
            throttle_enable: false,
            throttle_qps: 10.0,
            throttle_burst: 15,
        }
    }

    #[tokio::test]
    async fn batch_mode_writes_through_the_worker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let f = super::super::log::RotatingFile::open(&path, 1, 0, 0).unwrap();
        let b = Backend::new("test", Mode::Batch, Sink::Log(Mutex::new(LogWriter::File(f))), cfg(100));
        for i in 0..10 {
            assert!(b.process(format!("{{\"i\":{i}}}\n").as_bytes()).await);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines = std::fs::read_to_string(&path).unwrap().lines().count();
            if lines == 10 {
                break;
            }
            assert!(Instant::now() < deadline, "only {lines} lines");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn batch_log_coalesces_queued_events_in_order_and_blocking_writes_before_returning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("batch.log");
        let f = super::super::log::RotatingFile::open(&path, 10, 0, 0).unwrap();
        // kube's log defaults: batches of one, no wait
        let batch = BatchConfig { max_batch_size: 1, max_batch_wait: Duration::ZERO, ..cfg(5000) };
        let b = Backend::new("test", Mode::Batch, Sink::Log(Mutex::new(LogWriter::File(f))), batch);
        for i in 0..3000 {
            assert!(b.process(format!("{{\"i\":{i}}}\n").as_bytes()).await);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let lines = loop {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() == 3000 || Instant::now() > deadline {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let got: Vec<String> = lines.lines().map(str::to_string).collect();
        let want: Vec<String> = (0..3000).map(|i| format!("{{\"i\":{i}}}")).collect();
        assert_eq!(got, want, "every event, once, in order");

        let path = dir.path().join("blocking.log");
        let f = super::super::log::RotatingFile::open(&path, 10, 0, 0).unwrap();
        let b = Backend::new("test", Mode::Blocking, Sink::Log(Mutex::new(LogWriter::File(f))), cfg(10));
        for i in 0..3 {
            assert!(b.process(format!("{{\"b\":{i}}}\n").as_bytes()).await);
            assert_eq!(
                std::fs::read_to_string(&path).unwrap().lines().count(),
                i + 1,
                "written before process returns"
            );
        }
    }
}
