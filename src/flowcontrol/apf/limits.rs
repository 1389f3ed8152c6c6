//! Seats per priority level, as kube's config-consuming controller computes them
//! (apf_controller.go `finishQueueSetReconfigsLocked`, `updateBorrowingLocked`, and
//! conc_alloc.go `computeConcurrencyAllocation`).
//!
//! Nominal seats are `ceil(ServerCL × NCS / ΣNCS)` (the exempt level's shares count too);
//! lendable `round(nominal × lendablePercent / 100)`; the lower limit is nominal minus
//! lendable, the upper nominal plus `round(nominal × borrowingLimitPercent / 100)`, or plus the
//! server's seats when unset. Every borrowing period each level's seat demand is summarised
//! (high watermark, smoothed average + deviation) and the sum of the nominal seats is
//! re-divided: each level gets at least `max(lower, min(nominal, high watermark))`, at most its
//! upper limit, and otherwise seats in one common proportion to its smoothed demand.

use super::integrator::DemandStats;
use super::level::Limits;

/// One level's configuration for the computation.
#[derive(Debug, Clone, Copy)]
pub struct Shares {
    pub shares: u32,
    pub lendable_percent: u32,
    pub borrowing_limit_percent: Option<u32>,
}

/// kube's nominal, lower and upper seats for each level, from the server's seats.
pub fn bounds(server: u32, levels: &[Shares]) -> Vec<Limits> {
    let sum: f64 = levels.iter().map(|l| l.shares as f64).sum();
    levels
        .iter()
        .map(|l| {
            let nominal = if sum > 0.0 { (server as f64 * l.shares as f64 / sum).ceil() as u32 } else { 0 };
            let lendable = (nominal as f64 * l.lendable_percent as f64 / 100.0).round() as u32;
            let borrowing = match l.borrowing_limit_percent {
                Some(p) => (nominal as f64 * p as f64 / 100.0).round() as u32,
                None => server,
            };
            // (kube computes in 64-bit ints; a borrowingLimitPercent up to int32's maximum
            // would wrap a u32 sum and freeze every level's limits)
            Limits { nominal, lower: nominal.saturating_sub(lendable), upper: nominal.saturating_add(borrowing) }
        })
        .collect()
}

/// One class of kube's allocation problem.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Item {
    pub lower: f64,
    pub upper: f64,
    pub target: f64,
}

/// kube's class for a level: never below what it needs of its nominal seats nor below its
/// lower limit; a target of its smoothed demand.
pub fn item(b: Limits, d: &DemandStats) -> Item {
    let min_current = (b.lower as f64).max((b.nominal as f64).min(d.high_watermark));
    Item { lower: min_current, upper: b.upper as f64, target: min_current.max(d.smoothed) }
}

const MIN_TARGET: f64 = 0.001;
const EPSILON: f64 = 0.0000001;

