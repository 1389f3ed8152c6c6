//! The query parameters of metav1 ListOptions, GetOptions, CreateOptions, UpdateOptions,
//! PatchOptions and DeleteOptions that the store honours.

use crate::api::Status;

#[derive(Debug, Clone, Default)]
pub struct Query {
    pub label_selector: String,
    pub field_selector: String,
    pub limit: Option<usize>,
    pub continue_: String,
    pub resource_version: String,
    pub resource_version_match: String,
    pub watch: bool,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout_seconds: Option<u64>,
    pub dry_run: bool,
    pub field_manager: String,
    pub force: bool,
    pub include_object: Option<String>,
    pub propagation_policy: String,
}

fn parse_bool(k: &str, v: &str) -> Result<bool, Status> {
    match v {
        "" | "true" | "1" | "True" | "TRUE" | "t" | "T" => Ok(true),
        "false" | "0" | "False" | "FALSE" | "f" | "F" => Ok(false),
        _ => Err(Status::bad_request(format!("invalid value for {k}: {v:?}"))),
    }
}

impl Query {
    pub fn parse(q: &str) -> Result<Self, Status> {
        let mut out = Query::default();
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "labelSelector" => out.label_selector = v,
                "fieldSelector" => out.field_selector = v,
                "limit" if !v.is_empty() => {
                    let n: i64 = v.parse().map_err(|_| Status::bad_request(format!("invalid limit: {v:?}")))?;
                    out.limit = (n > 0).then_some(n as usize);
                }
                "continue" => out.continue_ = v,
                "resourceVersion" => out.resource_version = v,
                "resourceVersionMatch" => out.resource_version_match = v,
                "watch" => out.watch = parse_bool("watch", &v)?,
                "allowWatchBookmarks" => out.allow_watch_bookmarks = parse_bool("allowWatchBookmarks", &v)?,
                "sendInitialEvents" => out.send_initial_events = parse_bool("sendInitialEvents", &v)?,
                "timeoutSeconds" if !v.is_empty() => {
                    out.timeout_seconds =
                        Some(v.parse().map_err(|_| Status::bad_request(format!("invalid timeoutSeconds: {v:?}")))?)
                }
                "dryRun" => {
                    if v != "All" {
                        return Err(Status::bad_request(format!(
                            "Invalid dry run value: {v:?}; valid values are: All"
                        )));
                    }
                    out.dry_run = true;
                }
                "fieldManager" => out.field_manager = v,
                "force" => out.force = parse_bool("force", &v)?,
                "includeObject" => out.include_object = Some(v),
                "propagationPolicy" => out.propagation_policy = v,
                _ => {}
            }
        }
        Ok(out)
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

    #[test]
    fn parses_options() {
        let q = Query::parse("labelSelector=app%3Dx&limit=5&watch=1&dryRun=All&timeoutSeconds=3").unwrap();
        assert_eq!(
            (q.label_selector.as_str(), q.limit, q.watch, q.dry_run, q.timeout_seconds),
            ("app=x", Some(5), true, true, Some(3))
        );
        assert_eq!(Query::parse("dryRun=Some").unwrap_err().code, 400);
        assert_eq!(parse_rv("12").unwrap(), Some(12));
        assert!(parse_rv("x").is_err());
    }
}
