//! The etcd backend, for several frontdoor replicas sharing one store. etcd holds the objects
//! (kube's keys under `--etcd-prefix`, JSON values without their resourceVersion, which is the
//! key's mod_revision as in kube); writes are etcd transactions that compare revisions, so
//! optimistic concurrency holds across replicas. Each replica mirrors the prefix in memory
//! from one etcd watch (kube's watch cache, in effect): reads and watches are served from the
//! mirror, and a write returns once the mirror has seen it, so a client reads its own writes.

use super::backend::{
    compaction_point, drop_through, held_bytes, initial_events, stamp, under, Event, EventType, Storage, StorageError,
    Stored, Watch,
};
use super::watch::Hub;
use anyhow::Context;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, KeyValue, TlsOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions, WatchRequestSender,
};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

/// How long a request waits for etcd, and a write for the mirror to see it.
const TIMEOUT: Duration = Duration::from_secs(10);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a consistent read waits for the mirror (kube's watch cache waits 3 s).
const SYNC_WAIT: Duration = Duration::from_secs(3);
/// The key prefix our resource keys are written with; `--etcd-prefix` replaces it in etcd.
const REGISTRY: &str = "/registry";

struct Mirror {
    objects: BTreeMap<String, Stored>,
    /// The newest revision the mirror has applied.
    rev: u64,
    /// Events after `compacted`, oldest first, for watches from a resourceVersion.
    log: VecDeque<Arc<Event>>,
    /// What the log keeps alive (`backend::held_bytes` of each event).
    log_bytes: usize,
    compacted: u64,
    /// The revision of the last relist: it holds every change up to it, so a watch event at or
    /// below it (from a stream opened before the relist) is already in the mirror.
    relisted: u64,
}

struct Shared {
    mirror: RwLock<Mirror>,
    /// Signalled whenever the mirror's revision moves.
    applied: (Mutex<()>, Condvar),
    hub: Hub,
    window: usize,
    window_bytes: usize,
    /// The mirror's watch, to ask etcd for a progress notification: a consistent read waits
    /// for the mirror to reach etcd's revision, which writes outside the prefix move too.
    progress: tokio::sync::Mutex<Option<WatchRequestSender>>,
}

pub struct EtcdStorage {
    /// etcd's client runs on a runtime of its own: the storage interface is synchronous and is
    /// called from the proxy's worker threads.
    rt: tokio::runtime::Runtime,
    client: Client,
    prefix: String,
    shared: Arc<Shared>,
}

fn internal(e: impl std::fmt::Display) -> StorageError {
    StorageError::Internal(e.to_string())
}

/// The bytes etcd keeps: the object without its resourceVersion (the revision says it).
fn encode(v: &Value) -> Vec<u8> {
    let mut b = Vec::new();
    super::fields_v1::write_json_without(&mut b, v, Some("resourceVersion"));
    b
}

/// How to reach etcd (kube-apiserver's `--etcd-*` flags).
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    pub servers: Vec<String>,
    pub prefix: String,
    /// How many changes stay replayable for watches from a resourceVersion.
    pub window: usize,
    /// And how many bytes of their objects they may keep alive.
    pub window_bytes: usize,
    /// Verifies the servers (`https://` URLs).
    pub ca_file: Option<PathBuf>,
    /// The client certificate and key presented to etcd.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// How often etcd's history is compacted (zero: never).
    pub compaction_interval: Duration,
}

impl EtcdConfig {
    pub fn new(servers: Vec<String>) -> Self {
        EtcdConfig {
            servers,
            prefix: REGISTRY.into(),
            window: 10_000,
            window_bytes: super::backend::WINDOW_BYTES,
            ca_file: None,
            cert_file: None,
            key_file: None,
            compaction_interval: Duration::from_secs(300),
        }
    }

    fn tls(&self) -> anyhow::Result<Option<TlsOptions>> {
        if self.ca_file.is_none() && self.cert_file.is_none() {
            return Ok(None);
        }
        let read = |f: &PathBuf| std::fs::read(f).with_context(|| format!("cannot read {}", f.display()));
        let mut tls = TlsOptions::new();
        if let Some(ca) = &self.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        match (&self.cert_file, &self.key_file) {
            (Some(c), Some(k)) => tls = tls.identity(Identity::from_pem(read(c)?, read(k)?)),
            (None, None) => {}
            _ => anyhow::bail!("--etcd-certfile and --etcd-keyfile go together"),
        }
        Ok(Some(tls))
    }
}

