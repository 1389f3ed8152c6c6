//! `x-kubernetes-validations` (CEL rules) of a CRD schema, evaluated with the `cel` crate as
//! kube's apiextensions-apiserver evaluates them: `self` is the value at the rule's node,
//! `oldSelf` the stored one on an update (a rule naming `oldSelf` is a transition rule, not
//! checked on create); a false rule is `<path>: Invalid value: "<type>": <message>` (or
//! `failed rule: <rule>`). Rules are compiled when the CRD is validated, so a bad rule is the
//! CRD's error, not its objects'.

use crate::api::status::StatusCause;
use once_cell::sync::Lazy;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The rules of a schema node.
fn rules(schema: &Value) -> impl Iterator<Item = &Value> {
    schema["x-kubernetes-validations"].as_array().into_iter().flatten()
}

/// Why `rule` does not compile (kube's `compilation failed: ...`), if it does not.
pub fn compile_error(rule: &str) -> Option<String> {
    cel::Program::compile(rule).err().map(|e| format!("compilation failed: ERROR: <input>: {e}"))
}

/// A JSON value as CEL sees it in kube: integers are `int`, objects maps by string keys.
fn to_cel(v: &Value) -> Option<cel::Value> {
    Some(match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => match n.as_u64() {
                Some(u) => cel::Value::UInt(u),
                None => cel::Value::Float(n.as_f64()?),
            },
        },
        Value::String(s) => cel::Value::from(s.as_str()),
        Value::Array(a) => cel::Value::from(a.iter().map(to_cel).collect::<Option<Vec<_>>>()?),
        // a field set the server holds as text is seen as the map it is
        Value::Object(_) if crate::store::fields_v1::text(v).is_some() => to_cel(&crate::store::fields_v1::tree(v))?,
        Value::Object(m) => {
            let mut out = std::collections::HashMap::new();
            for (k, v) in m {
                out.insert(k.clone(), to_cel(v)?);
            }
            cel::Value::from(out)
        }
    })
}

/// `rule` compiled, once per distinct text for the life of the process: the rules of served
/// CRDs are checked at every node of every write. None when it does not compile.
fn compiled(rule: &str) -> Option<Arc<cel::Program>> {
    static PROGRAMS: Lazy<Mutex<HashMap<String, Option<Arc<cel::Program>>>>> = Lazy::new(Default::default);
    let mut programs = PROGRAMS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = programs.get(rule) {
        return p.clone();
    }
    let p = cel::Program::compile(rule).ok().map(Arc::new);
    programs.insert(rule.to_string(), p.clone());
    p
}

fn is_transition(rule: &str) -> bool {
    rule.contains("oldSelf")
}

/// Checks the rules at one schema node against `v` (and `old`, its stored value, if any).
pub fn check(schema: &Value, v: &Value, old: Option<&Value>, path: &str, out: &mut Vec<StatusCause>) {
    let mut rules = rules(schema).peekable();
    if rules.peek().is_none() {
        return;
    }
    // converted once for all of this node's rules
    let Some(this) = to_cel(v) else { return };
    let old = old.and_then(to_cel);
    for r in rules {
        let rule = r["rule"].as_str().unwrap_or_default();
        if is_transition(rule) && old.is_none() {
            continue;
        }
        let Some(program) = compiled(rule) else { continue };
        let mut ctx = cel::Context::default();
        ctx.add_variable_from_value("self", this.clone());
        if let Some(o) = &old {
            ctx.add_variable_from_value("oldSelf", o.clone());
        }
        let type_name = schema["type"].as_str().unwrap_or("object");
        let field = match r["fieldPath"].as_str() {
            Some(f) if !f.is_empty() => format!("{path}{f}"),
            _ => path.to_string(),
        };
        let failed = match program.execute(&ctx) {
            Ok(cel::Value::Bool(true)) => continue,
            Ok(cel::Value::Bool(false)) => message(r, rule, &ctx),
            Ok(_) => "rule did not evaluate to a bool".to_string(),
            Err(e) => e.to_string(),
        };
        out.push(StatusCause {
            reason: r["reason"].as_str().unwrap_or("FieldValueInvalid").to_string(),
            message: format!("Invalid value: \"{type_name}\": {failed}"),
            field,
        });
    }
}

/// A failed rule's message: its messageExpression's, its message, or kube's default.
fn message(r: &Value, rule: &str, ctx: &cel::Context) -> String {
    if let Some(program) = r["messageExpression"].as_str().and_then(compiled) {
        if let Ok(cel::Value::String(s)) = program.execute(ctx) {
            return s.to_string();
        }
    }
    match r["message"].as_str() {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => format!("failed rule: {rule}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_and_transition_rules() {
        let schema = json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.minReplicas <= self.replicas", "message": "replicas should be greater than or equal to minReplicas"},
            {"rule": "self.replicas <= oldSelf.replicas + 1"},
            {"rule": "size(self.name) < 5", "messageExpression": "'name ' + self.name + ' is too long'"},
        ]});
        let mut out = Vec::new();
        check(&schema, &json!({"minReplicas": 3, "replicas": 2, "name": "ok"}), None, "spec", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].field, "spec");
        assert_eq!(
            out[0].message,
            "Invalid value: \"object\": replicas should be greater than or equal to minReplicas"
        );
        let mut out = Vec::new();
        check(
            &schema,
            &json!({"minReplicas": 1, "replicas": 5, "name": "toolong"}),
            Some(&json!({"minReplicas": 1, "replicas": 2, "name": "a"})),
            "spec",
            &mut out,
        );
        let msgs: Vec<&str> = out.iter().map(|c| c.message.as_str()).collect();
        assert_eq!(
            msgs,
            vec![
                "Invalid value: \"object\": failed rule: self.replicas <= oldSelf.replicas + 1",
                "Invalid value: \"object\": name toolong is too long"
            ]
        );
        assert!(compile_error("self.a ==").is_some());
        assert!(compile_error("self.a == 1").is_none());
    }
}
