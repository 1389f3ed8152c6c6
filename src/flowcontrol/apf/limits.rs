//! Seats per priority level. Nominal seats are kube's: `ceil(ServerCL * NCS / sum NCS)`,
//! lendable `round(nominal * lendablePercent / 100)`, lower limit nominal minus lendable,
//! upper limit nominal plus `round(nominal * borrowingLimitPercent / 100)` (the server's
//! seats when unset).
//!
//! Borrowing, simplified from kube's periodic fair allocation: once a second each level's
//! seat demand (its peak of seats executing plus waiting) is read; a level keeps what it needs
//! up to its nominal seats (never less than its lower limit), and the seats left over go to
//! the levels that need more than their nominal, in proportion to their excess, up to their
//! upper limits. Seats nobody needs return to their owners' nominal share.

use super::level::Limits;

/// One limited level's configuration for the computation.
#[derive(Debug, Clone, Copy)]
pub struct Shares {
    pub shares: u32,
    pub lendable_percent: u32,
    pub borrowing_limit_percent: Option<u32>,
}

/// kube's nominal, lower and upper seats for each level, from the server's seats.
pub fn bounds(server: u32, levels: &[Shares]) -> Vec<Limits> {
    let sum: u64 = levels.iter().map(|l| l.shares as u64).sum::<u64>().max(1);
    levels
        .iter()
        .map(|l| {
            let nominal = (server as u64 * l.shares as u64).div_ceil(sum) as u32;
            let lendable = (nominal as f64 * l.lendable_percent as f64 / 100.0).round() as u32;
            let upper = match l.borrowing_limit_percent {
                Some(p) => nominal + (nominal as f64 * p as f64 / 100.0).round() as u32,
                None => server.max(nominal),
            };
            Limits { nominal, lower: nominal - lendable, upper }
        })
        .collect()
}

/// The current seats of each level from its bounds and its recent demand.
pub fn allocate(server: u32, bounds: &[Limits], demand: &[u32]) -> Vec<u32> {
    let own: Vec<u32> = bounds.iter().zip(demand).map(|(b, &d)| d.min(b.nominal).max(b.lower)).collect();
    let want: Vec<u32> =
        bounds.iter().zip(demand).zip(&own).map(|((b, &d), &o)| d.min(b.upper).saturating_sub(o)).collect();
    let spare = server.saturating_sub(own.iter().sum());
    let wanted: u32 = want.iter().sum();
    let mut out: Vec<u32> = own
        .iter()
        .zip(&want)
        .map(|(&o, &w)| o + if wanted <= spare { w } else { (w as u64 * spare as u64 / wanted as u64) as u32 })
        .collect();
    // what is still free returns to the levels below their nominal seats, ready for a burst
    let mut free = server.saturating_sub(out.iter().sum());
    for (o, b) in out.iter_mut().zip(bounds) {
        let give = b.nominal.saturating_sub(*o).min(free);
        *o += give;
        free -= give;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(shares: u32, lendable: u32) -> Shares {
        Shares { shares, lendable_percent: lendable, borrowing_limit_percent: None }
    }

    #[test]
    fn kube_bootstrap_nominal_seats_for_600() {
        // exempt, catch-all, system, node-high, leader-election, workload-high, workload-low, global-default
        let levels = [s(0, 0), s(5, 0), s(30, 33), s(40, 25), s(10, 0), s(40, 50), s(100, 90), s(20, 50)];
        let b = bounds(600, &levels);
        let nominal: Vec<u32> = b.iter().map(|l| l.nominal).collect();
        assert_eq!(nominal, vec![0, 13, 74, 98, 25, 98, 245, 49]);
        assert_eq!(b[6].lower, 24, "workload-low lends round(220.5) = 221");
        assert_eq!(b[1].lower, 13);
        assert_eq!(b[6].upper, 600);
        let capped = bounds(100, &[Shares { shares: 10, lendable_percent: 0, borrowing_limit_percent: Some(50) }]);
        assert_eq!(capped[0], Limits { nominal: 100, lower: 100, upper: 150 });
    }

    #[test]
    fn idle_levels_lend_to_busy_ones() {
        let b = bounds(100, &[s(50, 50), s(50, 50)]);
        assert_eq!(allocate(100, &b, &[0, 0]), vec![50, 50], "idle: nominal");
        assert_eq!(allocate(100, &b, &[100, 0]), vec![75, 25], "the busy one borrows the lendable half");
        assert_eq!(allocate(100, &b, &[100, 100]), vec![50, 50], "both busy: nominal");
        assert_eq!(allocate(100, &b, &[60, 10]), vec![60, 40]);
    }
}
