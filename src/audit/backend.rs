//! Audit backends and their modes (kube's `--audit-*-mode`): `blocking` delivers in the
//! request's path, `blocking-strict` also fails the request if the RequestReceived event
//! cannot be stored, `batch` queues into a bounded buffer drained by a background worker;
//! a full buffer drops the event and counts it (`apiserver_audit_error_total{plugin="buffered"}`).
//! Logs queue bytes in one buffer (`LogQueue`). A blocking log commits as a group: the
//! requests of one scheduler tick queue their events, the first to find no write under way
//! writes them all in one write, and each waits until the write holding its event is done.
//! The webhook's buffer is a queue of events.

use super::log::LogWriter;
use super::metrics::{BUFFERED_ERRORS, ERROR_TOTAL};
use super::webhook::Webhook;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Notify};

/// How long the batch log gathers events after the first when `--audit-log-batch-max-wait`
/// is 0: they go out in one write, and the worker wakes at most 100 times a second (each
/// wake-up preempts a request thread on a busy machine).
const LOG_PACE: Duration = Duration::from_millis(10);

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

pub enum Pending {
    /// A blocking webhook's event, still to be queued.
    Webhook { queue: mpsc::Sender<Item>, event: Bytes },
    /// A blocking log's event, queued for the write `commit`.
    Log { queue: Arc<LogQueue>, commit: Arc<Commit> },
}

impl Pending {
    /// Waits until the event was delivered (a webhook's event first waits for room).
    pub async fn wait(self) -> bool {
        match self {
            Pending::Webhook { queue, event } => {
                let (ack, done) = oneshot::channel();
                if queue.send((event, Some(ack))).await.is_err() {
                    return false;
                }
                done.await.unwrap_or(false)
            }
            Pending::Log { queue, commit } => {
                // the other requests of this tick queue theirs first: one write for all
                let _unwritten = WriteIfDropped { queue: &queue, commit: &commit };
                tokio::task::yield_now().await;
                commit.wait(&queue).await
            }
        }
    }
}

/// A request given up (its connection gone) before its event was written writes it then:
/// no one else might come to take it.
struct WriteIfDropped<'a> {
    queue: &'a LogQueue,
    commit: &'a Commit,
}

impl Drop for WriteIfDropped<'_> {
    fn drop(&mut self) {
        if self.commit.result().is_none() {
            self.queue.write_now();
        }
    }
}

/// Where a backend's events go before they are delivered.
enum Intake {
    /// The batch log's queue, drained by its worker.
    Log(Arc<LogQueue>),
    /// A blocking log's queue, written by the requests that wait on it.
    Commit(Arc<LogQueue>),
    /// The webhook's queue, and the signal that tells its worker to deliver what is queued
    /// and end.
    Webhook { queue: mpsc::Sender<Item>, close: Arc<Notify> },
}

pub struct Backend {
    mode: Mode,
    intake: Intake,
    /// The worker thread, joined at shutdown once it has delivered what was queued.
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// How long shutdown waits for each backend to deliver what is still queued (a dead webhook
/// must not hold the process).
const SHUTDOWN_FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// One write of a blocking log: the events queued while the previous write ran.
pub struct Commit {
    state: AtomicU8,
    done: Notify,
}

const WRITING: u8 = 0;
const STORED: u8 = 1;
const FAILED: u8 = 2;

impl Commit {
    fn new() -> Arc<Commit> {
        Arc::new(Commit { state: AtomicU8::new(WRITING), done: Notify::new() })
    }

    fn finish(&self, stored: bool) {
        self.state.store(if stored { STORED } else { FAILED }, Ordering::Release);
        self.done.notify_waiters();
    }

    fn result(&self) -> Option<bool> {
        match self.state.load(Ordering::Acquire) {
            WRITING => None,
            state => Some(state == STORED),
        }
    }

    /// Writes `queue` when no write is under way, else waits for the writer to finish this
    /// commit or to hand the next write over (it wakes this commit's waiters when lines are
    /// left). True once written, false if the write failed.
    async fn wait(&self, queue: &LogQueue) -> bool {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            // registered before looking: a finish or hand-over after this is not missed
            notified.as_mut().enable();
            if let Some(stored) = self.result() {
                return stored;
            }
            queue.write_queued();
            if let Some(stored) = self.result() {
                return stored;
            }
            notified.await;
        }
    }
}

