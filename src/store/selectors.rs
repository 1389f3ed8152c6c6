//! Label and field selectors of a list or watch, matched against stored objects. The grammars
//! (kube's `labels.Parse` and `fields.ParseSelector`, with kube's error texts) are in
//! [`crate::request_info::selector`], the one parser RequestInfo uses too; what is here is
//! what the store adds: matching objects, and which fields a resource can be selected by.

use crate::request_info::selector::{parse_fields, parse_labels, Requirement};
use serde_json::Value;

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// `labels.Parse`; the error is the message of kube's 400.
    pub fn parse(s: &str) -> Result<Self, String> {
        parse_labels(s).map(LabelSelector)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let labels = &obj["metadata"]["labels"];
        self.0.iter().all(|r| r.matches(labels.get(&r.key).and_then(Value::as_str)))
    }
}

/// A parsed field selector over the fields kube supports for every object
/// (`metadata.name`, `metadata.namespace`) plus a resource's own (e.g. secrets' `type`):
/// (field, equal, value) in kube's order of the terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// `fields.ParseSelector`, then the field labels as the resource's `ConvertFieldLabel` takes
    /// them, term by term in kube's order: one it does not support is kube's `field label not
    /// supported: <field>` (the field as written: `metadata.name ` with its space too).
    pub fn parse(s: &str, extra_fields: &[&str]) -> Result<Self, String> {
        let mut out = Vec::new();
        for t in parse_fields(s)? {
            let k = t.field.as_str();
            if !matches!(k, "metadata.name" | "metadata.namespace") && !extra_fields.contains(&k) {
                return Err(format!("field label not supported: {k}"));
            }
            out.push((t.field, t.equal, t.value));
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

    /// `>`/`<` compare a label as an integer; `in ()` is the set {""}; a missing label matches
    /// only the negative operators.
    #[test]
    fn label_integers_and_empty_sets() {
        let objs = [
            json!({"metadata": {"name": "n5", "labels": {"n": "5", "e": ""}}}),
            json!({"metadata": {"name": "n12", "labels": {"n": "12", "e": "x"}}}),
            json!({"metadata": {"name": "nx", "labels": {"n": "x"}}}),
            json!({"metadata": {"name": "none"}}),
        ];
        let names = |sel: &str| -> Vec<&str> {
            let sel = LabelSelector::parse(sel).unwrap();
            objs.iter().filter(|o| sel.matches(o)).map(|o| o["metadata"]["name"].as_str().unwrap()).collect()
        };
        assert_eq!(names("n>6"), ["n12"]);
        assert_eq!(names("n<6"), ["n5"]);
        assert_eq!(names("e in ()"), ["n5"]);
        assert_eq!(names("e notin ()"), ["n12", "nx", "none"]);
        assert_eq!(names("e in(x)"), ["n12"]);
    }

    #[test]
    fn fields() {
        let o = json!({"metadata": {"name": "a", "namespace": "n"}, "type": "Opaque"});
        assert!(FieldSelector::parse("metadata.name=a", &[]).unwrap().matches(&o));
        assert!(!FieldSelector::parse("metadata.namespace!=n", &[]).unwrap().matches(&o));
        assert!(FieldSelector::parse("type==Opaque", &["type"]).unwrap().matches(&o));
        assert_eq!(FieldSelector::parse("spec.x=1", &[]).unwrap_err(), "field label not supported: spec.x");
        // not trimmed, and the first unsupported field in kube's order of the terms
        assert_eq!(
            FieldSelector::parse("metadata.name = a", &[]).unwrap_err(),
            "field label not supported: metadata.name "
        );
        assert_eq!(FieldSelector::parse("z=1,b=2", &[]).unwrap_err(), "field label not supported: b");
        assert_eq!(
            FieldSelector::parse("metadata.name=x=y", &[]).unwrap_err(),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(FieldSelector::parse("a", &[]).unwrap_err(), "invalid selector: 'a'; can't understand 'a'");
        let o = json!({"metadata": {"name": "a,b=c", "namespace": "n"}});
        assert!(FieldSelector::parse(r"metadata.name=a\,b\=c", &[]).unwrap().matches(&o));
        assert_eq!(FieldSelector::parse("metadata.name=a", &[]).unwrap().name(), Some("a"));
        let ev = json!({"reportingComponent": "kubelet", "source": {}});
        let sel = |s: &str| FieldSelector::parse(s, &["source", "reportingComponent"]).unwrap();
        assert!(sel("source=kubelet").matches(&ev) && sel("reportingComponent=kubelet").matches(&ev));
        let ev = json!({"reportingComponent": "kubelet", "source": {"component": "scheduler"}});
        assert!(sel("source=scheduler").matches(&ev) && !sel("source=kubelet").matches(&ev));
    }
}
