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

/// A compiled rule and what bounds its cost.
struct Compiled {
    program: cel::Program,
    /// How deeply its comprehensions (`all`, `exists`, `map`, ...) nest: each may walk the
    /// whole of `self` once per step of the one around it.
    loops: u32,
    /// Whether it names `oldSelf` (a transition rule, not checked on create).
    transition: bool,
}

/// `rule` compiled, once per distinct text for the life of the process: the rules of served
/// CRDs are checked at every node of every write. None when it does not compile.
fn compiled(rule: &str) -> Option<Arc<Compiled>> {
    static PROGRAMS: Lazy<Mutex<HashMap<String, Option<Arc<Compiled>>>>> = Lazy::new(Default::default);
    let mut programs = PROGRAMS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = programs.get(rule) {
        return p.clone();
    }
    let p = cel::Program::compile(rule).ok().map(|program| {
        let loops = loop_depth(program.expression());
        let transition = program.references().has_variable("oldSelf");
        Arc::new(Compiled { program, loops, transition })
    });
    programs.insert(rule.to_string(), p.clone());
    p
}

/// How deeply loops nest in `e`: comprehensions, and the operators that walk a whole value
/// when given `self` or `oldSelf` (or a part of them): `in`, `==`, `!=`, `+` (kube's runtime
/// cost counts each as linear in its operands; `oldSelf.all(x, x in self)` walks n² values).
fn loop_depth(e: &cel::IdedExpr) -> u32 {
    use cel::common::ast::operators;
    use cel::common::ast::Expr;
    let walks_whole = |c: &cel::common::ast::CallExpr| {
        let op =
            [operators::IN, operators::EQUALS, operators::NOT_EQUALS, operators::ADD].contains(&c.func_name.as_str());
        op && c.target.as_deref().into_iter().chain(&c.args).any(rooted_at_self)
    };
    match &e.expr {
        Expr::Call(c) if walks_whole(c) => 1 + nested_depth(e),
        _ => nested_depth(e),
    }
}

/// Whether `e` is `self` or `oldSelf`, or a field or index of them.
fn rooted_at_self(e: &cel::IdedExpr) -> bool {
    use cel::common::ast::{operators, Expr};
    match &e.expr {
        Expr::Ident(name) => name == "self" || name == "oldSelf",
        Expr::Select(s) => rooted_at_self(&s.operand),
        Expr::Call(c) if c.func_name == operators::INDEX => c.args.first().is_some_and(rooted_at_self),
        _ => false,
    }
}

/// `loop_depth` of what `e` holds.
fn nested_depth(e: &cel::IdedExpr) -> u32 {
    use cel::common::ast::{EntryExpr, Expr};
    let max = |es: &mut dyn Iterator<Item = &cel::IdedExpr>| es.map(loop_depth).max().unwrap_or(0);
    let entry = |e: &cel::common::ast::IdedEntryExpr| match &e.expr {
        EntryExpr::StructField(f) => loop_depth(&f.value),
        EntryExpr::MapEntry(m) => loop_depth(&m.key).max(loop_depth(&m.value)),
    };
    match &e.expr {
        Expr::Comprehension(c) => {
            let body = max(&mut [&c.loop_cond, &c.loop_step].into_iter()) + 1;
            body.max(max(&mut [&c.iter_range, &c.accu_init, &c.result].into_iter()))
        }
        Expr::Call(c) => max(&mut c.target.as_deref().into_iter().chain(&c.args)),
        Expr::List(l) => max(&mut l.elements.iter()),
        Expr::Map(m) => m.entries.iter().map(entry).max().unwrap_or(0),
        Expr::Struct(s) => s.entries.iter().map(entry).max().unwrap_or(0),
        Expr::Select(s) => loop_depth(&s.operand),
        _ => 0,
    }
}

/// kube's per-object budget of CEL cost (`RuntimeCELCostBudget`), in its units (about one per
/// value a rule visits).
pub const COST_BUDGET: i64 = 10_000_000;

/// What a rule may cost over a value of `values` values: each nested comprehension may walk
/// all of them for each step of the one around it. An estimate that bounds the work before it
/// is done (the `cel` crate counts no cost as it evaluates).
fn cost(values: usize, loops: u32) -> i64 {
    (values.max(1) as i64).saturating_pow(loops.max(1))
}

const OUT_OF_BUDGET: &str =
    "validation failed due to running out of cost budget, no further validation rules will be run";

