//! API Priority and Fairness (kube's `--enable-priority-and-fairness`): requests are
//! classified by FlowSchemas into priority levels that share the server's seats; a level
//! queues (fairly across flows) or rejects what exceeds its seats. The configuration is
//! kube's bootstrap objects plus policy files, swapped whole on reload; levels keep their
//! queues and seats in use across reloads that leave their queuing unchanged.

pub mod classify;
pub mod dropped;
pub mod dump;
pub mod ensurer;
pub mod integrator;
pub mod level;
pub mod limits;
pub mod metrics;
pub mod shuffle;
pub mod timing;
pub mod types;
pub mod validation;
pub mod watches;
pub mod width;

use crate::authn::UserInfo;
use crate::request_info::query::Query;
use crate::request_info::RequestInfo;
use arc_swap::ArcSwap;
use level::{Admission, Level, Seat};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use types::{FlowSchema, Objects, PriorityLevelConfiguration};

pub(crate) const BOOTSTRAP: &str = include_str!("bootstrap.yaml");
/// Objects kube keeps as it defines them, whatever the configuration says (bootstrap's
/// `MandatoryPriorityLevelConfigurations` and `MandatoryFlowSchemas`; probes is suggested).
pub const MANDATORY_LEVELS: &[&str] = &["exempt", "catch-all"];
pub const MANDATORY_SCHEMAS: &[&str] = &["exempt", "catch-all"];
/// How often borrowing is recomputed (kube's `borrowingAdjustmentPeriod`, see `limits.rs`).
const REBALANCE: Duration = Duration::from_secs(10);
/// kube's cap on a request's queue wait, and its wait without a request deadline.
const MAX_WAIT: Duration = Duration::from_secs(60);
const DEFAULT_WAIT: Duration = Duration::from_secs(15);

/// A FlowSchema ready to match, with its level.
pub struct Schema {
    pub fs: FlowSchema,
    pub name: Arc<str>,
    pub uid: String,
    /// `uid` as the X-Kubernetes-PF-FlowSchema-UID value and its level's, built once with the
    /// config (each request clones the reference).
    pub uid_headers: Arc<crate::flowcontrol::classified::UidHeaders>,
    pub level: Arc<Level>,
    pub metrics: Arc<metrics::FlowMetrics>,
}

/// One configuration snapshot.
pub struct Config {
    /// In matching order: matchingPrecedence, then name.
    pub schemas: Vec<Schema>,
    /// Sorted by name.
    pub levels: Vec<Arc<Level>>,
    /// Each level's seat bounds, as `levels`.
    bounds: Vec<level::Limits>,
    /// Each FlowSchema's Dangling condition, by name.
    conditions: BTreeMap<String, Dangling>,
}

/// kube's `Dangling` condition of a FlowSchema, and when it last changed.
pub struct Dangling {
    pub dangling: bool,
    pub level: String,
    pub since: String,
}

impl Dangling {
    /// The FlowSchema's status as kube's config-consuming controller writes it.
    pub fn status(&self) -> serde_json::Value {
        let (status, reason, message) = if self.dangling {
            (
                "True",
                "NotFound",
                format!(
                    "This FlowSchema references the PriorityLevelConfiguration object named {:?} but there is no such object",
                    self.level
                ),
            )
        } else {
            (
                "False",
                "Found",
                format!(
                    "This FlowSchema references the PriorityLevelConfiguration object named {:?} and it exists",
                    self.level
                ),
            )
        };
        serde_json::json!({"conditions": [{
            "type": "Dangling",
            "status": status,
            "lastTransitionTime": self.since,
            "reason": reason,
            "message": message,
        }]})
    }
}

/// What a request was classified as.
pub struct Decision<'a> {
    pub schema: &'a Schema,
    pub distinguisher: String,
}

pub struct Apf {
    server_seats: u32,
    paths: Vec<PathBuf>,
    config: ArcSwap<Config>,
    /// The objects behind `config`: from the files, and from the store (kubectl apply) when
    /// it serves flowcontrol.apiserver.k8s.io. One lock, so that compilations do not interleave.
    sources: Mutex<Sources>,
    count: OnceLock<Box<width::ObjectCount>>,
    /// The watches let through, for the cost of the writes they follow.
    pub watches: Arc<watches::Watches>,
    /// Each level's recent drops, for its 429s' Retry-After.
    pub dropped: dropped::Dropped,
}