/// A commit taken for writing fails its waiters if the writer panics before finishing it.
struct Finishing(Arc<Commit>);

impl Drop for Finishing {
    fn drop(&mut self) {
        if self.0.result().is_none() {
            self.0.finish(false);
        }
    }
}

/// A log's buffer: events appended as bytes to one buffer that is taken whole, by the batch
/// log's worker or by a blocking log's writing request. A request pays one copy under a short
/// lock: no allocation, no hand-off, and in batch mode no wake-up per event (only the first
/// event after a write wakes the worker).
pub struct LogQueue {
    pending: Mutex<Lines>,
    sink: Arc<Sink>,
    /// A blocking log's write slot, held by the request that writes; the buffer it swaps the
    /// queued lines into.
    writing: Mutex<Vec<u8>>,
    ready: Notify,
    capacity: usize,
    closed: AtomicBool,
}

struct Lines {
    bytes: Vec<u8>,
    events: usize,
    /// A blocking log's next write, which these lines go out in.
    commit: Option<Arc<Commit>>,
}

/// A batch log's buffer is full: the event was dropped (and counted).
struct Full;

/// What a log write buffer may keep between writes (a burst of large events does not pin it).
const LINES_KEEP: usize = 4 * 1024 * 1024;

/// Empties a write buffer for the next take, dropping it if a burst left it large.
fn recycle(lines: &mut Vec<u8>) {
    lines.clear();
    if lines.capacity() > LINES_KEEP {
        *lines = Vec::new();
    }
}

impl LogQueue {
    fn new(sink: Arc<Sink>, capacity: usize, blocking: bool) -> Arc<LogQueue> {
        Arc::new(LogQueue {
            pending: Mutex::new(Lines { bytes: Vec::new(), events: 0, commit: blocking.then(Commit::new) }),
            sink,
            writing: Mutex::new(Vec::new()),
            ready: Notify::new(),
            capacity,
            closed: AtomicBool::new(false),
        })
    }

