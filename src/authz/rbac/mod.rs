//! The RBAC authorizer: kube's bootstrap policy (until the store, seeded with it, is read), then
//! RBAC objects from the store, then `--rbac-policy` manifests (a file's object is the file's: it wins over a stored one of the
//! same name), compiled into one indexed [`Policy`] behind an `ArcSwap`. Every change (file
//! edit or store write) rebuilds the whole policy and swaps it in. A policy file that fails to
//! load keeps its previous version while the other files apply; a stored object that fails is
//! skipped alone.

pub mod admission;
pub mod controller;
pub mod covers;
pub mod escalation;
pub mod load;
pub mod policy;
pub mod reconcile;
pub mod rules;
pub mod types;
pub mod validation;

pub use policy::{Policy, Rules};
pub use types::{PolicyRule, RbacObject};

use crate::authn::UserInfo;
use crate::authz::{Attributes, Authorizer, Decision, RulesInfo};
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The built-in bootstrap roles and bindings.
pub fn bootstrap() -> Vec<RbacObject> {
    load::parse_manifests(include_str!("bootstrap.yaml")).expect("the embedded bootstrap policy is valid")
}

/// The store's RBAC resources, by resource name.
pub const RESOURCES: [&str; 4] = ["roles", "clusterroles", "rolebindings", "clusterrolebindings"];

#[derive(Default)]
struct Sources {
    /// The policy files' objects, with the file each came from.
    files: Vec<(PathBuf, RbacObject)>,
    dynamic: BTreeMap<String, Vec<RbacObject>>,
}

pub struct RbacAuthorizer {
    paths: Vec<PathBuf>,
    bootstrap: Vec<RbacObject>,
    sources: Mutex<Sources>,
    policy: ArcSwap<Policy>,
    /// Bumped by every successful reload of the policy files.
    files_generation: AtomicU64,
}

/// How big a compiled policy is, for the log.
fn log_counts(policy: &Policy, what: &str) {
    let [roles, cluster_roles, role_bindings, cluster_role_bindings] = policy.counts;
    tracing::info!(roles, cluster_roles, role_bindings, cluster_role_bindings, "{what}");
}

impl RbacAuthorizer {
    /// Loads the bootstrap policy and the manifests under `paths`; a bad file is a startup error.
    pub fn new(paths: Vec<PathBuf>) -> anyhow::Result<Self> {
        let files = load::load_paths(&paths)?;
        let bootstrap = bootstrap();
        let sources = Sources { files, dynamic: BTreeMap::new() };
        let policy = Policy::compile(merged(&bootstrap, &sources));
        log_counts(&policy, "RBAC policy loaded");
        Ok(RbacAuthorizer {
            paths,
            bootstrap,
            sources: Mutex::new(sources),
            policy: ArcSwap::from_pointee(policy),
            files_generation: AtomicU64::new(0),
        })
    }

    /// An authorizer over exactly `objects` (no bootstrap, no files): for tests and benches.
    pub fn from_objects(objects: Vec<RbacObject>) -> Self {
        let policy = Policy::compile(objects.clone());
        RbacAuthorizer {
            paths: Vec::new(),
            bootstrap: Vec::new(),
            sources: Mutex::new(Sources {
                files: objects.into_iter().map(|o| (PathBuf::new(), o)).collect(),
                dynamic: BTreeMap::new(),
            }),
            policy: ArcSwap::from_pointee(policy),
            files_generation: AtomicU64::new(0),
        }
    }

    /// The policy files and directories watched for changes.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The current compiled policy.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// Re-reads the policy files, file by file: a file that fails to load keeps its previous
    /// objects (and is reported in the error) while the other files' changes apply. So does a
    /// path that replaced others (a file where a directory was: its files' objects), or that
    /// others replaced. An object the files read define twice fails the reload whole; a kept
    /// object that a file read now defines gives way to it (it moved out of the failing file).
    pub fn reload(&self) -> anyhow::Result<()> {
        let listed = crate::api::documents::files(&self.paths)?;
        let mut src = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Vec::new();
        let mut failed = Vec::new();
        let mut errors = Vec::new();
        for f in listed {
            match load::load_file(&f) {
                Ok(objs) => next.extend(objs.into_iter().map(|o| (f.clone(), o))),
                Err(e) => {
                    errors.push(format!("{e:#}"));
                    failed.push(f);
                }
            }
        }
        load::check_unique(&next)?;
        let read: std::collections::HashSet<_> = next.iter().map(|(_, o)| o.key()).collect();
        let replaced = |p: &PathBuf| failed.iter().any(|f| p == f || p.starts_with(f) || f.starts_with(p));
        let kept = src.files.iter().filter(|(p, o)| replaced(p) && !read.contains(&o.key()));
        next.extend(kept.cloned().collect::<Vec<_>>());
        src.files = next;
        self.swap(&src);
        self.files_generation.fetch_add(1, Ordering::Relaxed);
        match errors.as_slice() {
            [] => Ok(()),
            _ => Err(anyhow::anyhow!("{}", errors.join("; "))),
        }
    }

