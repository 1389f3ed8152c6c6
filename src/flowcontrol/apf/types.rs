//! `flowcontrol.apiserver.k8s.io/v1` FlowSchema and PriorityLevelConfiguration, as policy
//! files and kubectl write them (multi-document YAML or JSON, `List`s too), with kube's
//! defaults and validation (`validation.rs`), so that a file holds what kube would store.

use anyhow::{bail, Context};
use serde::Deserialize;

#[derive(Deserialize, Debug, Clone, Default)]
pub struct Meta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub generation: i64,
}

/// kube's annotation saying whether the config-producing controller keeps a bootstrap object's
/// spec as kube defines it.
pub const AUTOUPDATE: &str = "apf.kubernetes.io/autoupdate-spec";

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct FlowSchema {
    pub metadata: Meta,
    pub spec: FlowSchemaSpec,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct FlowSchemaSpec {
    pub priority_level_configuration: NameRef,
    /// kube's default when unset.
    #[serde(default = "default_precedence")]
    pub matching_precedence: i32,
    #[serde(default)]
    pub distinguisher_method: Option<Distinguisher>,
    #[serde(default)]
    pub rules: Vec<PolicyRulesWithSubjects>,
}

fn default_precedence() -> i32 {
    1000
}

#[derive(Deserialize, Debug, Clone)]
pub struct NameRef {
    pub name: String,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Distinguisher {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRulesWithSubjects {
    #[serde(default)]
    pub subjects: Vec<Subject>,
    #[serde(default)]
    pub resource_rules: Vec<ResourceRule>,
    #[serde(default)]
    pub non_resource_rules: Vec<NonResourceRule>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    pub kind: String,
    #[serde(default)]
    pub user: Option<NameRef>,
    #[serde(default)]
    pub group: Option<NameRef>,
    #[serde(default)]
    pub service_account: Option<ServiceAccountRef>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct ServiceAccountRef {
    pub namespace: String,
    pub name: String,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRule {
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub api_groups: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub cluster_scope: bool,
    #[serde(default)]
    pub namespaces: Vec<String>,
}

#[derive(Deserialize, Debug, Clone, Default)]
pub struct NonResourceRule {
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct PriorityLevelConfiguration {
    pub metadata: Meta,
    pub spec: PriorityLevelSpec,
}

#[derive(Deserialize, Debug, Clone)]
pub struct PriorityLevelSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub limited: Option<Limited>,
    #[serde(default)]
    pub exempt: Option<Exempt>,
}

/// The exempt level's share of the server's seats (v1 defaults both to 0): it counts in the
/// division of seats and its demand in borrowing, though it is never limited.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct Exempt {
    #[serde(default)]
    pub nominal_concurrency_shares: Option<u32>,
    #[serde(default)]
    pub lendable_percent: Option<u32>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Limited {
    /// v1 defaults an unset value to 30.
    #[serde(default)]
    pub nominal_concurrency_shares: Option<u32>,
    #[serde(default)]
    pub lendable_percent: Option<u32>,
    #[serde(default)]
    pub borrowing_limit_percent: Option<u32>,
    #[serde(default)]
    pub limit_response: LimitResponse,
}

#[derive(Deserialize, Debug, Clone, Default)]
pub struct LimitResponse {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub queuing: Option<Queuing>,
}

/// kube's defaults: 64 queues, hand size 8, 50 requests per queue.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Queuing {
    #[serde(default = "default_queues")]
    pub queues: u32,
    #[serde(default = "default_hand_size")]
    pub hand_size: u32,
    #[serde(default = "default_queue_length_limit")]
    pub queue_length_limit: u32,
}

fn default_queues() -> u32 {
    64
}
fn default_hand_size() -> u32 {
    8
}
fn default_queue_length_limit() -> u32 {
    50
}

impl Default for Queuing {
    fn default() -> Self {
        Queuing {
            queues: default_queues(),
            hand_size: default_hand_size(),
            queue_length_limit: default_queue_length_limit(),
        }
    }
}

/// The objects of one or more files.
#[derive(Debug, Default, Clone)]
pub struct Objects {
    pub flow_schemas: Vec<FlowSchema>,
    pub priority_levels: Vec<PriorityLevelConfiguration>,
}

impl Objects {
    /// Parses multi-document YAML (or JSON); other kinds are refused so a typo is not silent.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Objects> {
        let mut out = Objects::default();
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let v = serde_yaml::Value::deserialize(doc).with_context(|| format!("{origin}: document {}", i + 1))?;
            out.add(v, &format!("{origin}: document {}", i + 1))?;
        }
        Ok(out)
    }

    fn add(&mut self, v: serde_yaml::Value, origin: &str) -> anyhow::Result<()> {
        if v.is_null() {
            return Ok(());
        }
        let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or_default().to_string();
        if kind == "List" || kind.ends_with("List") && v.get("items").is_some() {
            for item in v.get("items").and_then(|i| i.as_sequence()).cloned().unwrap_or_default() {
                self.add(item, origin)?;
            }
            return Ok(());
        }
        let api = v.get("apiVersion").and_then(|a| a.as_str()).unwrap_or_default();
        if !api.starts_with("flowcontrol.apiserver.k8s.io/") {
            bail!("{origin}: apiVersion {api:?} is not flowcontrol.apiserver.k8s.io");
        }
        let resource = match kind.as_str() {
            "FlowSchema" => "flowschemas",
            "PriorityLevelConfiguration" => "prioritylevelconfigurations",
            other => bail!("{origin}: kind {other:?} is not FlowSchema or PriorityLevelConfiguration"),
        };
        let v = serde_json::to_value(v).with_context(|| format!("{origin}: {kind}"))?;
        self.push(resource, v).with_context(|| format!("{origin}: {kind}"))
    }

    /// Defaults and validates one object as kube does on write, and keeps it.
    fn push(&mut self, resource: &str, mut v: serde_json::Value) -> anyhow::Result<()> {
        super::validation::set_defaults(resource, &mut v);
        let name = v["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let mut causes = crate::store::validation::validate_name(crate::store::validation::NameRule::Subdomain, &name);
        let (kind, more) = if resource == "flowschemas" {
            ("FlowSchema", super::validation::flow_schema(&v))
        } else {
            ("PriorityLevelConfiguration", super::validation::priority_level(&v))
        };
        causes.extend(more);
        if !causes.is_empty() {
            bail!("{}", crate::api::Status::invalid(super::ensurer::GROUP, kind, &name, causes).message);
        }
        if resource == "flowschemas" {
            self.flow_schemas.push(serde_json::from_value(v)?);
        } else {
            self.priority_levels.push(serde_json::from_value(v)?);
        }
        Ok(())
    }

    /// The store's objects of one resource (as the store keeps them: JSON). An object that
    /// does not parse or validate is left out (logged), not the whole set.
    pub fn from_stored(resource: &str, objects: Vec<serde_json::Value>) -> anyhow::Result<Objects> {
        let mut out = Objects::default();
        if resource != "flowschemas" && resource != "prioritylevelconfigurations" {
            bail!("{resource} is not a flowcontrol.apiserver.k8s.io resource");
        }
        for v in objects {
            let name = v["metadata"]["name"].as_str().unwrap_or_default().to_string();
            if let Err(e) = out.push(resource, v) {
                tracing::warn!(resource, name, error = %format!("{e:#}"), "stored APF object ignored: invalid");
            }
        }
        Ok(out)
    }

    /// Reads files, and every .yaml/.yml/.json file of directories (sorted by name).
    /// An object defined twice is refused, as the API keeps one per name.
    pub fn load(paths: &[std::path::PathBuf]) -> anyhow::Result<Objects> {
        let mut out = Objects::default();
        let mut seen: std::collections::HashMap<(&str, String), std::path::PathBuf> = Default::default();
        for p in paths {
            for file in crate::api::documents::files(std::slice::from_ref(p))? {
                let text =
                    crate::api::documents::read_text(&file).with_context(|| format!("reading {}", file.display()))?;
                let o = Objects::parse(&text, &file.display().to_string())?;
                let names = o.flow_schemas.iter().map(|f| ("FlowSchema", &f.metadata.name));
                let names =
                    names.chain(o.priority_levels.iter().map(|p| ("PriorityLevelConfiguration", &p.metadata.name)));
                for (kind, name) in names {
                    if let Some(first) = seen.insert((kind, name.clone()), file.clone()) {
                        return Err(crate::api::documents::defined_again(&format!("{kind} {name}"), &first, &file));
                    }
                }
                out.flow_schemas.extend(o.flow_schemas);
                out.priority_levels.extend(o.priority_levels);
            }
        }
        Ok(out)
    }
}

impl FlowSchema {
    pub fn level(&self) -> &str {
        &self.spec.priority_level_configuration.name
    }
}

impl PriorityLevelConfiguration {
    pub fn is_exempt(&self) -> bool {
        self.spec.kind == "Exempt"
    }

    /// kube's `plSpecCommons`: shares, lendable and borrowing-limit percents of either kind.
    pub fn shares(&self) -> super::limits::Shares {
        match (&self.spec.limited, &self.spec.exempt) {
            (Some(l), _) => super::limits::Shares {
                shares: l.shares(),
                lendable_percent: l.lendable_percent.unwrap_or(0),
                borrowing_limit_percent: l.borrowing_limit_percent,
            },
            (None, e) => super::limits::Shares {
                shares: e.as_ref().and_then(|e| e.nominal_concurrency_shares).unwrap_or(0),
                lendable_percent: e.as_ref().and_then(|e| e.lendable_percent).unwrap_or(0),
                borrowing_limit_percent: None,
            },
        }
    }
}

impl Limited {
    pub fn shares(&self) -> u32 {
        self.nominal_concurrency_shares.unwrap_or(30)
    }

    /// None: Reject.
    pub fn queuing(&self) -> Option<Queuing> {
        (self.limit_response.kind == "Queue").then(|| self.limit_response.queuing.unwrap_or_default())
    }
}