/// Checks the rules at one schema node against `v` (and `old`, its stored value, if any),
/// each paid from `budget`; once it runs out, kube's error, and no rule runs again.
pub fn check(schema: &Value, v: &Value, old: Option<&Value>, path: &str, out: &mut Vec<StatusCause>, budget: &mut i64) {
    let mut rules = rules(schema).peekable();
    if rules.peek().is_none() || *budget < 0 {
        return;
    }
    let type_name = schema["type"].as_str().unwrap_or("object");
    use crate::api::decode::value_count;
    let size = value_count(v).max(old.map_or(0, value_count));
    // converted once for all of this node's rules
    let Some(this) = to_cel(v) else { return };
    let old = old.and_then(to_cel);
    for r in rules {
        let rule = r["rule"].as_str().unwrap_or_default();
        let Some(compiled) = compiled(rule) else { continue };
        if compiled.transition && old.is_none() {
            continue;
        }
        *budget -= cost(size, compiled.loops);
        if *budget < 0 {
            out.push(StatusCause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: \"{type_name}\": {OUT_OF_BUDGET}"),
                field: path.to_string(),
            });
            return;
        }
        let program = &compiled.program;
        let mut ctx = cel::Context::default();
        ctx.add_variable_from_value("self", this.clone());
        if let Some(o) = &old {
            ctx.add_variable_from_value("oldSelf", o.clone());
        }
        let field = match r["fieldPath"].as_str() {
            Some(f) if !f.is_empty() => format!("{path}{f}"),
            _ => path.to_string(),
        };
        let failed = match program.execute(&ctx) {
            Ok(cel::Value::Bool(true)) => continue,
            Ok(cel::Value::Bool(false)) => message(r, rule, &ctx, budget, size),
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

/// A failed rule's message: its messageExpression's (paid from the budget as a rule is, and
/// skipped past it), its message, or kube's default.
fn message(r: &Value, rule: &str, ctx: &cel::Context, budget: &mut i64, size: usize) -> String {
    if let Some(c) = r["messageExpression"].as_str().and_then(compiled) {
        let cost = cost(size, c.loops);
        if cost <= *budget {
            *budget -= cost;
            if let Ok(cel::Value::String(s)) = c.program.execute(ctx) {
                return s.to_string();
            }
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
        check(
            &schema,
            &json!({"minReplicas": 3, "replicas": 2, "name": "ok"}),
            None,
            "spec",
            &mut out,
            &mut COST_BUDGET.clone(),
        );
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
            &mut COST_BUDGET.clone(),
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

    /// kube's root rules see of the metadata only the name and generateName.
    #[test]
    fn a_root_rule_sees_only_the_name_of_the_metadata() {
        let schema = json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "!has(self.metadata.uid)", "message": "uid seen"},
            {"rule": "self.metadata.name == 'x'", "message": "name not seen"}]});
        let obj = json!({"metadata": {"name": "x", "uid": "u-1", "labels": {"a": "b"}}, "spec": {}});
        let causes = crate::store::crd::structural::validate(&schema, &obj, None);
        assert!(causes.is_empty(), "{causes:?}");
    }

    #[test]
    fn a_rule_names_oldself_as_a_variable_to_be_a_transition_rule() {
        let schema = json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.oldSelfTest != 'bad'"}]});
        let mut out = Vec::new();
        check(&schema, &json!({"oldSelfTest": "bad"}), None, "spec", &mut out, &mut COST_BUDGET.clone());
        assert_eq!(out.len(), 1, "checked on create: {out:?}");
    }

    /// kube's runtime cost budget, bounded before the work: a rule nesting comprehensions over
    /// a long list is refused at once, with kube's error, and no rule runs after it.
    #[test]
    fn rules_are_paid_from_the_objects_cost_budget() {
        let depth = |r: &str| compiled(r).unwrap().loops;
        assert_eq!(depth("self.a == 1"), 1, "a comparison of a part of self: linear at most");
        assert_eq!(depth("1 + 2 == 3"), 0);
        assert_eq!(depth("self.all(x, x > 0) && self.exists(y, y == 1)"), 1);
        assert_eq!(depth("self.all(x, self.exists_one(y, y == x))"), 2);
        assert_eq!(depth("self.map(x, self.filter(y, self.all(z, z == y)))"), 3);
        // a whole-value operator on self inside a loop is a loop of its own
        assert_eq!(depth("oldSelf.all(x, x in self)"), 2);
        assert_eq!(depth("self.all(x, self == oldSelf)"), 2);
        assert_eq!(depth("self.all(x, x.name == 'a' && x in ['a', 'b'])"), 1);
        assert_eq!(depth("self.spec == oldSelf.spec"), 1);
        let schema = json!({"type": "array", "x-kubernetes-validations": [
            {"rule": "self.all(x, self.exists_one(y, y == x))"}, {"rule": "size(self) < 0"}]});
        let long = json!((0..6000).collect::<Vec<_>>());
        let (mut out, mut budget) = (Vec::new(), COST_BUDGET);
        let started = std::time::Instant::now();
        check(&schema, &long, None, "spec.items", &mut out, &mut budget);
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "refused before it ran");
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].message, format!("Invalid value: \"array\": {OUT_OF_BUDGET}"));
        assert!(budget < 0);
        // membership in self inside a loop over oldSelf: n² as well
        let append_only = json!({"type": "array", "x-kubernetes-validations": [{"rule": "oldSelf.all(x, x in self)"}]});
        let long = json!((0..20_000).collect::<Vec<_>>());
        let (mut out, mut budget) = (Vec::new(), COST_BUDGET);
        check(&append_only, &long, Some(&long), "spec.items", &mut out, &mut budget);
        assert!(out.len() == 1 && out[0].message.ends_with(OUT_OF_BUDGET), "{out:?}");
        // within the budget both run (the second fails)
        let (mut out, mut budget) = (Vec::new(), COST_BUDGET);
        check(&schema, &json!((0..100).collect::<Vec<_>>()), None, "spec.items", &mut out, &mut budget);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].message.ends_with("failed rule: size(self) < 0"), "{out:?}");
    }
}