    /// How many times the policy files were reloaded (a change of it: the mirror is stale).
    pub fn files_generation(&self) -> u64 {
        self.files_generation.load(Ordering::Relaxed)
    }

    /// Replaces the store's objects of one resource (`roles`, `clusterroles`, `rolebindings`,
    /// `clusterrolebindings`) with `objects`. An object that does not compile is left out
    /// (and returned, with why) while the others apply: one bad object, from whatever wrote it,
    /// never holds back later changes, such as a revoked binding.
    pub fn set_dynamic_resource(
        &self,
        resource: &str,
        objects: Vec<serde_json::Value>,
    ) -> anyhow::Result<Vec<Skipped>> {
        if !RESOURCES.contains(&resource) {
            anyhow::bail!("{resource:?} is not an RBAC resource");
        }
        let (parsed, skipped) = parse_objects(objects);
        let mut src = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        src.dynamic.insert(resource.to_string(), parsed);
        self.swap(&src);
        Ok(skipped)
    }

    /// Replaces every stored RBAC object with `objects` (any mix of the four kinds), leaving
    /// out (and returning) those that do not compile.
    pub fn set_dynamic(&self, objects: Vec<serde_json::Value>) -> Vec<Skipped> {
        let (parsed, skipped) = parse_objects(objects);
        let mut src = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        src.dynamic.clear();
        src.dynamic.insert(String::new(), parsed);
        self.swap(&src);
        skipped
    }

    /// The policy file that defines this object, if one does: such an object is the file's.
    pub fn defined_by_file(&self, kind: &str, namespace: &str, name: &str) -> Option<PathBuf> {
        let src = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let defines = |o: &RbacObject| o.kind() == kind && o.meta().namespace == namespace && o.meta().name == name;
        src.files.iter().find(|(p, o)| !p.as_os_str().is_empty() && defines(o)).map(|(p, _)| p.clone())
    }

    /// The built-in bootstrap objects and the policy files' objects, for serving through the API.
    pub fn static_objects(&self) -> (Vec<RbacObject>, Vec<(PathBuf, RbacObject)>) {
        let src = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        (self.bootstrap.clone(), src.files.clone())
    }

    fn swap(&self, src: &Sources) {
        let policy = Policy::compile(merged(&self.bootstrap, src));
        // every stored RBAC write recompiles (startup writes the bootstrap objects one by one):
        // the log says so only when the policy's size changes
        if policy.counts != self.policy.load().counts {
            log_counts(&policy, "RBAC policy compiled");
        } else {
            let [roles, cluster_roles, role_bindings, cluster_role_bindings] = policy.counts;
            tracing::debug!(roles, cluster_roles, role_bindings, cluster_role_bindings, "RBAC policy compiled");
        }
        self.policy.store(Arc::new(policy));
    }

    /// The decision, synchronously (the policy snapshot is read once).
    pub fn decide(&self, a: &Attributes<'_>) -> (Decision, Arc<str>) {
        self.policy.load().authorize(a)
    }
}

/// A stored object left out of the policy: which, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// `Kind "namespace/name"` (or `Kind "name"`).
    pub object: String,
    pub error: String,
}

/// Compiles object by object: the good ones, and the bad ones named.
fn parse_objects(objects: Vec<serde_json::Value>) -> (Vec<RbacObject>, Vec<Skipped>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for o in objects {
        let kind = o["kind"].as_str().unwrap_or_default().to_string();
        let (ns, name) = (o["metadata"]["namespace"].as_str(), o["metadata"]["name"].as_str().unwrap_or_default());
        let object = match ns {
            Some(ns) if !ns.is_empty() => format!("{kind} \"{ns}/{name}\""),
            _ => format!("{kind} {name:?}"),
        };
        match load::parse_value(o) {
            Ok(objs) => good.extend(objs),
            Err(e) => bad.push(Skipped { object, error: format!("{e:#}") }),
        }
    }
    (good, bad)
}

/// The store, then the files: later objects replace earlier ones. The built-in bootstrap
/// objects come first only until all four RBAC resources are read from the store (which the
/// controller seeds with them): from then on the stored ones are the policy, as in kube, so a
/// deleted bootstrap role or binding grants nothing (it comes back on a restart).
fn merged(bootstrap: &[RbacObject], src: &Sources) -> Vec<RbacObject> {
    let follows_store = src.dynamic.contains_key("") || RESOURCES.iter().all(|r| src.dynamic.contains_key(*r));
    let mut all = if follows_store { Vec::new() } else { bootstrap.to_vec() };
    for objs in src.dynamic.values() {
        all.extend(objs.iter().cloned());
    }
    all.extend(src.files.iter().map(|(_, o)| o.clone()));
    all
}

#[async_trait::async_trait]
impl Authorizer for RbacAuthorizer {
    async fn authorize(&self, attrs: &Attributes<'_>) -> (Decision, Arc<str>) {
        self.decide(attrs)
    }

    fn rules_for(&self, user: &UserInfo, namespace: &str) -> RulesInfo {
        let r = self.policy.load().rules_for(user, namespace);
        RulesInfo::from_rules(r.rules, false, r.errors)
    }
}

#[cfg(test)]
mod tests;
