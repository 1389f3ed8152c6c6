//! Which names of each CRD are accepted, as kube's naming controller decides: within a group,
//! a plural, singular or short name another CRD already has, or a kind or list kind another
//! already has, is a conflict (the earlier CRD keeps its names).

use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// A CRD's names with kube's defaults filled (singular: the lowercased kind; listKind:
/// `<Kind>List`): what `status.acceptedNames` shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Names {
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub kind: String,
    pub list_kind: String,
    pub categories: Vec<String>,
}

impl Names {
    pub fn of(crd: &Value) -> Self {
        let n = &crd["spec"]["names"];
        let s = |k: &str| n[k].as_str().unwrap_or_default().to_string();
        let list = |k: &str| -> Vec<String> {
            n[k].as_array().into_iter().flatten().filter_map(Value::as_str).map(String::from).collect()
        };
        let kind = s("kind");
        let singular = if s("singular").is_empty() { kind.to_ascii_lowercase() } else { s("singular") };
        let list_kind = if s("listKind").is_empty() { format!("{kind}List") } else { s("listKind") };
        Names {
            plural: s("plural"),
            singular,
            short_names: list("shortNames"),
            kind,
            list_kind,
            categories: list("categories"),
        }
    }

    /// `status.acceptedNames`.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({"plural": self.plural, "singular": self.singular, "kind": self.kind, "listKind": self.list_kind});
        if !self.short_names.is_empty() {
            v["shortNames"] = serde_json::json!(self.short_names);
        }
        if !self.categories.is_empty() {
            v["categories"] = serde_json::json!(self.categories);
        }
        v
    }
}

/// A names conflict: the NamesAccepted condition's reason and message.
pub type Conflict = (&'static str, String);

/// Each CRD's names (by CRD name), or why they are not accepted. CRDs are taken in creation
/// order, so the first to claim a name keeps it.
pub fn accept(crds: &[Value]) -> HashMap<String, Result<Names, Conflict>> {
    let mut order: Vec<&Value> = crds.iter().collect();
    let key = |c: &Value| {
        let m = &c["metadata"];
        (
            m["creationTimestamp"].as_str().unwrap_or_default().to_string(),
            m["name"].as_str().unwrap_or_default().to_string(),
        )
    };
    order.sort_by_key(|c| key(c));
    // group -> (resource names, kinds) already taken
    let mut taken: HashMap<String, (HashSet<String>, HashSet<String>)> = HashMap::new();
    let mut out = HashMap::new();
    for crd in order {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let group = crd["spec"]["group"].as_str().unwrap_or_default().to_string();
        let names = Names::of(crd);
        let (resources, kinds) = taken.entry(group).or_default();
        let in_use = |n: &str| format!("{} is already in use", crate::api::field::quote(n));
        let conflict = if resources.contains(&names.plural) {
            Some(("PluralConflict", in_use(&names.plural)))
        } else if resources.contains(&names.singular) {
            Some(("SingularConflict", in_use(&names.singular)))
        } else if let Some(s) = names.short_names.iter().find(|s| resources.contains(*s)) {
            Some(("ShortNamesConflict", in_use(s)))
        } else if kinds.contains(&names.kind) {
            Some(("KindConflict", in_use(&names.kind)))
        } else if kinds.contains(&names.list_kind) {
            Some(("ListKindConflict", in_use(&names.list_kind)))
        } else {
            None
        };
        match conflict {
            Some(c) => {
                out.insert(name, Err(c));
            }
            None => {
                resources.insert(names.plural.clone());
                resources.insert(names.singular.clone());
                resources.extend(names.short_names.iter().cloned());
                kinds.insert(names.kind.clone());
                kinds.insert(names.list_kind.clone());
                out.insert(name, Ok(names));
            }
        }
    }
    out
}