impl EtcdStorage {
    /// Connects, loads everything under the prefix and starts mirroring it.
    pub fn connect(config: &EtcdConfig) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etcd-client")
            .enable_all()
            .build()?;
        let mut options = ConnectOptions::new().with_connect_timeout(TIMEOUT).with_timeout(TIMEOUT);
        if let Some(tls) = config.tls()? {
            options = options.with_tls(tls);
        }
        let servers = &config.servers;
        let client = rt
            .block_on(Client::connect(servers, Some(options)))
            .map_err(|e| anyhow::anyhow!("cannot connect to etcd at {}: {e}", servers.join(",")))?;
        let prefix = config.prefix.trim_end_matches('/').to_string();
        let shared = Arc::new(Shared {
            mirror: RwLock::new(Mirror {
                objects: BTreeMap::new(),
                rev: 0,
                log: VecDeque::new(),
                log_bytes: 0,
                compacted: 0,
                relisted: 0,
            }),
            applied: (Mutex::new(()), Condvar::new()),
            hub: Hub::default(),
            window: config.window.max(1),
            window_bytes: config.window_bytes,
            progress: Default::default(),
        });
        let storage = EtcdStorage { rt, client, prefix, shared };
        let rev = storage
            .relist()
            .map_err(|e| anyhow::anyhow!("cannot read the store from etcd at {}: {e}", servers.join(",")))?;
        storage.rt.spawn(mirror(storage.client.clone(), storage.prefix.clone(), storage.shared.clone(), rev));
        if !config.compaction_interval.is_zero() {
            storage.rt.spawn(compactor(storage.client.clone(), storage.shared.clone(), config.compaction_interval));
        }
        Ok(storage)
    }

    pub fn watchers(&self) -> usize {
        self.shared.hub.len()
    }

    fn etcd_key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key.strip_prefix(REGISTRY).unwrap_or(key))
    }

    /// Runs `op` on the etcd runtime and waits for it, bounded by the timeout.
    fn call<T: Send + 'static, F, Fut>(&self, op: F) -> Result<T, StorageError>
    where
        F: Fn(Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, etcd_client::Error>> + Send,
    {
        self.call_within(TIMEOUT, op)
    }

    /// `call` within `timeout`. An attempt that never reached etcd (no connection to the member
    /// the client's balancer sent it to, which it keeps picking for a while after the member
    /// died) is made again, likely on another member, until the time is up: kube's etcd client
    /// fails over the same way, so a member's loss is no error to the client. Any other error
    /// is returned as it is: a write etcd may have applied is never sent twice.
    fn call_within<T: Send + 'static, F, Fut>(&self, timeout: Duration, op: F) -> Result<T, StorageError>
    where
        F: Fn(Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, etcd_client::Error>> + Send,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let client = self.client.clone();
        self.rt.spawn(async move {
            let attempts = async move {
                loop {
                    match op(client.clone()).await {
                        Err(e) if not_sent(&e) => {
                            tracing::debug!(error = %e, "etcd unreachable; trying again");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        r => return r.map_err(internal),
                    }
                }
            };
            let r = tokio::time::timeout(timeout, attempts)
                .await
                .unwrap_or_else(|_| Err(internal("etcd request timed out")));
            let _ = tx.send(r);
        });
        rx.recv_timeout(timeout + Duration::from_secs(1)).unwrap_or_else(|_| Err(internal("etcd request timed out")))
    }

    /// Loads every object under the prefix into the mirror; returns etcd's revision.
    fn relist(&self) -> Result<u64, StorageError> {
        let prefix = self.prefix.clone();
        let (rev, objects) = self.call(move |client| {
            let prefix = prefix.clone();
            async move { read_all(&client, &prefix).await }
        })?;
        let mut m = self.shared.mirror.write().unwrap_or_else(|e| e.into_inner());
        m.objects = objects;
        m.rev = rev;
        m.compacted = rev;
        m.relisted = rev;
        Ok(rev)
    }

    /// Waits until the mirror has applied `rev` (this replica's own write, coming back
    /// through the watch).
    fn wait_for(&self, rev: u64) -> Result<(), StorageError> {
        self.wait_within(rev, TIMEOUT)
    }

    /// `wait_for`, at most `limit`.
    fn wait_within(&self, rev: u64, limit: Duration) -> Result<(), StorageError> {
        let (lock, cv) = &self.shared.applied;
        let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = std::time::Instant::now() + limit;
        while self.revision() < rev {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(internal(format!("the watch on etcd did not deliver revision {rev} in time")));
            }
            guard = cv.wait_timeout(guard, left.min(Duration::from_millis(100))).unwrap_or_else(|e| e.into_inner()).0;
        }
        Ok(())
    }

    /// One transaction: `ops` when `when` holds, else a read of the key to tell NotFound from
    /// Conflict. Returns the revision and the operations' responses.
    fn txn(&self, key: &str, when: Compare, ops: Vec<TxnOp>) -> Result<(u64, Vec<TxnOpResponse>), StorageError> {
        let txn = Txn::new().when([when]).and_then(ops).or_else([TxnOp::get(self.etcd_key(key), None)]);
        let resp = self.call(move |mut client| {
            let txn = txn.clone();
            async move { client.txn(txn).await }
        })?;
        let rev = resp.header().map(|h| h.revision() as u64).unwrap_or(0);
        if resp.succeeded() {
            return Ok((rev, resp.op_responses()));
        }
        let exists = resp.op_responses().iter().any(|r| matches!(r, TxnOpResponse::Get(g) if !g.kvs().is_empty()));
        Err(if exists { StorageError::Conflict } else { StorageError::NotFound })
    }

    /// The comparison a write to an existing key makes: its revision, or just that it exists.
    fn exists_at(&self, key: &str, expected: Option<u64>) -> Compare {
        let ek = self.etcd_key(key);
        match expected {
            Some(rev) => Compare::mod_revision(ek, CompareOp::Equal, rev as i64),
            None => Compare::create_revision(ek, CompareOp::Greater, 0),
        }
    }
}

