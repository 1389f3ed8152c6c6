//! Label and field selectors in kube's string syntax (`a=b,c!=d,e in (x,y),!f`).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits at commas outside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

fn valid_label_key(k: &str) -> bool {
    let name = k.rsplit('/').next().unwrap_or(k);
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

fn valid_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric()))
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let req = if let Some(k) = part.strip_prefix('!') {
                Requirement { key: k.trim().into(), op: Op::NotExists }
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                Requirement { key: k.trim().into(), op: Op::NotIn(set(rest)?) }
            } else if let Some((k, rest)) = part.split_once(" in ") {
                Requirement { key: k.trim().into(), op: Op::In(set(rest)?) }
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement { key: k.trim().into(), op: Op::NotEq(v.trim().into()) }
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement { key: k.trim().into(), op: Op::Eq(v.trim().into()) }
            } else {
                Requirement { key: part.clone(), op: Op::Exists }
            };
            if !valid_label_key(&req.key) {
                return Err(format!("unable to parse requirement: invalid label key \"{}\"", req.key));
            }
            let values: Vec<&String> = match &req.op {
                Op::Eq(v) | Op::NotEq(v) => vec![v],
                Op::In(v) | Op::NotIn(v) => v.iter().collect(),
                _ => vec![],
            };
            if let Some(bad) = values.into_iter().find(|v| !valid_label_value(v)) {
                return Err(format!("unable to parse requirement: invalid label value: \"{bad}\""));
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let labels = &obj["metadata"]["labels"];
        self.0.iter().all(|r| {
            let v = labels.get(&r.key).and_then(Value::as_str);
            match &r.op {
                Op::Eq(x) => v == Some(x.as_str()),
                Op::NotEq(x) => v != Some(x.as_str()),
                Op::In(xs) => v.is_some_and(|v| xs.iter().any(|x| x == v)),
                Op::NotIn(xs) => !v.is_some_and(|v| xs.iter().any(|x| x == v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
            }
        })
    }
}

fn set(s: &str) -> Result<Vec<String>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("unable to parse requirement: found '{s}', expected: '('"))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
}

/// A parsed field selector over the fields kube supports for every object
/// (`metadata.name`, `metadata.namespace`) plus a resource's own (e.g. secrets' `type`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str, extra_fields: &[&str]) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in split_top(s) {
            let (k, eq, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (k, true, v)
            } else {
                return Err(format!("invalid selector: '{part}'; can't understand '{part}'"));
            };
            let k = k.trim();
            if !matches!(k, "metadata.name" | "metadata.namespace") && !extra_fields.contains(&k) {
                return Err(format!("field label not supported: {k}"));
            }
            out.push((k.to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(k, eq, want)| (field(obj, k) == want.as_str()) == *eq)
    }

    /// The same requirements with their fields renamed by `f` (another version's field
    /// labels in the stored form's names).
    pub fn relabel(mut self, f: impl Fn(&str) -> String) -> Self {
        for (k, ..) in &mut self.0 {
            *k = f(k);
        }
        self
    }

    /// Adds the requirement `metadata.name == name`.
    pub fn require_name(&mut self, name: &str) {
        self.0.push(("metadata.name".to_string(), true, name.to_string()));
    }

    /// The name an `metadata.name=` requirement pins, if any.
    pub fn name(&self) -> Option<&str> {
        self.0.iter().find(|(k, eq, _)| k == "metadata.name" && *eq).map(|(_, _, v)| v.as_str())
    }
}

/// The value of a selectable field: its path in the object, but for the one kube computes (an
/// Event's `source`: the source component, or else the reporting controller, whose JSON name
/// is `reportingComponent`).
fn field<'a>(obj: &'a Value, key: &str) -> std::borrow::Cow<'a, str> {
    let at = |path: &str| -> std::borrow::Cow<'a, str> {
        let mut cur = obj;
        for seg in path.split('.') {
            cur = &cur[seg];
        }
        // a custom resource's selectable integer and boolean fields compare as their text
        match cur {
            Value::String(s) => s.as_str().into(),
            Value::Number(n) => n.to_string().into(),
            Value::Bool(b) => b.to_string().into(),
            _ => "".into(),
        }
    };
    match key {
        "source" => Some(at("source.component")).filter(|s| !s.is_empty()).unwrap_or_else(|| at("reportingComponent")),
        _ => at(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_operators() {
        let o = json!({"metadata": {"labels": {"app": "x", "tier": "web"}}});
        for (sel, want) in [
            ("app=x", true),
            ("app==x", true),
            ("app!=x", false),
            ("app in (x,y)", true),
            ("app notin (x, y)", false),
            ("tier,app=x", true),
            ("!tier", false),
            ("!missing", true),
            ("missing", false),
            ("app in (y),tier=web", false),
            ("", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).unwrap().matches(&o), want, "{sel}");
        }
        assert!(LabelSelector::parse("a b=c").is_err());
        assert!(LabelSelector::parse("app in x").is_err());
    }

    #[test]
    fn fields() {
        let o = json!({"metadata": {"name": "a", "namespace": "n"}, "type": "Opaque"});
        assert!(FieldSelector::parse("metadata.name=a", &[]).unwrap().matches(&o));
        assert!(!FieldSelector::parse("metadata.namespace!=n", &[]).unwrap().matches(&o));
        assert!(FieldSelector::parse("type==Opaque", &["type"]).unwrap().matches(&o));
        assert_eq!(FieldSelector::parse("spec.x=1", &[]).unwrap_err(), "field label not supported: spec.x");
        assert_eq!(FieldSelector::parse("metadata.name=a", &[]).unwrap().name(), Some("a"));
        let ev = json!({"reportingComponent": "kubelet", "source": {}});
        let sel = |s: &str| FieldSelector::parse(s, &["source", "reportingComponent"]).unwrap();
        assert!(sel("source=kubelet").matches(&ev) && sel("reportingComponent=kubelet").matches(&ev));
        let ev = json!({"reportingComponent": "kubelet", "source": {"component": "scheduler"}});
        assert!(sel("source=scheduler").matches(&ev) && !sel("source=kubelet").matches(&ev));
    }
}
