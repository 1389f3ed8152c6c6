//! The RBAC authorizer: kube's bootstrap policy, then `--rbac-policy` manifests, then RBAC
//! objects from the store, compiled into one indexed [`Policy`] behind an `ArcSwap`.
//! Every change (file edit or store write) rebuilds the whole policy and swaps it in; a
//! source that fails to load leaves the previous policy in force.

pub mod load;
pub mod policy;
pub mod rules;
pub mod types;

pub use policy::{Policy, Rules};
pub use types::{PolicyRule, RbacObject};

use crate::authn::UserInfo;
use crate::authz::{Attributes, Authorizer, Decision, RulesInfo};
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The built-in bootstrap roles and bindings.
pub fn bootstrap() -> Vec<RbacObject> {
    load::parse_manifests(include_str!("bootstrap.yaml")).expect("the embedded bootstrap policy is valid")
}

/// The store's RBAC resources, by resource name.
pub const RESOURCES: [&str; 4] = ["roles", "clusterroles", "rolebindings", "clusterrolebindings"];

#[derive(Default)]
struct Sources {
    files: Vec<RbacObject>,
    dynamic: BTreeMap<String, Vec<RbacObject>>,
}

pub struct RbacAuthorizer {
    paths: Vec<PathBuf>,
    bootstrap: Vec<RbacObject>,
    sources: Mutex<Sources>,
    policy: ArcSwap<Policy>,
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
        Ok(RbacAuthorizer { paths, bootstrap, sources: Mutex::new(sources), policy: ArcSwap::from_pointee(policy) })
    }

    /// An authorizer over exactly `objects` (no bootstrap, no files): for tests and benches.
    pub fn from_objects(objects: Vec<RbacObject>) -> Self {
        let policy = Policy::compile(objects.clone());
        RbacAuthorizer {
            paths: Vec::new(),
            bootstrap: Vec::new(),
            sources: Mutex::new(Sources { files: objects, dynamic: BTreeMap::new() }),
            policy: ArcSwap::from_pointee(policy),
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

    /// Re-reads the policy files; on any error the previous policy stays in force.
    pub fn reload(&self) -> anyhow::Result<()> {
        let files = load::load_paths(&self.paths)?;
        let mut src = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        src.files = files;
        self.swap(&src);
        Ok(())
    }

    /// Replaces the store's objects of one resource (`roles`, `clusterroles`, `rolebindings`,
    /// `clusterrolebindings`) with `objects`, all or nothing.
    pub fn set_dynamic_resource(&self, resource: &str, objects: Vec<serde_json::Value>) -> anyhow::Result<()> {
        if !RESOURCES.contains(&resource) {
            anyhow::bail!("{resource:?} is not an RBAC resource");
        }
        let parsed = parse_objects(objects)?;
        let mut src = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        src.dynamic.insert(resource.to_string(), parsed);
        self.swap(&src);
        Ok(())
    }

    /// Replaces every stored RBAC object with `objects` (any mix of the four kinds).
    pub fn set_dynamic(&self, objects: Vec<serde_json::Value>) -> anyhow::Result<()> {
        let parsed = parse_objects(objects)?;
        let mut src = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        src.dynamic.clear();
        src.dynamic.insert(String::new(), parsed);
        self.swap(&src);
        Ok(())
    }

    fn swap(&self, src: &Sources) {
        let policy = Policy::compile(merged(&self.bootstrap, src));
        log_counts(&policy, "RBAC policy compiled");
        self.policy.store(Arc::new(policy));
    }

    /// The decision, synchronously (the policy snapshot is read once).
    pub fn decide(&self, a: &Attributes) -> (Decision, String) {
        self.policy.load().authorize(a)
    }
}

fn parse_objects(objects: Vec<serde_json::Value>) -> anyhow::Result<Vec<RbacObject>> {
    let mut out = Vec::new();
    for o in objects {
        out.extend(load::parse_value(o)?);
    }
    Ok(out)
}

fn merged(bootstrap: &[RbacObject], src: &Sources) -> Vec<RbacObject> {
    let mut all = bootstrap.to_vec();
    all.extend(src.files.iter().cloned());
    for objs in src.dynamic.values() {
        all.extend(objs.iter().cloned());
    }
    all
}

#[async_trait::async_trait]
impl Authorizer for RbacAuthorizer {
    async fn authorize(&self, attrs: &Attributes) -> (Decision, String) {
        self.decide(attrs)
    }

    fn rules_for(&self, user: &UserInfo, namespace: &str) -> RulesInfo {
        let r = self.policy.load().rules_for(user, namespace);
        RulesInfo::from_rules(r.rules, false, r.errors)
    }
}

#[cfg(test)]
mod tests;