    /// Queues one line; for a blocking log, the write to wait for.
    fn push(&self, line: &[u8]) -> Result<Option<Arc<Commit>>, Full> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        // after shutdown no worker takes it: dropped, and counted
        if p.events >= self.capacity || self.closed.load(Ordering::Acquire) {
            drop(p);
            BUFFERED_ERRORS.inc();
            return Err(Full);
        }
        let first = p.events == 0;
        p.bytes.extend_from_slice(line);
        p.events += 1;
        let commit = p.commit.clone();
        drop(p);
        // the batch worker waits for the first event; blocking logs have no worker
        if first && commit.is_none() {
            self.ready.notify_one();
        }
        Ok(commit)
    }

    /// Swaps the waiting lines into `into` (which must be empty): the number of events and,
    /// for a blocking log, the write they wait for (later lines go into a new one).
    fn take(&self, into: &mut Vec<u8>) -> (usize, Option<Arc<Commit>>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut p.bytes, into);
        let events = std::mem::take(&mut p.events);
        let commit = if events > 0 { p.commit.as_mut().map(|c| std::mem::replace(c, Commit::new())) } else { None };
        (events, commit)
    }

    /// Writes what is queued in one write, unless a write is under way. Lines queued
    /// meanwhile are handed over: their commit's waiters are woken to write them, so no one
    /// request (nor its runtime thread) keeps writing for others while load lasts.
    fn write_queued(&self) {
        match self.writing.try_lock() {
            Ok(lines) => self.write(lines),
            Err(std::sync::TryLockError::WouldBlock) => {}
            // the buffer is cleared before use: a panicked writer leaves nothing behind
            Err(std::sync::TryLockError::Poisoned(p)) => self.write(p.into_inner()),
        }
    }

    /// `write_queued`, after the write under way if there is one.
    fn write_now(&self) {
        self.write(self.writing.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn write(&self, mut lines: std::sync::MutexGuard<'_, Vec<u8>>) {
        lines.clear();
        let (events, commit) = self.take(&mut lines);
        if events > 0 {
            let commit = commit.map(Finishing);
            let stored = self.sink.write_log(&lines, events);
            if let Some(c) = commit {
                c.0.finish(stored);
            }
        }
        recycle(&mut lines);
        drop(lines);
        self.hand_over();
    }

    /// Wakes the waiters of the lines queued during a write, for one of them to write them.
    fn hand_over(&self) {
        let next = {
            let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.commit.clone().filter(|_| p.events > 0)
        };
        if let Some(next) = next {
            next.done.notify_waiters();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Backend {
    /// A backend. Batch logs and webhooks get a worker thread of their own (a slow receiver
    /// or disk never holds a request runtime thread); a blocking log is written by its
    /// requests, as their mode promises.
    pub fn new(name: &'static str, mode: Mode, sink: Sink, batch: BatchConfig) -> Backend {
        let sink = Arc::new(sink);
        let mut worker = None;
        let mut spawn = |work: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
            let thread = std::thread::Builder::new()
                .name(format!("audit-{name}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("audit runtime");
                    rt.block_on(work);
                })
                .expect("spawn audit worker");
            worker = Some(thread);
        };
        let intake = match (&*sink, mode) {
            (Sink::Log(_), Mode::Batch) => {
                let q = LogQueue::new(sink, batch.buffer_size.max(1), false);
                spawn(Box::pin(log_worker(q.clone(), batch)));
                Intake::Log(q)
            }
            // every event waits to be written: the request path bounds the queue
            (Sink::Log(_), _) => Intake::Commit(LogQueue::new(sink, usize::MAX, true)),
            (Sink::Webhook(_), _) => {
                let batch = if mode == Mode::Batch {
                    batch
                } else {
                    BatchConfig { max_batch_size: 1, throttle_enable: false, ..batch }
                };
                let (queue, rx) = mpsc::channel(batch.buffer_size.max(1));
                let close = Arc::new(Notify::new());
                spawn(Box::pin(webhook_worker(rx, sink, batch, close.clone())));
                Intake::Webhook { queue, close }
            }
        };
        Backend { mode, intake, worker: Mutex::new(worker) }
    }

    /// Delivers what is still queued (batch modes), waiting `SHUTDOWN_FLUSH_LIMIT` at most;
    /// later events are not taken. Idempotent.
    pub fn shutdown(&self) {
        let Some(worker) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        match &self.intake {
            Intake::Log(q) => {
                q.closed.store(true, Ordering::Release);
                q.ready.notify_one();
            }
            Intake::Webhook { close, .. } => close.notify_one(),
            Intake::Commit(_) => {}
        }
        let deadline = Instant::now() + SHUTDOWN_FLUSH_LIMIT;
        while !worker.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if worker.is_finished() {
            let _ = worker.join();
        } else {
            tracing::warn!(limit = ?SHUTDOWN_FLUSH_LIMIT, "audit backend did not deliver its queued events before shutdown");
        }
    }

    pub fn strict(&self) -> bool {
        self.mode == Mode::BlockingStrict
    }

    /// Hands one event over as the mode promises. `line` is the serialised event followed by
    /// a newline; blocking modes answer `Pending`, to wait for its delivery.
    pub fn submit(&self, line: &[u8]) -> Submitted {
        match &self.intake {
            Intake::Log(q) => Submitted::Done(q.push(line).is_ok()),
            Intake::Commit(q) => match q.push(line) {
                Ok(Some(commit)) => Submitted::Pending(Pending::Log { queue: q.clone(), commit }),
                _ => Submitted::Done(false),
            },
            Intake::Webhook { queue: q, .. } => {
                let event = Bytes::copy_from_slice(line.strip_suffix(b"\n").unwrap_or(line));
                if self.mode != Mode::Batch {
                    return Submitted::Pending(Pending::Webhook { queue: q.clone(), event });
                }
                Submitted::Done(match q.try_send((event, None)) {
                    Ok(()) => true,
                    Err(_) => {
                        BUFFERED_ERRORS.inc();
                        false
                    }
                })
            }
        }
    }

    /// `submit`, then the wait a blocking mode needs; false when not stored or dropped.
    pub async fn process(&self, line: &[u8]) -> bool {
        match self.submit(line) {
            Submitted::Done(ok) => ok,
            Submitted::Pending(p) => p.wait().await,
        }
    }
}

/// The batch log's worker: after the first event of a batch, waits `max_batch_wait` (or
/// `LOG_PACE` when that is 0) for more, then writes everything queued in one write; throttled,
/// it spends a token per `max_batch_size` events, as kube's batches would.
async fn log_worker(q: Arc<LogQueue>, cfg: BatchConfig) {
    let mut bucket = TokenBucket::new(cfg.throttle_qps, cfg.throttle_burst);
    let max = cfg.max_batch_size.max(1);
    let wait = if cfg.max_batch_wait.is_zero() { LOG_PACE } else { cfg.max_batch_wait };
    let mut lines = Vec::new();
    loop {
        q.ready.notified().await;
        if !q.closed.load(Ordering::Acquire) {
            // only a drop notifies while events wait: it cuts the gathering short
            let _ = tokio::time::timeout(wait, q.ready.notified()).await;
        }
        let closed = q.closed.load(Ordering::Acquire);
        let (events, _) = q.take(&mut lines);
        if events > 0 {
            if cfg.throttle_enable {
                for _ in 0..events.div_ceil(max) {
                    bucket.take().await;
                }
            }
            q.sink.write_log(&lines, events);
        }
        recycle(&mut lines);
        if closed {
            return;
        }
    }
}

/// The webhook's worker: drains the queue in batches of up to `max_batch_size`, waiting at
/// most `max_batch_wait` for a batch to fill, at most `throttle_qps` batches a second when
/// throttled, and posts one EventList per batch.
async fn webhook_worker(mut rx: mpsc::Receiver<Item>, sink: Arc<Sink>, cfg: BatchConfig, close: Arc<Notify>) {
    let mut bucket = TokenBucket::new(cfg.throttle_qps, cfg.throttle_burst);
    let max = cfg.max_batch_size.max(1);
    let mut items: Vec<Item> = Vec::new();
    // once closed, the queue takes nothing new and `recv` ends when it is empty
    let mut closing = false;
    loop {
        let first = tokio::select! {
            item = rx.recv() => item,
            _ = close.notified(), if !closing => {
                closing = true;
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { return };
        items.push(first);
        let deadline = tokio::time::Instant::now() + cfg.max_batch_wait;
        while items.len() < max {
            match rx.try_recv() {
                Ok(item) => items.push(item),
                Err(_) if closing || cfg.max_batch_wait.is_zero() => break,
                Err(_) => tokio::select! {
                    item = tokio::time::timeout_at(deadline, rx.recv()) => match item {
                        Ok(Some(item)) => items.push(item),
                        _ => break,
                    },
                    _ = close.notified() => {
                        closing = true;
                        rx.close();
                    }
                },
            }
        }
        if cfg.throttle_enable {
            bucket.take().await;
        }
        let events: Vec<Bytes> = items.iter().map(|(e, _)| e.clone()).collect();
        let ok = sink.post(&events).await;
        for (_, ack) in items.drain(..) {
            if let Some(ack) = ack {
                let _ = ack.send(ok);
            }
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
    use std::path::Path;

    /// A log sink on `path` (10 MB before rotating, no backups kept).
    fn file_sink(path: &Path) -> Sink {
        Sink::Log(Mutex::new(LogWriter::File(super::super::log::RotatingFile::open(path, 10, 0, 0).unwrap())))
    }

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
    async fn batch_log_drops_past_its_buffer_and_writes_what_is_queued_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.log");
        // a batch that would wait a minute: only the drop makes the worker write
        let batch = BatchConfig { max_batch_wait: Duration::from_secs(60), ..cfg(2) };
        let b = Backend::new("test", Mode::Batch, file_sink(&path), batch);
        let dropped = BUFFERED_ERRORS.get();
        assert!(b.process(b"{\"i\":0}\n").await);
        assert!(b.process(b"{\"i\":1}\n").await);
        assert!(!b.process(b"{\"i\":2}\n").await, "a full buffer drops the event");
        assert!(BUFFERED_ERRORS.get() > dropped, "and counts it");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "", "still gathering the batch");
        drop(b);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&path).unwrap() != "{\"i\":0}\n{\"i\":1}\n" {
            assert!(Instant::now() < deadline, "the queued events were not written at drop");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn batch_log_coalesces_queued_events_in_order_and_blocking_writes_before_returning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("batch.log");
        // kube's log defaults: batches of one, no wait
        let batch = BatchConfig { max_batch_size: 1, max_batch_wait: Duration::ZERO, ..cfg(5000) };
        let b = Backend::new("test", Mode::Batch, file_sink(&path), batch);
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
        let b = Backend::new("test", Mode::Blocking, file_sink(&path), cfg(10));
        for i in 0..3 {
            assert!(b.process(format!("{{\"b\":{i}}}\n").as_bytes()).await);
            assert_eq!(
                std::fs::read_to_string(&path).unwrap().lines().count(),
                i + 1,
                "written before process returns"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_log_requests_each_return_after_their_event_is_written_and_none_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("commit.log");
        let b = Arc::new(Backend::new("test", Mode::Blocking, file_sink(&path), cfg(1)));
        let tasks: Vec<_> = (0..400)
            .map(|i| {
                let (b, path) = (b.clone(), path.clone());
                tokio::spawn(async move {
                    let line = format!("{{\"c\":{i}}}\n");
                    assert!(b.process(line.as_bytes()).await, "stored");
                    let text = std::fs::read_to_string(&path).unwrap();
                    assert!(text.contains(&line), "event {i} written before process returned");
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut got: Vec<&str> = text.lines().collect();
        got.sort();
        let mut want: Vec<String> = (0..400).map(|i| format!("{{\"c\":{i}}}")).collect();
        want.sort();
        assert_eq!(got, want, "every event once, none dropped past the batch buffer size");
    }

    #[test]
    fn a_blocking_request_given_up_while_waiting_still_has_its_event_written() {
        use std::future::Future;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.log");
        let b = Backend::new("test", Mode::Blocking, file_sink(&path), cfg(1));
        {
            let mut wait = std::pin::pin!(b.process(b"{\"gone\":1}\n"));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(wait.as_mut().poll(&mut cx).is_pending(), "waits for its group's write");
        } // dropped, as pingora drops a request whose client went away
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"gone\":1}\n");
    }

    #[tokio::test]
    #[allow(clippy::await_holding_lock)] // the test plays a writer holding the write slot
    async fn lines_queued_during_a_write_are_handed_over_to_their_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handover.log");
        let q = LogQueue::new(Arc::new(file_sink(&path)), usize::MAX, true);
        // a writer under way: it has taken the first line and holds the write slot
        let first = q.push(b"{\"w\":1}\n").unwrap_or_else(|_| panic!("queued")).unwrap();
        let writing = q.writing.lock().unwrap();
        let mut taken = Vec::new();
        let (_, first_commit) = q.take(&mut taken);
        assert!(Arc::ptr_eq(&first, first_commit.as_ref().unwrap()));
        // a request queues meanwhile, finds the slot taken and waits
        let next = q.push(b"{\"w\":2}\n").unwrap_or_else(|_| panic!("queued")).unwrap();
        let waiter = {
            let (q, next) = (q.clone(), next.clone());
            tokio::spawn(async move { next.wait(&q).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "the slot is taken");
        // the writer finishes its own write and hands over: the waiter writes its line itself
        first.finish(true);
        drop(writing);
        q.hand_over();
        let stored = tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("handed over").unwrap();
        assert!(stored);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"w\":2}\n", "the waiter wrote only its own line");
    }

    #[test]
    fn a_batch_event_after_shutdown_is_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::new("test", Mode::Batch, file_sink(&dir.path().join("late.log")), cfg(10));
        b.shutdown();
        let dropped = BUFFERED_ERRORS.get();
        assert!(matches!(b.submit(b"{\"late\":1}\n"), Submitted::Done(false)), "no worker is left to write it");
        assert!(BUFFERED_ERRORS.get() > dropped, "counted");
    }

    #[tokio::test]
    async fn blocking_log_reports_a_failed_write_to_the_waiting_request() {
        let errors = ERROR_TOTAL.with_label_values(&["log"]).get();
        let b = Backend::new("test", Mode::BlockingStrict, file_sink(Path::new("/dev/full")), cfg(10));
        assert!(!b.process(b"{\"full\":1}\n").await, "a write to a full disk is not stored");
        assert!(ERROR_TOTAL.with_label_values(&["log"]).get() > errors, "and counted");
        assert!(b.strict());
    }
}