#[derive(Default)]
struct Sources {
    files: Objects,
    stored: Objects,
}

impl Apf {
    /// Builds the controller from kube's bootstrap objects and the files under `paths`.
    pub fn new(server_seats: u32, paths: Vec<PathBuf>) -> anyhow::Result<Arc<Apf>> {
        metrics::force();
        let files = Objects::load(&paths)?;
        let config = compile(server_seats, &Objects::default(), &files, None)?;
        let apf = Arc::new(Apf {
            server_seats,
            paths,
            config: ArcSwap::from_pointee(config),
            sources: Mutex::new(Sources { files, stored: Objects::default() }),
            count: OnceLock::new(),
            watches: Arc::default(),
            dropped: Default::default(),
        });
        rebalance_every(Arc::downgrade(&apf));
        Ok(apf)
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Re-reads the files; on error the running configuration stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let files = Objects::load(&self.paths)?;
        self.recompile(|s| s.files = files)
    }

    /// The store's `resource` objects (flowschemas or prioritylevelconfigurations) changed.
    pub fn set_stored(&self, resource: &str, objects: Vec<serde_json::Value>) -> anyhow::Result<()> {
        let parsed = Objects::from_stored(resource, objects)?;
        self.recompile(|s| match resource {
            "flowschemas" => s.stored.flow_schemas = parsed.flow_schemas,
            _ => s.stored.priority_levels = parsed.priority_levels,
        })
    }

    /// Applies `change` to the sources and swaps in the compiled result; on error neither
    /// the sources nor the running configuration change.
    fn recompile(&self, change: impl FnOnce(&mut Sources)) -> anyhow::Result<()> {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Sources { files: sources.files.clone(), stored: sources.stored.clone() };
        change(&mut next);
        let old = self.config.load();
        let config = compile(self.server_seats, &next.stored, &next.files, Some(&old))?;
        self.config.store(Arc::new(config));
        *sources = next;
        Ok(())
    }

    /// Gives the width estimator the store's object counts.
    pub fn set_object_count(&self, f: Box<width::ObjectCount>) {
        let _ = self.count.set(f);
    }

    pub fn snapshot(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// The request's width in seats.
    pub fn width(&self, info: &RequestInfo, query: &Query) -> u32 {
        width::seats(info, query, self.count.get().map(|b| b.as_ref()))
    }

    /// A write's cost for the watches it notifies, at its level (kube samples the count).
    pub fn fan_out(&self, decision: &Decision<'_>, info: &RequestInfo) -> width::FanOut {
        if !width::notifies(info) {
            return width::FanOut::default();
        }
        let watches = self.watches.interested(info);
        decision.schema.metrics.watch_count().observe(watches as f64);
        width::fan_out(info, watches, decision.schema.level.max_seats())
    }

    /// kube's periodic borrowing: each level's current seats from its demand in the period.
    fn rebalance(&self) {
        let cfg = self.config.load();
        let items: Vec<limits::Item> =
            cfg.levels.iter().zip(&cfg.bounds).map(|(l, b)| limits::item(*b, &l.demand_period())).collect();
        let sum: u32 = cfg.bounds.iter().map(|b| b.nominal).sum();
        let allocs = match limits::allocate(sum, &items) {
            Ok((a, fair)) => {
                metrics::FAIR_FRAC.set(fair);
                a
            }
            Err(e) => {
                tracing::error!(error = %e, "unable to derive new concurrency limits; levels keep theirs");
                return;
            }
        };
        for ((l, alloc), it) in cfg.levels.iter().zip(allocs).zip(&items) {
            if l.is_exempt() {
                continue;
            }
            let seats = alloc.round() as u32;
            l.set_current_limit(seats);
            metrics::TARGET.with_label_values(&[&l.name]).set(it.target);
        }
    }
}

impl Config {
    /// A FlowSchema's status (its Dangling condition), for the store to serve.
    pub fn flow_schema_status(&self, name: &str) -> Option<serde_json::Value> {
        self.conditions.get(name).map(Dangling::status)
    }

    /// The first matching schema (kube's catch-all matches every authenticated or
    /// unauthenticated user; a user in neither group falls to catch-all as well).
    pub fn classify(&self, user: &UserInfo, info: &RequestInfo) -> Option<Decision<'_>> {
        let schema = self
            .schemas
            .iter()
            .find(|s| classify::matches(&s.fs, user, info))
            .or_else(|| self.schemas.iter().find(|s| &*s.name == "catch-all"))?;
        Some(Decision { schema, distinguisher: classify::distinguisher(&schema.fs, user, info) })
    }
}

