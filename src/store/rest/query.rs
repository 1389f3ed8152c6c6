//! The query parameters of metav1 ListOptions, GetOptions, CreateOptions, UpdateOptions,
//! PatchOptions and DeleteOptions that the store honours.

use crate::api::{field, Status};
use crate::request_info::query::Query;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub label_selector: String,
    pub field_selector: String,
    pub limit: Option<usize>,
    pub continue_: String,
    pub resource_version: String,
    pub resource_version_match: String,
    pub allow_watch_bookmarks: bool,
    /// None when not given (kube's `*bool`: its presence alone has rules).
    pub send_initial_events: Option<bool>,
    /// Seconds a watch may run: None for the server's default (absent or 0), 0 to end at once
    /// (a negative value, as kube's timer fires at once).
    pub timeout_seconds: Option<u64>,
    /// Every `dryRun` value, as kube's options hold the list (checked by `validate_write`).
    pub dry_run_values: Vec<String>,
    pub field_manager: String,
    /// `fieldValidation` (Strict, Warn, Ignore; empty is kube's default, Warn).
    pub field_validation: String,
    pub force: bool,
    pub include_object: Option<String>,
    pub propagation_policy: String,
    /// The deprecated DeleteOptions.orphanDependents (wins over propagationPolicy).
    pub orphan_dependents: Option<bool>,
}

/// An integer option as kube's parameter codec reads it: `strconv.ParseInt` of the first value
/// (an empty value fails, as RequestInfo's decoding counts it).
fn int(q: &Query, key: &str) -> Result<Option<i64>, Status> {
    q.first(key).map(|v| v.parse::<i64>().map_err(|_| Status::bad_request(format!("invalid {key}: {v:?}")))).transpose()
}

impl Options {
    /// Decodes the options from the query the chain parsed, with kube's parameter codec rules:
    /// a scalar is its key's first value (the one RequestInfo and authorization read), a
    /// boolean never fails to decode, `dryRun` is a list (see `validate_write`).
    /// Whether a list is a watch is RequestInfo's verb, never decided here again.
    pub fn decode(q: &Query) -> Result<Self, Status> {
        let text = |key: &str| q.first(key).unwrap_or_default().to_string();
        let dry_run_values: Vec<String> = q.all("dryRun").map(str::to_string).collect();
        let timeout_seconds = match int(q, "timeoutSeconds")? {
            None | Some(0) => None,
            Some(n) => Some(u64::try_from(n).unwrap_or(0)),
        };
        Ok(Options {
            label_selector: text("labelSelector"),
            field_selector: text("fieldSelector"),
            limit: int(q, "limit")?.filter(|n| *n > 0).map(|n| n as usize),
            continue_: text("continue"),
            resource_version: text("resourceVersion"),
            resource_version_match: text("resourceVersionMatch"),
            allow_watch_bookmarks: q.flag("allowWatchBookmarks"),
            send_initial_events: q.first("sendInitialEvents").map(|_| q.flag("sendInitialEvents")),
            timeout_seconds,
            dry_run_values,
            field_manager: text("fieldManager"),
            field_validation: text("fieldValidation"),
            force: q.flag("force"),
            include_object: q.first("includeObject").map(str::to_string),
            propagation_policy: text("propagationPolicy"),
            orphan_dependents: q.first("orphanDependents").map(|_| q.flag("orphanDependents")),
        })
    }

    /// A dry run: `dryRun` was given (`validate_write` has checked each value is `All`).
    pub fn dry_run(&self) -> bool {
        !self.dry_run_values.is_empty()
    }

    /// kube's validation of a write's options (`ValidateCreateOptions` and its siblings): every
    /// `dryRun` value must be `All`, else a 422 on the verb's options kind.
    pub fn validate_write(&self, verb: &str) -> Result<(), Status> {
        let kind = match verb {
            "create" => "CreateOptions",
            "update" => "UpdateOptions",
            "patch" => "PatchOptions",
            "delete" | "deletecollection" => "DeleteOptions",
            _ => return Ok(()),
        };
        if matches!(verb, "create" | "update" | "patch")
            && !matches!(self.field_validation.as_str(), "" | "Ignore" | "Strict" | "Warn")
        {
            return Err(Status::invalid(
                "meta.k8s.io",
                kind,
                "",
                vec![field::not_supported(
                    "fieldValidation",
                    &field::quote(&self.field_validation),
                    &["", "Ignore", "Strict", "Warn"],
                )],
            ));
        }
        if self.dry_run_values.iter().all(|v| v == "All") {
            return Ok(());
        }
        let list: Vec<String> = self.dry_run_values.iter().map(|v| field::quote(v)).collect();
        Err(Status::invalid(
            "meta.k8s.io",
            kind,
            "",
            vec![field::not_supported("dryRun", &format!("[]string{{{}}}", list.join(", ")), &["All"])],
        ))
    }