/// gRPC's UNAVAILABLE status code.
const GRPC_UNAVAILABLE: i32 = 14;

/// Whether an etcd call failed before reaching etcd: the member the balancer picked could not
/// be connected to (tonic's connect error, as an Unavailable status), so etcd never saw it.
fn not_sent(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            i32::from(s.code()) == GRPC_UNAVAILABLE
                && ["tcp connect error", "error trying to connect", "Connection refused"]
                    .iter()
                    .any(|m| s.message().contains(m))
        }
        _ => false,
    }
}

/// Our key for an etcd key under `prefix` (None outside it).
fn store_key(prefix: &str, kv: &KeyValue) -> Option<String> {
    Some(format!("{REGISTRY}{}", std::str::from_utf8(kv.key()).ok()?.strip_prefix(prefix)?))
}

/// An etcd key-value as stored here (None for a key outside the resource layout or bad JSON).
fn stored(prefix: &str, kv: &KeyValue) -> Option<Stored> {
    let key = store_key(prefix, kv)?;
    let rev = kv.mod_revision() as u64;
    let mut value: Value = serde_json::from_slice(kv.value()).ok()?;
    super::fields_v1::hold_as_text(&mut value);
    // etcd's bytes carry no resourceVersion: the served form is serialized once, here (the
    // mirror keeps it for every read)
    let value = stamp(value, rev);
    let raw = Some(super::backend::raw_json(&value));
    Some(Stored { key, value: Arc::new(value), rev, raw })
}