impl Decision<'_> {
    /// Offers the request (of `user`) to its level; a limited level keeps what its
    /// dump_requests shows of it while it waits and executes.
    pub fn admit(&self, width: u32, fan_out: width::FanOut, user: &str, info: &Arc<RequestInfo>) -> Admission {
        // only a level with queues shuffle-shards flows
        let queued = self.schema.level.queuing.flatten().is_some();
        let hash = if queued { shuffle::flow_hash(&self.schema.name, &self.distinguisher) } else { 0 };
        let req = (!self.schema.level.is_exempt()).then(|| {
            Arc::new(level::Request {
                flow_schema: self.schema.name.clone(),
                distinguisher: self.distinguisher.clone(),
                user: user.to_string(),
                info: info.clone(),
                arrive: std::time::SystemTime::now(),
                fan_out,
            })
        });
        self.schema.level.admit(&self.schema.metrics, hash, width.max(fan_out.seats), req)
    }
}

/// How long a request may wait in its queue: a quarter of its deadline, at most a minute.
pub fn wait_limit(deadline: Option<Duration>) -> Duration {
    deadline.map(|d| d / 4).unwrap_or(DEFAULT_WAIT).min(MAX_WAIT)
}

/// Waits for a queued request's seat, until the future `gone` makes says the client left (kube's wait ends
/// with the request's context: the request leaves its queue, counted as cancelled, and never
/// runs); records the wait either way.
pub async fn wait<G: std::future::Future<Output = ()>>(
    admission: Admission,
    limit: Duration,
    flow: &metrics::FlowMetrics,
    gone: impl FnOnce() -> G,
) -> Result<Seat, &'static str> {
    let start = Instant::now();
    let (r, counted) = match admission {
        Admission::Now(seat) => (Ok(seat), false),
        Admission::Rejected(reason) => (Err(reason), false),
        // boxed: only a queued request holds the wait's state (~1 KB)
        Admission::Queued(ticket) => {
            Box::pin(async {
                tokio::select! {
                    r = ticket.wait(limit) => (r, false),
                    // the ticket, dropped with its wait, left its queue and counted itself
                    () = gone() => (Err(level::CANCELLED), true),
                }
            })
            .await
        }
    };
    flow.waited(r.is_ok()).observe(start.elapsed().as_secs_f64());
    if let (Err(reason), false) = (&r, counted) {
        flow.rejected(reason);
    }
    r
}

