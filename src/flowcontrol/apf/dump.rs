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
    fn aligned_like_go_tabwriter() {
        let t =
            tabwrite(&[vec!["a".into(), "bb".into(), "c".into()], vec!["longer-name".into(), "1".into(), "2".into()]]);
        assert_eq!(t, "a,           bb,     c\nlonger-name, 1,      2\n");
    }
}
