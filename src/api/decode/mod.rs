//! Bounded decoding of request bodies, JSON and YAML alike. Every body a client sends is
//! decoded here, so none costs more than its size allows:
//!
//! - nesting is checked from the bytes before any parser runs (a linear scan), so a body
//!   nested 100,000 levels is refused at once: Go's encoding/json refuses past 10,000 as
//!   kube-apiserver does; our parsers recurse, so the bound is `MAX_DEPTH` (serde's own
//!   recursion limit is 128), in kube's words;
//! - a YAML document may have at most `MAX_YAML_NODES` tokens, counted by the same scan, and
//!   its aliases may not expand it past as many nodes (go-yaml's "excessive aliasing" guard
//!   against billion-laughs bodies): libyaml and serde_yaml cost up to ~350 ns a token, so a
//!   3 MiB body of tiny YAML tokens would take a second of CPU; with the bound no YAML body
//!   takes more than ~100 ms. kube has no such bound, but kubectl and client-go send JSON,
//!   which is not bounded this way;
//! - a body that parses as JSON is parsed as JSON even where YAML is accepted (JSON is YAML,
//!   and serde_json is many times faster than libyaml).

mod yaml_depth;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt;

/// The deepest nesting of objects and arrays a request body may have.
pub const MAX_DEPTH: usize = 100;

/// The tokens a YAML body may have, and the nodes its aliases may expand it to: about a 1 MiB
/// ConfigMap of short keys and values.
pub const MAX_YAML_NODES: usize = 200_000;

/// Refuses JSON nested deeper than `MAX_DEPTH`, as Go's scanner words it.
pub fn check_json_depth(b: &[u8]) -> Result<(), String> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &c in b {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!("invalid character '{}' exceeded max depth", c as char));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Refuses YAML nested deeper than `MAX_DEPTH` (go-yaml's text) or with more than
/// `MAX_YAML_NODES` tokens.
pub fn check_yaml_bounds(b: &[u8]) -> Result<(), String> {
    yaml_depth::check(b, MAX_DEPTH, MAX_YAML_NODES)
}

/// Decodes a JSON body.
pub fn json(b: &[u8]) -> Result<Value, String> {
    check_json_depth(b)?;
    serde_json::from_slice(b).map_err(|e| e.to_string())
}

/// Whether the body is JSON by its first non-blank byte.
fn looks_like_json(b: &[u8]) -> bool {
    matches!(b.iter().find(|c| !c.is_ascii_whitespace()), Some(b'{' | b'['))
}

/// Decodes a YAML (or JSON) body: one document.
pub fn yaml(b: &[u8]) -> Result<Value, String> {
    if looks_like_json(b) {
        if let Ok(v) = json(b) {
            return Ok(v);
        }
    }
    check_yaml_bounds(b)?;
    let budget = Cell::new(MAX_YAML_NODES);
    let de = serde_yaml::Deserializer::from_slice(b);
    Bounded { budget: &budget }.deserialize(de).map_err(|e| {
        // serde_yaml adds where it stopped; go-yaml's text has no place
        let e = e.to_string();
        if e.contains(EXCESSIVE_ALIASING) {
            EXCESSIVE_ALIASING.to_string()
        } else {
            e
        }
    })
}

const EXCESSIVE_ALIASING: &str = "yaml: document contains excessive aliasing";

/// A serde_json::Value built from any deserializer, failing once more than `budget` nodes
/// were made (aliases replay their anchor's nodes through it, so their expansion counts).
#[derive(Clone, Copy)]
struct Bounded<'a> {
    budget: &'a Cell<usize>,
}

impl Bounded<'_> {
    fn spend<E: serde::de::Error>(&self) -> Result<(), E> {
        match self.budget.get() {
            0 => Err(E::custom(EXCESSIVE_ALIASING)),
            n => {
                self.budget.set(n - 1);
                Ok(())
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.spend()?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Null)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.spend()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.spend()?;
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            self.spend()?;
            let v = map.next_value_seed(self)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// How deeply `v` nests objects and arrays (a scalar is 0), without recursing: what a patch
/// made of a stored object is held to the same bound as a body.
pub fn value_depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, d + 1))),
            Value::Object(m) => stack.extend(m.values().map(|c| (c, d + 1))),
            _ => continue,
        }
        max = max.max(d + 1);
    }
    max
}

/// Where kube's create and update handlers name the body they could not decode
/// (transformDecodeError): the kind expected, the error, and the body's first 30 bytes.
pub fn unrecognized(kind: &str, err: &str, body: &[u8]) -> String {
    const MAX: usize = 30;
    let head = &body[..body.len().min(MAX)];
    let more = if body.len() > MAX { " ..." } else { "" };
    let summary = match body.first() {
        None => "<empty>".to_string(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(head)),
        Some(_) => format!("{}{more}", head.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    };
    format!("the object provided is unrecognized (must be of type {kind}): {err} ({summary})")
}

#[cfg(test)]
mod tests;