/// A UID for an object that has none (bootstrap and file objects), stable for the process:
/// derived from kind and name under a key drawn at start-up, so that, as kube's random UIDs,
/// the X-Kubernetes-PF-* headers do not let a client confirm a guessed name (kube sends UIDs
/// and not names to hide them).
fn derived_uid(kind: &str, name: &str) -> String {
    use sha2::Digest;
    static KEY: std::sync::LazyLock<[u8; 16]> = std::sync::LazyLock::new(|| uuid::Uuid::new_v4().into_bytes());
    let d = sha2::Sha256::digest([&KEY[..], format!("{kind}/{name}").as_bytes()].concat());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

fn uid_of(meta: &types::Meta, kind: &str) -> String {
    if meta.uid.is_empty() {
        derived_uid(kind, &meta.name)
    } else {
        meta.uid.clone()
    }
}

/// kube's bootstrap objects, overlaid by the stored ones (which the ensurer keeps kube's for
/// the mandatory names), then by the files' (which may not redefine a mandatory object),
/// compiled. A FlowSchema whose level does not exist is Dangling and matches nothing.
fn compile(server: u32, stored: &Objects, files: &Objects, old: Option<&Config>) -> anyhow::Result<Config> {
    // parsed once: every reload and stored-object change recompiles
    static BOOT: once_cell::sync::Lazy<Objects> =
        once_cell::sync::Lazy::new(|| Objects::parse(BOOTSTRAP, "bootstrap").expect("the bundled bootstrap parses"));
    let mut pls: BTreeMap<String, PriorityLevelConfiguration> =
        BOOT.priority_levels.iter().map(|p| (p.metadata.name.clone(), p.clone())).collect();
    let mut fss: BTreeMap<String, FlowSchema> =
        BOOT.flow_schemas.iter().map(|f| (f.metadata.name.clone(), f.clone())).collect();
    for p in &stored.priority_levels {
        // kube's exempt level must stay exempt, catch-all limited (its controller ignores others)
        let mandatory_kind = match p.metadata.name.as_str() {
            "exempt" => p.is_exempt(),
            "catch-all" => !p.is_exempt(),
            _ => true,
        };
        if mandatory_kind {
            pls.insert(p.metadata.name.clone(), p.clone());
        }
    }
    for f in &stored.flow_schemas {
        fss.insert(f.metadata.name.clone(), f.clone());
    }
    for p in &files.priority_levels {
        if !MANDATORY_LEVELS.contains(&p.metadata.name.as_str()) {
            pls.insert(p.metadata.name.clone(), p.clone());
        }
    }
    for f in &files.flow_schemas {
        if !MANDATORY_SCHEMAS.contains(&f.metadata.name.as_str()) {
            fss.insert(f.metadata.name.clone(), f.clone());
        }
    }

    let mut levels = Vec::new();
    let mut shares = Vec::new();
    let mut fresh = Vec::new();
    for (name, p) in &pls {
        let queuing = if p.is_exempt() { None } else { p.spec.limited.as_ref().map(|l| l.queuing()) };
        let uid = uid_of(&p.metadata, "PriorityLevelConfiguration");
        let reuse = old.and_then(|o| o.levels.iter().find(|l| &l.name == name && l.queuing == queuing && l.uid == uid));
        fresh.push(reuse.is_none());
        levels.push(reuse.cloned().unwrap_or_else(|| Level::new(name, &uid, queuing)));
        shares.push(p.shares());
    }
    let bounds = limits::bounds(server, &shares);
    for ((l, b), fresh) in levels.iter().zip(&bounds).zip(fresh) {
        l.set_server_seats(server);
        l.set_limits(*b, fresh);
        let name = l.name.as_str();
        metrics::NOMINAL_LIMIT.with_label_values(&[name]).set(b.nominal as i64);
        metrics::LOWER_LIMIT.with_label_values(&[name]).set(b.lower as i64);
        metrics::UPPER_LIMIT.with_label_values(&[name]).set(b.upper as i64);
    }

    let mut schemas = Vec::new();
    let mut conditions = BTreeMap::new();
    for (name, fs) in fss {
        let level = levels.iter().find(|l| l.name == fs.level());
        let dangling = level.is_none();
        let since = old
            .and_then(|o| o.conditions.get(&name))
            .filter(|c| c.dangling == dangling && c.level == fs.level())
            .map(|c| c.since.clone())
            .unwrap_or_else(crate::store::rest::now);
        conditions.insert(name.clone(), Dangling { dangling, level: fs.level().to_string(), since });
        let Some(level) = level else {
            tracing::warn!(flow_schema = %name, priority_level = fs.level(), "FlowSchema refers to a missing priority level: Dangling");
            continue;
        };
        let uid = uid_of(&fs.metadata, "FlowSchema");
        let metrics = metrics::FlowMetrics::new(&level.name, &name);
        let uid_headers = Arc::new(crate::flowcontrol::classified::UidHeaders {
            flow_schema_uid: http::HeaderValue::from_str(&uid).ok(),
            priority_level_uid: level.uid_header.clone(),
        });
        schemas.push(Schema { level: level.clone(), name: Arc::from(name.as_str()), uid, uid_headers, fs, metrics });
    }
    schemas.sort_by(|a, b| (a.fs.spec.matching_precedence, &a.name).cmp(&(b.fs.spec.matching_precedence, &b.name)));
    Ok(Config { schemas, levels, bounds, conditions })
}

/// Recomputes borrowing once a period on a thread of its own, until the controller is gone.
fn rebalance_every(apf: Weak<Apf>) {
    let spawned = std::thread::Builder::new().name("apf-borrowing".into()).spawn(move || loop {
        std::thread::sleep(REBALANCE);
        let Some(apf) = apf.upgrade() else { return };
        apf.rebalance();
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the APF borrowing thread; levels keep their nominal seats");
    }
}

#[cfg(test)]
mod tests;

/// The UID a bootstrap or file object without one gets (for tests elsewhere).
#[cfg(test)]
pub fn derived_uid_for_tests(kind: &str, name: &str) -> String {
    derived_uid(kind, name)
}