    /// kube's `ValidateListOptions` (a list's or a watch's 422 on ListOptions), with the
    /// WatchList feature on (a watch may ask for its initial events).
    pub fn validate_list(&self, watch: bool) -> Result<(), Status> {
        let mut errs = Vec::new();
        let unsupported = |value: &str, supported: &[&str]| {
            field::not_supported("resourceVersionMatch", &field::quote(value), supported)
        };
        let rvm = self.resource_version_match.as_str();
        if watch {
            if self.send_initial_events.is_some() && rvm != "NotOlderThan" {
                errs.push(field::forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if !rvm.is_empty() {
                if self.send_initial_events.is_none() {
                    errs.push(field::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                    ));
                }
                if rvm != "NotOlderThan" {
                    errs.push(unsupported(rvm, &["NotOlderThan"]));
                }
                if !self.continue_.is_empty() {
                    errs.push(field::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden when continue is provided",
                    ));
                }
            }
        } else {
            if !rvm.is_empty() {
                if self.resource_version.is_empty() {
                    errs.push(field::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    ));
                }
                if !self.continue_.is_empty() {
                    errs.push(field::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden when continue is provided",
                    ));
                }
                if rvm != "Exact" && rvm != "NotOlderThan" {
                    errs.push(unsupported(rvm, &["Exact", "NotOlderThan", ""]));
                }
                if rvm == "Exact" && self.resource_version == "0" {
                    errs.push(field::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                    ));
                }
            }
            if self.send_initial_events.is_some() {
                errs.push(field::forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(Status::invalid("meta.k8s.io", "ListOptions", "", errs))
        }
    }

    /// kube's `ValidateDeleteOptions` of the propagation policy (a delete's 422).
    pub fn validate_delete(&self) -> Result<(), Status> {
        if self.orphan_dependents.is_some() && !self.propagation_policy.is_empty() {
            return Err(Status::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                vec![field::invalid(
                    "propagationPolicy",
                    &field::quote(&self.propagation_policy),
                    "orphanDependents and deletionPropagation cannot be both set",
                )],
            ));
        }
        match self.propagation_policy.as_str() {
            "" | "Foreground" | "Background" | "Orphan" => Ok(()),
            other => Err(Status::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                vec![field::not_supported(
                    "propagationPolicy",
                    &field::quote(other),
                    &["Foreground", "Background", "Orphan"],
                )],
            )),
        }
    }

    /// The resourceVersion as a revision: None for "" and "0" (any / latest).
    pub fn revision(&self) -> Result<Option<u64>, Status> {
        parse_rv(&self.resource_version)
    }
}

pub fn parse_rv(rv: &str) -> Result<Option<u64>, Status> {
    match rv {
        "" | "0" => Ok(None),
        s => s.parse::<u64>().map(Some).map_err(|_| Status::bad_request(format!("invalid resource version: {s}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(q: &str) -> Result<Options, Status> {
        Options::decode(&Query::parse(q))
    }

    #[test]
    fn parses_options() {
        let q = decode("labelSelector=app%3Dx&limit=5&dryRun=All&timeoutSeconds=3").unwrap();
        assert_eq!(
            (q.label_selector.as_str(), q.limit, q.dry_run(), q.timeout_seconds),
            ("app=x", Some(5), true, Some(3))
        );
        let s = decode("dryRun=Some").unwrap().validate_write("create").unwrap_err();
        assert_eq!(s.code, 422);
        assert_eq!(
            s.message,
            r#"CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Some"}: supported values: "All""#
        );
        assert!(decode("dryRun=Some").unwrap().validate_write("get").is_ok(), "reads take no dryRun");
        assert_eq!(parse_rv("12").unwrap(), Some(12));
        assert!(parse_rv("x").is_err());
    }

    /// Repeated parameters: a scalar is the first value (what RequestInfo and the authorizer
    /// read), `dryRun` every value.
    #[test]
    fn repeated_parameters_take_the_first_value() {
        let q = decode(
            "fieldSelector=metadata.name%3Da&fieldSelector=&labelSelector=x%3D1&labelSelector=&limit=2&limit=9\
             &continue=c1&continue=&resourceVersion=5&resourceVersion=0&timeoutSeconds=7&timeoutSeconds=1\
             &fieldManager=m1&fieldManager=m2&propagationPolicy=Orphan&propagationPolicy=Foreground\
             &force=false&force=true&allowWatchBookmarks=0&allowWatchBookmarks=1",
        )
        .unwrap();
        assert_eq!(q.field_selector, "metadata.name=a");
        assert_eq!(q.label_selector, "x=1");
        assert_eq!(q.limit, Some(2));
        assert_eq!((q.continue_.as_str(), q.resource_version.as_str()), ("c1", "5"));
        assert_eq!(q.timeout_seconds, Some(7));
        assert_eq!((q.field_manager.as_str(), q.propagation_policy.as_str()), ("m1", "Orphan"));
        assert!(!q.force && !q.allow_watch_bookmarks);
        // an empty first value is a value: it does not fall through to the second
        assert_eq!(decode("fieldSelector=&fieldSelector=metadata.name%3Da").unwrap().field_selector, "");
        assert_eq!(decode("limit=&limit=5").unwrap_err().code, 400);
        // dryRun is a list: all values must be All
        let ok = decode("dryRun=All&dryRun=All").unwrap();
        assert!(ok.dry_run() && ok.validate_write("patch").is_ok());
        let s = decode("dryRun=All&dryRun=").unwrap().validate_write("update").unwrap_err();
        assert_eq!((s.code, s.details.as_ref().unwrap().kind.as_str()), (422, "UpdateOptions"));
        assert!(s.message.ends_with(r#"[]string{"All", ""}: supported values: "All""#), "{}", s.message);
        assert_eq!(decode("dryRun=&dryRun=All").unwrap().validate_write("delete").unwrap_err().code, 422);
        // booleans as kube's codec: anything but 0/false is true; timeouts 0 = default, <0 = at once
        assert!(decode("force=garbage").unwrap().force);
        assert_eq!(decode("timeoutSeconds=0").unwrap().timeout_seconds, None);
        assert_eq!(decode("timeoutSeconds=-5").unwrap().timeout_seconds, Some(0));
        assert!(decode("propagationPolicy=Orphan&propagationPolicy=Bogus").unwrap().validate_delete().is_ok());
        let s = decode("propagationPolicy=Bogus&propagationPolicy=Orphan").unwrap().validate_delete().unwrap_err();
        assert_eq!(s.code, 422);
        assert_eq!(
            s.message,
            r#"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Bogus": supported values: "Foreground", "Background", "Orphan""#
        );
    }
}
