//! kube's `/debug/api_priority_and_fairness/dump_*` text: rows of `,`-joined cells aligned as
//! Go's `tabwriter.NewWriter(w, 8, 0, 1, ' ', 0)` aligns them (kube joins cells with ",\t").

use super::level::Level;
use std::sync::Arc;

const PRIORITY_LEVELS: &[&str] = &[
    "PriorityLevelName",
    "ActiveQueues",
    "IsIdle",
    "IsQuiescing",
    "WaitingRequests",
    "ExecutingRequests",
    "DispatchedRequests",
    "RejectedRequests",
    "TimedoutRequests",
    "CancelledRequests",
];

const QUEUES: &[&str] = &[
    "PriorityLevelName",
    "Index",
    "PendingRequests",
    "ExecutingRequests",
    "SeatsInUse",
    "NextDispatchR",
    "InitialSeatsSum",
    "MaxSeatsSum",
    "TotalWorkSum",
];

const REQUESTS: &[&str] = &[
    "PriorityLevelName",
    "FlowSchemaName",
    "QueueIndex",
    "RequestIndexInQueue",
    "FlowDistingsher",
    "ArriveTime",
    "InitialSeats",
    "FinalSeats",
    "AdditionalLatency",
    "StartTime",
];

const REQUEST_DETAILS: &[&str] =
    &["UserName", "Verb", "APIPath", "Namespace", "Name", "APIVersion", "Resource", "SubResource"];

/// One row per request waiting or executing in a limited level (kube's spelling of
/// "FlowDistingsher" included): a waiting one has its queue and place, an executing one
/// index -1 (and queue -1 at a Reject level) and its start; with `details`, who and what.
pub fn requests(levels: &[Arc<Level>], details: bool) -> String {
    let mut header: Vec<String> = REQUESTS.iter().map(|s| s.to_string()).collect();
    if details {
        header.extend(REQUEST_DETAILS.iter().map(|s| s.to_string()));
    }
    let mut rows = vec![header];
    for l in levels {
        for r in l.dump_requests() {
            let q = &r.req;
            let mut row = vec![
                l.name.clone(),
                q.flow_schema.to_string(),
                r.queue.to_string(),
                r.index.to_string(),
                q.distinguisher.clone(),
                rfc3339_nano(Some(q.arrive)),
                r.seats.to_string(),
                q.fan_out.seats.to_string(),
                go_duration(q.fan_out.latency),
                rfc3339_nano(r.started),
            ];
            if details {
                let i = &q.info;
                let gv = if i.api_group().is_empty() {
                    i.api_version().to_string()
                } else {
                    format!("{}/{}", i.api_group(), i.api_version())
                };
                row.extend([
                    q.user.clone(),
                    i.verb().to_string(),
                    i.path().to_string(),
                    i.namespace().to_string(),
                    i.name().to_string(),
                    gv,
                    i.resource().to_string(),
                    i.subresource().to_string(),
                ]);
            }
            rows.push(row);
        }
    }
    tabwrite(&rows)
}

/// Go's `Duration.String()` below a minute: "0s", "5ms", "12.5ms", "41.666µs", "1.5s".
fn go_duration(d: std::time::Duration) -> String {
    let n = d.as_nanos();
    let (unit, scale) = match n {
        0 => return "0s".into(),
        1..=999 => return format!("{n}ns"),
        1_000..=999_999 => ("µs", 1_000),
        1_000_000..=999_999_999 => ("ms", 1_000_000),
        _ => ("s", 1_000_000_000),
    };
    let whole = n / scale;
    let frac = format!("{:0width$}", n % scale, width = scale.ilog10() as usize);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{whole}{unit}")
    } else {
        format!("{whole}.{frac}{unit}")
    }
}

/// Go's `time.RFC3339Nano` in UTC (trailing zeros of the fraction dropped); None is Go's zero
/// time, a waiting request's start.
fn rfc3339_nano(t: Option<std::time::SystemTime>) -> String {
    let Some(t) = t else { return "0001-01-01T00:00:00Z".into() };
    let t: chrono::DateTime<chrono::Utc> = t.into();
    let nanos = t.timestamp_subsec_nanos();
    let frac = if nanos == 0 { String::new() } else { format!(".{nanos:09}").trim_end_matches('0').to_string() };
    format!("{}{frac}Z", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// One row per priority level, sorted by name.
pub fn priority_levels(levels: &[Arc<Level>]) -> String {
    let mut rows = vec![PRIORITY_LEVELS.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for l in levels {
        let mut row = vec![l.name.clone()];
        row.extend(l.dump_row());
        rows.push(row);
    }
    tabwrite(&rows)
}

/// One row per queue of each level (one `<none>` row for a level without queues).
pub fn queues(levels: &[Arc<Level>]) -> String {
    let mut rows = vec![QUEUES.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for l in levels {
        for q in l.dump_queues() {
            let mut row = vec![l.name.clone()];
            row.extend(q);
            rows.push(row);
        }
    }
    tabwrite(&rows)
}

/// Cells `a,` `b,` ... `z`: every cell but a row's last is padded to its column's width plus
/// one, at least 8.
fn tabwrite(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate().take(r.len().saturating_sub(1)) {
            widths[i] = widths[i].max(c.chars().count() + 2);
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                out.push_str(c);
            } else {
                let cell = format!("{c},");
                let w = widths[i].max(8);
                out.push_str(&format!("{cell:<w$}"));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let d = std::time::Duration::from_nanos;
        assert_eq!(go_duration(d(0)), "0s");
        assert_eq!(go_duration(d(5_000_000)), "5ms");
        assert_eq!(go_duration(d(12_500_000)), "12.5ms");
        assert_eq!(go_duration(d(41_666_666)), "41.666666ms");
        assert_eq!(go_duration(d(1_500)), "1.5µs");
        assert_eq!(go_duration(d(1_500_000_000)), "1.5s");
    }

    #[test]
    fn go_rfc3339_nano() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(rfc3339_nano(Some(t)), "2023-11-14T22:13:20.12Z");
        assert_eq!(rfc3339_nano(Some(std::time::UNIX_EPOCH)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_nano(None), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn aligned_like_go_tabwriter() {
        let t =
            tabwrite(&[vec!["a".into(), "bb".into(), "c".into()], vec!["longer-name".into(), "1".into(), "2".into()]]);
        assert_eq!(t, "a,           bb,     c\nlonger-name, 1,      2\n");
    }
}
