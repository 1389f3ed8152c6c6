//! `flowcontrol.apiserver.k8s.io/v1` FlowSchema and PriorityLevelConfiguration, as policy
//! files and kubectl write them (multi-document YAML or JSON, `List`s too), with kube's
//! defaults and the validation that matters for serving them.

use anyhow::{anyhow, bail, Context};
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
        match kind.as_str() {
            "FlowSchema" => {
                let fs: FlowSchema = serde_yaml::from_value(v).with_context(|| format!("{origin}: FlowSchema"))?;
                fs.validate().with_context(|| format!("{origin}: FlowSchema {:?}", fs.metadata.name))?;
                self.flow_schemas.push(fs);
            }
            "PriorityLevelConfiguration" => {
                let pl: PriorityLevelConfiguration =
                    serde_yaml::from_value(v).with_context(|| format!("{origin}: PriorityLevelConfiguration"))?;
                pl.validate()
                    .with_context(|| format!("{origin}: PriorityLevelConfiguration {:?}", pl.metadata.name))?;
                self.priority_levels.push(pl);
            }
            other => bail!("{origin}: kind {other:?} is not FlowSchema or PriorityLevelConfiguration"),
        }
        Ok(())
    }

    /// The store's objects of one resource (as the store keeps them: JSON). An object that
    /// does not parse or validate is left out (logged), not the whole set.
    pub fn from_stored(resource: &str, objects: Vec<serde_json::Value>) -> anyhow::Result<Objects> {
        let mut out = Objects::default();
        for v in objects {
            let name = v["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let r = match resource {
                "flowschemas" => serde_json::from_value::<FlowSchema>(v)
                    .map_err(anyhow::Error::from)
                    .and_then(|fs| fs.validate().map(|_| out.flow_schemas.push(fs))),
                "prioritylevelconfigurations" => serde_json::from_value::<PriorityLevelConfiguration>(v)
                    .map_err(anyhow::Error::from)
                    .and_then(|pl| pl.validate().map(|_| out.priority_levels.push(pl))),
                other => bail!("{other} is not a flowcontrol.apiserver.k8s.io resource"),
            };
            if let Err(e) = r {
                tracing::warn!(resource, name, error = %format!("{e:#}"), "stored APF object ignored: invalid");
            }
        }
        Ok(out)
    }

    /// Reads files, and every .yaml/.yml/.json file of directories (sorted by name).
    pub fn load(paths: &[std::path::PathBuf]) -> anyhow::Result<Objects> {
        let mut out = Objects::default();
        for p in paths {
            for file in crate::api::documents::files(std::slice::from_ref(p))? {
                let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
                let o = Objects::parse(&text, &file.display().to_string())?;
                out.flow_schemas.extend(o.flow_schemas);
                out.priority_levels.extend(o.priority_levels);
            }
        }
        Ok(out)
    }
}

impl FlowSchema {
    fn validate(&self) -> anyhow::Result<()> {
        if self.metadata.name.is_empty() {
            bail!("metadata.name: Required value");
        }
        let p = self.spec.matching_precedence;
        if !(1..=10000).contains(&p) {
            bail!("spec.matchingPrecedence: Invalid value: {p}: must be between 1 and 10000, inclusive");
        }
        if let Some(d) = &self.spec.distinguisher_method {
            if d.kind != "ByUser" && d.kind != "ByNamespace" {
                bail!("spec.distinguisherMethod.type: Unsupported value: {:?}: supported values: \"ByNamespace\", \"ByUser\"", d.kind);
            }
        }
        for (i, r) in self.spec.rules.iter().enumerate() {
            if r.subjects.is_empty() {
                bail!("spec.rules[{i}].subjects: Required value");
            }
            for (j, s) in r.subjects.iter().enumerate() {
                let ok = match s.kind.as_str() {
                    "User" => s.user.is_some(),
                    "Group" => s.group.is_some(),
                    "ServiceAccount" => s.service_account.is_some(),
                    _ => bail!("spec.rules[{i}].subjects[{j}].kind: Unsupported value: {:?}", s.kind),
                };
                if !ok {
                    bail!("spec.rules[{i}].subjects[{j}]: {} subject without its {} field", s.kind, s.kind);
                }
            }
        }
        Ok(())
    }

    pub fn level(&self) -> &str {
        &self.spec.priority_level_configuration.name
    }
}

impl PriorityLevelConfiguration {
    fn validate(&self) -> anyhow::Result<()> {
        if self.metadata.name.is_empty() {
            bail!("metadata.name: Required value");
        }
        match (self.spec.kind.as_str(), &self.spec.limited) {
            ("Exempt", None) => Ok(()),
            ("Exempt", Some(_)) => bail!("spec.limited: Forbidden: must be nil if the type is not Limited"),
            ("Limited", None) => bail!("spec.limited: Required value: must not be empty when type is Limited"),
            ("Limited", Some(l)) => l.validate(),
            (other, _) => bail!("spec.type: Unsupported value: {other:?}: supported values: \"Exempt\", \"Limited\""),
        }
    }

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
    fn validate(&self) -> anyhow::Result<()> {
        if self.lendable_percent.is_some_and(|p| p > 100) {
            bail!("spec.limited.lendablePercent: Invalid value: must be between 0 and 100, inclusive");
        }
        match (self.limit_response.kind.as_str(), &self.limit_response.queuing) {
            ("Reject", None) => Ok(()),
            ("Reject", Some(_)) => bail!("spec.limited.limitResponse.queuing: Forbidden: must be nil if limited.limitResponse.type is not Limited"),
            ("Queue", q) => {
                let q = q.unwrap_or_default();
                if q.queues == 0 || q.queue_length_limit == 0 || q.hand_size == 0 {
                    bail!("spec.limited.limitResponse.queuing: queues, handSize and queueLengthLimit must be positive");
                }
                if q.hand_size > q.queues {
                    return Err(anyhow!(
                        "spec.limited.limitResponse.queuing.handSize: Invalid value: {}: should not be greater than queues ({})",
                        q.hand_size,
                        q.queues
                    ));
                }
                Ok(())
            }
            (other, _) => bail!("spec.limited.limitResponse.type: Unsupported value: {other:?}: supported values: \"Queue\", \"Reject\""),
        }
    }

    pub fn shares(&self) -> u32 {
        self.nominal_concurrency_shares.unwrap_or(30)
    }

    /// None: Reject.
    pub fn queuing(&self) -> Option<Queuing> {
        (self.limit_response.kind == "Queue").then(|| self.limit_response.queuing.unwrap_or_default())
    }
}