/// Follows etcd from `rev` on, applying every change to the mirror and fanning it out, for
/// the life of the process. A broken watch is resumed; a compacted one re-lists.
async fn mirror(client: Client, prefix: String, shared: Arc<Shared>, mut rev: u64) {
    const SOON: Duration = Duration::from_millis(20);
    let mut unreachable = SOON;
    loop {
        let mut watch_client = client.watch_client();
        let options = WatchOptions::new().with_prefix().with_prev_key().with_start_revision(rev as i64 + 1);
        let mut stream = match watch_client.watch(format!("{prefix}/"), Some(options)).await {
            Ok(s) => {
                unreachable = SOON;
                let (requests, responses) = s.split();
                *shared.progress.lock().await = Some(requests);
                responses
            }
            // a member that is down: soon on to another (all of them down: backing off to 1 s)
            Err(e) if not_sent(&e) => {
                tracing::debug!(error = %e, "etcd unreachable; watching again");
                tokio::time::sleep(unreachable).await;
                unreachable = (unreachable * 2).min(Duration::from_secs(1));
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "etcd watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(resp)) if resp.canceled() => {
                    tracing::warn!(
                        reason = resp.cancel_reason(),
                        compacted = resp.compact_revision(),
                        "etcd watch canceled"
                    );
                    if resp.compact_revision() > 0 {
                        match resync(&client, &prefix, &shared).await {
                            Ok(relisted) => {
                                tracing::info!(revision = relisted, "relisted etcd after a compaction");
                                rev = relisted;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot relist etcd; retrying");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                    } else {
                        // etcd refused the watch itself (e.g. a future revision, or a limit):
                        // a paced retry, not a loop of refusals
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    break;
                }
                // a progress notification: every change up to its revision was sent
                Ok(Some(resp)) if resp.events().is_empty() && !resp.created() => {
                    let at = resp.header().map_or(0, |h| h.revision() as u64);
                    progressed(&shared, at);
                }
                Ok(Some(resp)) => {
                    for e in resp.events() {
                        if let Some(ev) = event(&prefix, e) {
                            rev = ev.rev;
                            apply(&shared, ev);
                        } else if let Some((key, at)) = e.kv().and_then(|kv| Some((store_key(&prefix, kv)?, kv))) {
                            rev = at.mod_revision() as u64;
                            unreadable(&shared, key, rev);
                        }
                    }
                }
                Ok(None) | Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
            }
        }
    }
}

/// kube's compactor: every interval, compact etcd's history up to the revision seen at the
/// previous tick, so the last interval's changes stay watchable. Every replica runs it; a
/// compaction another already made is answered with an error that changes nothing.
async fn compactor(client: Client, shared: Arc<Shared>, interval: Duration) {
    let mut kv = client.kv_client();
    let mut last = 0i64;
    loop {
        tokio::time::sleep(interval).await;
        let Ok(resp) = kv.get("compact_rev_key", None).await else { continue };
        let now = resp.header().map(|h| h.revision()).unwrap_or(0);
        if last > 0 {
            match kv.compact(last, None).await {
                Ok(_) => {
                    // the mirror's history goes with etcd's: no watch replays what etcd forgot
                    compact_mirror(&shared, last as u64);
                    tracing::info!(revision = last, "compacted etcd");
                }
                Err(e) => tracing::debug!(revision = last, error = %e, "etcd compaction"),
            }
        }
        last = now;
    }
}

/// Forgets the mirror's events at or below `rev`.
fn compact_mirror(shared: &Shared, rev: u64) {
    let mut m = shared.mirror.write().unwrap_or_else(|e| e.into_inner());
    let rev = rev.min(m.rev);
    let m = &mut *m;
    drop_through(&mut m.log, &mut m.log_bytes, rev);
    m.compacted = m.compacted.max(rev);
}

/// A watch event as a store event: a put is ADDED when the key was created by it.
fn event(prefix: &str, e: &etcd_client::Event) -> Option<Event> {
    let kv = e.kv()?;
    let rev = kv.mod_revision() as u64;
    let prev = e.prev_kv().and_then(|p| stored(prefix, p)).map(|s| (s.value, s.rev));
    match e.event_type() {
        etcd_client::EventType::Put => {
            let s = stored(prefix, kv)?;
            let kind = if kv.create_revision() == kv.mod_revision() { EventType::Added } else { EventType::Modified };
            Some(Event { rev, kind, key: s.key, value: s.value, prev, raw: s.raw })
        }
        etcd_client::EventType::Delete => {
            let key = store_key(prefix, kv)?;
            let (last, _) = prev.clone()?;
            let value = Arc::new(stamp((*last).clone(), rev));
            Some(Event { rev, kind: EventType::Deleted, key, value, prev, raw: None })
        }
    }
}

/// The mirror holds every change up to `rev` (a progress notification): its revision moves
/// there, and whoever waits for it is told.
fn progressed(shared: &Shared, rev: u64) {
    {
        let mut m = shared.mirror.write().unwrap_or_else(|e| e.into_inner());
        if rev <= m.rev {
            return;
        }
        m.rev = rev;
    }
    notify_applied(shared);
}

/// A change of `key` whose value does not decode (written to etcd by something else), or a
/// deletion whose last state does not: the object is gone from this replica's view, as it is
/// for every reader, and its watchers and hooks are told (a RoleBinding left as it was would
/// grant on, and could be deleted by no one).
fn unreadable(shared: &Shared, key: String, rev: u64) {
    tracing::error!(key, revision = rev, "an object in etcd does not decode: served as deleted");
    let last = shared.mirror.read().unwrap_or_else(|e| e.into_inner()).objects.get(&key).cloned();
    match last {
        Some(s) => {
            let value = Arc::new(stamp((*s.value).clone(), rev));
            apply(shared, Event { rev, kind: EventType::Deleted, key, value, prev: Some((s.value, s.rev)), raw: None });
        }
        // (nothing to delete: the mirror's revision moves past it all the same)
        None => progressed(shared, rev),
    }
}

/// Tells whoever waits for the mirror's revision that it moved.
fn notify_applied(shared: &Shared) {
    let (lock, cv) = &shared.applied;
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    cv.notify_all();
}

/// Applies one change to the mirror and publishes it, under the mirror's lock so a watch that
/// subscribes meanwhile neither misses nor repeats it.
fn apply(shared: &Shared, ev: Event) {
    let ev = Arc::new(ev);
    {
        let mut m = shared.mirror.write().unwrap_or_else(|e| e.into_inner());
        if ev.rev <= m.relisted {
            return;
        }
        if ev.kind == EventType::Deleted {
            m.objects.remove(&ev.key);
        } else {
            let stored = Stored { key: ev.key.clone(), value: ev.value.clone(), rev: ev.rev, raw: ev.raw.clone() };
            m.objects.insert(ev.key.clone(), stored);
        }
        m.rev = m.rev.max(ev.rev);
        m.log_bytes += held_bytes(&ev);
        m.log.push_back(ev.clone());
        if let Some(to) = compaction_point(&m.log, m.log_bytes, shared.window, shared.window_bytes) {
            let m = &mut *m;
            drop_through(&mut m.log, &mut m.log_bytes, to);
            m.compacted = to;
        }
        shared.hub.publish(&ev);
    }
    notify_applied(shared);
}

/// Everything under the prefix and the revision it was read at, by a linearizable (quorum)
/// range read: etcd's default, which `with_serializable` would turn off and must not. A member
/// cut off from the quorum answers with an error rather than its possibly stale state, so a
/// mirror is never (re)built from the past.
async fn read_all(client: &Client, prefix: &str) -> Result<(u64, BTreeMap<String, Stored>), etcd_client::Error> {
    let options = GetOptions::new().with_prefix();
    let resp = client.kv_client().get(format!("{prefix}/"), Some(options)).await?;
    let rev = resp.header().map(|h| h.revision() as u64).unwrap_or(0);
    Ok((rev, resp.kvs().iter().filter_map(|kv| stored(prefix, kv)).map(|s| (s.key.clone(), s)).collect()))
}

/// After etcd compacted past the mirror (its watch cannot resume): read everything again and
/// end every watch, as kube's cacher does when its reflector relists (`terminateAllWatchers`).
/// The mirror's history starts over at the relist's revision, so a client resuming from an
/// older resourceVersion gets kube's 410 Gone ("too old resource version") and relists too;
/// no watcher is handed a made-up difference with resourceVersions out of order.
async fn resync(client: &Client, prefix: &str, shared: &Shared) -> Result<u64, etcd_client::Error> {
    let (rev, objects) = read_all(client, prefix).await?;
    {
        let mut m = shared.mirror.write().unwrap_or_else(|e| e.into_inner());
        m.objects = objects;
        m.rev = m.rev.max(rev);
        m.compacted = m.rev;
        m.relisted = m.rev;
        m.log.clear();
        m.log_bytes = 0;
        // under the mirror's lock: a watch starts either before (and is ended) or after (from the relist)
        shared.hub.close_all();
    }
    notify_applied(shared);
    Ok(rev)
}

impl Storage for EtcdStorage {
    fn revision(&self) -> u64 {
        self.shared.mirror.read().unwrap_or_else(|e| e.into_inner()).rev
    }

    fn oldest(&self) -> u64 {
        self.shared.mirror.read().unwrap_or_else(|e| e.into_inner()).compacted
    }

    fn get(&self, key: &str) -> Option<Stored> {
        self.shared.mirror.read().unwrap_or_else(|e| e.into_inner()).objects.get(key).cloned()
    }

    fn list(&self, prefix: &str, at: Option<u64>) -> Result<(Vec<Stored>, u64), StorageError> {
        {
            let m = self.shared.mirror.read().unwrap_or_else(|e| e.into_inner());
            match at {
                Some(at) if at > m.rev => return Err(StorageError::TooLarge { asked: at, current: m.rev }),
                Some(at) if at != m.rev => {}
                _ => return Ok((under(&m.objects, prefix).cloned().collect(), m.rev)),
            }
        }
        // an older revision: etcd keeps history until it compacts
        let at = at.unwrap_or_default();
        let (ek, store_prefix) = (self.etcd_key(prefix), self.prefix.clone());
        let resp = self.call(move |mut client| {
            let (ek, options) = (ek.clone(), GetOptions::new().with_prefix().with_revision(at as i64));
            async move { client.get(ek, Some(options)).await }
        });
        let resp = match resp {
            Err(StorageError::Internal(e)) if e.contains("compacted") => {
                return Err(StorageError::Expired { asked: at, oldest: self.oldest() });
            }
            r => r?,
        };
        Ok((resp.kvs().iter().filter_map(|kv| stored(&store_prefix, kv)).collect(), at))
    }

    fn create(&self, key: &str, value: Value) -> Result<Stored, StorageError> {
        let ek = self.etcd_key(key);
        let when = Compare::create_revision(ek.clone(), CompareOp::Equal, 0);
        let (rev, _) = match self.txn(key, when, vec![TxnOp::put(ek, encode(&value), None)]) {
            Err(StorageError::Conflict) => return Err(StorageError::AlreadyExists),
            r => r?,
        };
        self.wait_for(rev)?;
        Ok(Stored { key: key.to_string(), value: Arc::new(stamp(value, rev)), rev, raw: None })
    }

    fn update(&self, key: &str, value: Value, expected: Option<u64>) -> Result<Stored, StorageError> {
        let put = TxnOp::put(self.etcd_key(key), encode(&value), None);
        let (rev, _) = self.txn(key, self.exists_at(key, expected), vec![put])?;
        self.wait_for(rev)?;
        Ok(Stored { key: key.to_string(), value: Arc::new(stamp(value, rev)), rev, raw: None })
    }

    fn delete(&self, key: &str, expected: Option<u64>) -> Result<Stored, StorageError> {
        let del = TxnOp::delete(self.etcd_key(key), Some(etcd_client::DeleteOptions::new().with_prev_key()));
        let (rev, responses) = self.txn(key, self.exists_at(key, expected), vec![del])?;
        let last = responses
            .iter()
            .find_map(|r| match r {
                TxnOpResponse::Delete(d) => d.prev_kvs().first().and_then(|kv| stored(&self.prefix, kv)),
                _ => None,
            })
            .ok_or(StorageError::NotFound)?;
        self.wait_for(rev)?;
        Ok(Stored { key: key.to_string(), value: Arc::new(stamp((*last.value).clone(), rev)), rev, raw: None })
    }

    fn watch(&self, prefix: &str, from: Option<u64>) -> Result<Watch, StorageError> {
        let m = self.shared.mirror.read().unwrap_or_else(|e| e.into_inner());
        let initial = initial_events(&m.objects, &m.log, m.compacted, prefix, from)?;
        let rx = self.shared.hub.subscribe(prefix);
        Ok(Watch { initial, rx, rev: m.rev })
    }

    fn compact(&self, rev: u64) {
        compact_mirror(&self.shared, rev);
    }

    fn close_watches(&self) {
        self.shared.hub.shut_down();
    }

    fn replicated(&self) -> bool {
        true
    }

    fn sync(&self) -> Result<(), StorageError> {
        // etcd's current revision (a count-only read of one key: only the header is wanted),
        // then the mirror caught up to it, as kube's consistent read from its watch cache: a
        // progress request moves the mirror past writes outside the prefix. An older etcd
        // answers no progress request while the watch is behind: past the wait, the read is
        // served as the mirror stands rather than failed.
        let key = self.etcd_key("/");
        let resp = self.call(move |mut client| {
            let key = key.clone();
            async move { client.get(key, Some(GetOptions::new().with_count_only())).await }
        })?;
        let rev = resp.header().map_or(0, |h| h.revision() as u64);
        if self.revision() >= rev {
            return Ok(());
        }
        let shared = self.shared.clone();
        self.rt.spawn(async move {
            if let Some(requests) = shared.progress.lock().await.as_mut() {
                let _ = requests.request_progress().await;
            }
        });
        if self.wait_within(rev, SYNC_WAIT).is_err() {
            tracing::debug!(
                revision = rev,
                "the etcd mirror did not reach the current revision in time; serving it as it stands"
            );
        }
        Ok(())
    }

    fn healthy(&self) -> Result<(), String> {
        // kube's --etcd-healthcheck-timeout default
        self.call_within(HEALTH_TIMEOUT, |mut client| async move { client.get("health", None).await.map(|_| ()) })
            .map_err(|e| e.to_string())
    }
}

#[doc(hidden)]
pub mod process;
#[cfg(test)]
mod tests;
