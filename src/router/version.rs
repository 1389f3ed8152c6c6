//! Kubernetes version ordering (apimachinery's `version.CompareKubeAwareVersionStrings`):
//! GA before beta before alpha, then higher major, then higher minor; versions that do not
//! look like Kubernetes versions come after all that do, in reverse lexical order.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Track {
    Alpha,
    Beta,
    Ga,
}

fn parse(v: &str) -> Option<(u64, Track, u64)> {
    let rest = v.strip_prefix('v')?;
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    if digits == 0 || rest.starts_with('0') {
        return None;
    }
    let major: u64 = rest[..digits].parse().ok()?;
    let tail = &rest[digits..];
    if tail.is_empty() {
        return Some((major, Track::Ga, 0));
    }
    let (track, num) = if let Some(n) = tail.strip_prefix("alpha") {
        (Track::Alpha, n)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (Track::Beta, n)
    } else {
        return None;
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || num.starts_with('0') {
        return None;
    }
    Some((major, track, num.parse().ok()?))
}

/// `Greater` when `a` has the higher priority (sorts first).
pub fn compare(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    match (parse(a), parse(b)) {
        (None, None) => b.cmp(a),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some((am, at, an)), Some((bm, bt, bn))) => at.cmp(&bt).then(am.cmp(&bm)).then(an.cmp(&bn)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_order() {
        let mut v = vec![
            "v1alpha1",
            "foo1",
            "v1beta1",
            "v2",
            "v1",
            "v10",
            "v11alpha2",
            "v12alpha1",
            "v2beta1",
            "foo10",
            "v1beta2",
            "v3beta1",
        ];
        v.sort_by(|a, b| compare(b, a));
        assert_eq!(
            v,
            vec![
                "v10",
                "v2",
                "v1",
                "v3beta1",
                "v2beta1",
                "v1beta2",
                "v1beta1",
                "v12alpha1",
                "v11alpha2",
                "v1alpha1",
                "foo1",
                "foo10"
            ]
        );
    }

    #[test]
    fn not_kube_versions() {
        assert!(parse("v01").is_none());
        assert!(parse("v1beta").is_none());
        assert!(parse("v1gamma1").is_none());
        assert!(parse("1").is_none());
        assert_eq!(compare("v1", "v1"), Ordering::Equal);
    }
}