/// kube's `computeConcurrencyAllocation`: allocations summing to `required`, each within its
/// bounds and otherwise `fair_prop × target` for one common `fair_prop`; with that proportion.
pub fn allocate(required: u32, items: &[Item]) -> Result<(Vec<f64>, f64), String> {
    let required = required as f64;
    let (mut low_sum, mut high_sum, mut target_sum) = (0.0, 0.0, 0.0);
    let (mut lb_min, mut lb_max) = (f32::MAX as f64, f64::MIN);
    let (mut ub_min, mut ub_max) = (f32::MAX as f64, f64::MIN);
    // (target, lower / target, upper / target)
    let mut rel = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        if it.lower < 0.0 {
            return Err(format!("lower bound {i} is {} but negative lower bounds are not allowed", it.lower));
        }
        if it.target < it.lower {
            return Err(format!("target {i} is {}, which is below its lower bound of {}", it.target, it.lower));
        }
        if it.upper < it.lower {
            return Err(format!(
                "upper bound {i} is {} but should not be less than the lower bound {}",
                it.upper, it.lower
            ));
        }
        let target = it.target.max(MIN_TARGET);
        low_sum += it.lower;
        high_sum += it.upper;
        target_sum += target;
        let (lo, hi) = (it.lower / target, it.upper / target);
        lb_min = lb_min.min(lo);
        lb_max = lb_max.max(lo);
        ub_min = ub_min.min(hi);
        ub_max = ub_max.max(hi);
        rel.push((target, lo, hi));
    }
    if low_sum - required > EPSILON {
        return Err(format!("lower bounds sum to {low_sum}, which is higher than the required sum of {required}"));
    }
    if required - high_sum > EPSILON {
        return Err(format!("upper bounds sum to {high_sum}, which is lower than the required sum of {required}"));
    }
    if required == 0.0 {
        return Ok((vec![0.0; items.len()], 0.0));
    }
    if low_sum - required > -EPSILON {
        return Ok((items.iter().map(|i| i.lower).collect(), lb_min));
    }
    if required - high_sum > -EPSILON {
        return Ok((items.iter().map(|i| i.upper).collect(), ub_max));
    }
    let mut fair = required / target_sum;
    if lb_max <= fair && fair <= ub_min {
        return Ok((rel.iter().map(|r| r.0 * fair).collect(), fair));
    }
    // some bounds matter: walk the relative bounds upwards from the lowest
    let mut bounds: Vec<(f64, usize, bool)> =
        rel.iter().enumerate().flat_map(|(i, r)| [(r.1, i, true), (r.2, i, false)]).collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut sum_so_far = low_sum;
    fair = lb_min;
    let (mut sensitive, mut delta_sensitive) = (0.0, 0.0);
    let (mut classes, mut delta_classes) = (0i64, 0i64);
    let mut next = 0;
    while sum_so_far < required {
        let mut next_bound;
        loop {
            sensitive += delta_sensitive;
            classes += delta_classes;
            let Some(&(b, i, lower)) = bounds.get(next) else {
                return Err("impossible: ran out of bounds to consider in bound-constrained problem".into());
            };
            next_bound = b;
            if lower {
                delta_classes = 1;
                delta_sensitive = rel[i].0;
            } else {
                delta_classes = -1;
                delta_sensitive = -rel[i].0;
            }
            next += 1;
            if next_bound > fair {
                break;
            }
        }
        if classes == 0 {
            fair = next_bound;
            continue;
        }
        let next_prop = fair + (required - sum_so_far) / sensitive;
        if next_prop <= next_bound {
            fair = next_prop;
            break;
        }
        sum_so_far += (next_bound - fair) * sensitive;
        fair = next_bound;
    }
    let allocs = items.iter().zip(&rel).map(|(it, r)| it.lower.max(it.upper.min(fair * r.0))).collect();
    Ok((allocs, fair))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(shares: u32, lendable: u32) -> Shares {
        Shares { shares, lendable_percent: lendable, borrowing_limit_percent: None }
    }

    /// kube's bootstrap levels at the default 600 seats:
    /// exempt, catch-all, system, node-high, leader-election, workload-high, workload-low, global-default.
    fn kube_600() -> Vec<Limits> {
        bounds(600, &[s(0, 0), s(5, 0), s(30, 33), s(40, 25), s(10, 0), s(40, 50), s(100, 90), s(20, 50)])
    }

    #[test]
    fn kube_bootstrap_seats_for_600() {
        let b = kube_600();
        let nominal: Vec<u32> = b.iter().map(|l| l.nominal).collect();
        assert_eq!(nominal, vec![0, 13, 74, 98, 25, 98, 245, 49]);
        assert_eq!(b[6].lower, 24, "workload-low lends round(220.5) = 221");
        assert_eq!(b[1].lower, 13);
        assert_eq!(b[6].upper, 845, "nominal plus the server's seats when borrowingLimitPercent is unset");
        let capped = bounds(100, &[Shares { shares: 10, lendable_percent: 0, borrowing_limit_percent: Some(50) }]);
        assert_eq!(capped[0], Limits { nominal: 100, lower: 100, upper: 150 });
        // the largest borrowingLimitPercent kube takes: no wrap below the lower limit
        let huge = Shares { shares: 1000, lendable_percent: 0, borrowing_limit_percent: Some(i32::MAX as u32) };
        let b = bounds(600, &[huge, s(30, 0)]);
        assert_eq!((b[0].nominal, b[0].upper), (583, u32::MAX));
        assert!(b[0].upper >= b[0].lower);
    }

    fn demand(hw: f64, smoothed: f64) -> DemandStats {
        DemandStats { high_watermark: hw, smoothed, ..Default::default() }
    }

    fn round(v: &[f64]) -> Vec<u32> {
        v.iter().map(|x| x.round() as u32).collect()
    }

    #[test]
    fn borrowing_follows_demand_within_bounds() {
        let b = bounds(100, &[s(50, 50), s(50, 50)]);
        let sum = 100;
        let alloc = |d: [DemandStats; 2]| {
            let items: Vec<Item> = b.iter().zip(&d).map(|(b, d)| item(*b, d)).collect();
            allocate(sum, &items).unwrap()
        };
        // idle: every target is the lower limit (25), scaled up evenly to the sum
        assert_eq!(round(&alloc([demand(0.0, 0.0), demand(0.0, 0.0)]).0), vec![50, 50]);
        // one busy, one idle: the idle one keeps its lower limit, the busy one borrows the rest
        let (a, _) = alloc([demand(100.0, 100.0), demand(0.0, 0.0)]);
        assert_eq!(round(&a), vec![75, 25]);
        // both busy: each keeps its nominal seats (the high watermark floor)
        assert_eq!(round(&alloc([demand(100.0, 100.0), demand(100.0, 100.0)]).0), vec![50, 50]);
        // a little demand on one side: proportional to smoothed demand, floors respected
        let (a, fair) = alloc([demand(60.0, 60.0), demand(30.0, 30.0)]);
        assert_eq!(round(&a), vec![67, 33]);
        assert!((fair - 100.0 / 90.0).abs() < 1e-9, "{fair}");
    }

    #[test]
    fn kube_levels_lend_to_a_flooded_one() {
        let b = kube_600();
        let sum: u32 = b.iter().map(|l| l.nominal).sum();
        let mut d = vec![DemandStats::default(); b.len()];
        d[7] = demand(600.0, 600.0); // global-default flooded, everyone else idle
        let items: Vec<Item> = b.iter().zip(&d).map(|(b, d)| item(*b, d)).collect();
        let (a, _) = allocate(sum, &items).unwrap();
        let a = round(&a);
        assert_eq!(&a[..7], &[0, 13, 50, 73, 25, 49, 24], "everyone else down to its lower limit");
        assert_eq!(a[7], sum - (13 + 50 + 73 + 25 + 49 + 24), "global-default has the rest: 368 of 602");
        assert!(allocate(10, &[Item { lower: 20.0, upper: 30.0, target: 20.0 }]).is_err());
    }
}
