//! Content negotiation of a response, as kube's (apimachinery's negotiation with goautoneg):
//! the Accept header's media ranges by quality, then order; the first the resource can be
//! served as wins (`*/*` and an absent Accept mean JSON). Protobuf is offered for the built-in
//! kinds the store's protobuf tables know; YAML for objects and lists, not watches. Nothing
//! acceptable is kube's 406.

use crate::api::Status;

/// How a response is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    #[default]
    Json,
    Yaml,
    Protobuf,
}

pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// The output for `accept`; `protobuf`: the kind has a protobuf form; `watch`: a stream
/// (no YAML).
pub fn negotiate(accept: &str, protobuf: bool, watch: bool) -> Result<Output, Status> {
    if accept.trim().is_empty() {
        return Ok(Output::Json);
    }
    let mut offered = vec![("application", "json", Output::Json)];
    if !watch {
        offered.push(("application", "yaml", Output::Yaml));
    }
    if protobuf {
        offered.push(("application", "vnd.kubernetes.protobuf", Output::Protobuf));
    }
    // (quality, position, type, subtype); a quality of 0 refuses
    let mut ranges: Vec<(f32, usize, String, String)> = Vec::new();
    for (i, clause) in accept.split(',').enumerate() {
        let mut parts = clause.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        for p in parts {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        let Some((ty, sub)) = media.split_once('/') else { continue };
        if q > 0.0 {
            ranges.push((q, i, ty.to_string(), sub.to_string()));
        }
    }
    ranges.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1)));
    for (_, _, ty, sub) in &ranges {
        for (oty, osub, out) in &offered {
            if (ty == "*" || ty == oty) && (sub == "*" || sub == osub) {
                return Ok(*out);
            }
        }
    }
    let types: Vec<String> = offered.iter().map(|(t, s, _)| format!("{t}/{s}")).collect();
    Err(Status::failure(
        406,
        "NotAcceptable",
        format!("only the following media types are accepted: {}", types.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_kube_negotiates() {
        assert_eq!(negotiate("", true, false).unwrap(), Output::Json);
        assert_eq!(negotiate("application/vnd.kubernetes.protobuf, */*", true, false).unwrap(), Output::Protobuf);
        assert_eq!(negotiate("application/vnd.kubernetes.protobuf, */*", false, false).unwrap(), Output::Json);
        assert_eq!(
            negotiate("application/vnd.kubernetes.protobuf;q=0.5, application/json", true, true).unwrap(),
            Output::Json
        );
        assert_eq!(negotiate("application/yaml", true, false).unwrap(), Output::Yaml);
        assert_eq!(negotiate("*/*", true, false).unwrap(), Output::Json);
        let s = negotiate("application/vnd.kubernetes.protobuf", false, false).unwrap_err();
        assert_eq!((s.code, s.reason.as_str()), (406, "NotAcceptable"));
        assert_eq!(s.message, "only the following media types are accepted: application/json, application/yaml");
        assert_eq!(negotiate("application/yaml", true, true).unwrap_err().code, 406);
        assert_eq!(negotiate("text/html", true, false).unwrap_err().code, 406);
    }
}
