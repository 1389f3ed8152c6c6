//! kube's timing ratio histograms (component-base `TimingRatioHistogram`): a ratio (seats in
//! use over the limit, say) observed at the end of every nanosecond, so a bucket counts the
//! nanoseconds the ratio spent at or below its bound and the sum is the ratio's integral over
//! time in nanoseconds. The ratio changes only when the level's counts do (`set`); a scrape
//! first accounts the time since the last change.

use prometheus::core::{Collector, Desc};
use prometheus::proto;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One family: its name, help, label names (a constant label apart) and buckets.
pub struct TimingRatioVec {
    desc: Desc,
    name: String,
    help: String,
    labels: Vec<String>,
    constant: Option<(String, String)>,
    buckets: Vec<f64>,
    series: Mutex<BTreeMap<Vec<String>, TimingRatio>>,
}

/// One series; a cheap clone.
#[derive(Clone)]
pub struct TimingRatio(Arc<Mutex<State>>);

struct State {
    numerator: f64,
    denominator: f64,
    since: Instant,
    /// Nanoseconds spent at or below each bound (not cumulative), and in all.
    counts: Vec<u64>,
    total: u64,
    sum: f64,
}

impl State {
    fn ratio(&self) -> f64 {
        if self.denominator == 0.0 {
            0.0
        } else {
            self.numerator / self.denominator
        }
    }

    /// Accounts the time since the last change at the current ratio.
    fn advance(&mut self, bounds: &[f64], now: Instant) {
        let ns = now.saturating_duration_since(self.since).as_nanos() as u64;
        self.since = now;
        if ns == 0 {
            return;
        }
        let r = self.ratio();
        if let Some(i) = bounds.iter().position(|b| r <= *b) {
            self.counts[i] += ns;
        }
        self.total += ns;
        self.sum += r * ns as f64;
    }
}

impl TimingRatioVec {
    pub fn new(name: &str, help: &str, labels: &[&str], constant: Option<(&str, &str)>, buckets: &[f64]) -> Self {
        let constant = constant.map(|(k, v)| (k.to_string(), v.to_string()));
        let const_labels = constant.iter().cloned().collect();
        let desc = Desc::new(name.into(), help.into(), labels.iter().map(|l| l.to_string()).collect(), const_labels)
            .expect("metric description");
        TimingRatioVec {
            desc,
            name: name.into(),
            help: help.into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            constant,
            buckets: buckets.to_vec(),
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// The series of `values`, created at ratio 0 over `denominator`.
    pub fn with(&self, values: &[&str], denominator: f64) -> TimingRatio {
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series
            .entry(key)
            .or_insert_with(|| {
                TimingRatio(Arc::new(Mutex::new(State {
                    numerator: 0.0,
                    denominator,
                    since: Instant::now(),
                    counts: vec![0; self.buckets.len()],
                    total: 0,
                    sum: 0.0,
                })))
            })
            .clone()
    }

    pub fn bounds(&self) -> &[f64] {
        &self.buckets
    }
}

impl TimingRatio {
    /// The ratio is now `numerator / denominator`.
    pub fn set(&self, bounds: &[f64], numerator: f64, denominator: f64) {
        self.set_at(bounds, Instant::now(), numerator, denominator)
    }

    /// The ratio is `numerator / denominator` from `now` on.
    pub fn set_at(&self, bounds: &[f64], now: Instant, numerator: f64, denominator: f64) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // the same ratio on: the next change (or scrape) accounts the whole time at it, the
        // same nanoseconds in the same bucket. A level's waiting ratio is unchanged by every
        // request that does not queue (two of a request's eight calls).
        if s.numerator == numerator && s.denominator == denominator {
            return;
        }
        s.advance(bounds, now);
        s.numerator = numerator;
        s.denominator = denominator;
    }
}

/// A family registered once for the life of the process.
pub struct Registered(pub &'static TimingRatioVec);

impl Collector for Registered {
    fn desc(&self) -> Vec<&Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        self.0.collect()
    }
}

/// Builds and registers a family.
pub fn register(
    name: &str,
    help: &str,
    labels: &[&str],
    constant: Option<(&str, &str)>,
    buckets: &[f64],
) -> &'static TimingRatioVec {
    let v: &'static TimingRatioVec = Box::leak(Box::new(TimingRatioVec::new(name, help, labels, constant, buckets)));
    prometheus::register(Box::new(Registered(v))).expect("metric");
    v
}

impl Collector for TimingRatioVec {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let now = Instant::now();
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut family = proto::MetricFamily::default();
        family.set_name(self.name.clone());
        family.set_help(self.help.clone());
        family.set_field_type(proto::MetricType::HISTOGRAM);
        for (values, ratio) in series.iter() {
            let mut s = ratio.0.lock().unwrap_or_else(|e| e.into_inner());
            s.advance(&self.buckets, now);
            let mut labels: Vec<proto::LabelPair> = self
                .labels
                .iter()
                .zip(values)
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain(self.constant.clone())
                .map(|(k, v)| {
                    let mut p = proto::LabelPair::default();
                    p.set_name(k);
                    p.set_value(v);
                    p
                })
                .collect();
            labels.sort_by(|a, b| a.get_name().cmp(b.get_name()));
            let mut h = proto::Histogram::default();
            let mut cumulative = 0;
            for (bound, n) in self.buckets.iter().zip(&s.counts) {
                cumulative += n;
                let mut b = proto::Bucket::default();
                b.set_upper_bound(*bound);
                b.set_cumulative_count(cumulative);
                h.mut_bucket().push(b);
            }
            h.set_sample_count(s.total);
            h.set_sample_sum(s.sum);
            let mut m = proto::Metric::default();
            m.set_label(labels.into());
            m.set_histogram(h);
            family.mut_metric().push(m);
        }
        vec![family]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_count_nanoseconds_at_each_ratio() {
        let v = TimingRatioVec::new("t_test", "help", &["priority_level"], Some(("phase", "executing")), &[0.5, 1.0]);
        let r = v.with(&["a"], 4.0);
        r.set(v.bounds(), 1.0, 4.0); // 0.25
        std::thread::sleep(Duration::from_millis(20));
        r.set(v.bounds(), 4.0, 4.0); // 1.0
        std::thread::sleep(Duration::from_millis(20));
        let fam = v.collect().remove(0);
        let m = &fam.get_metric()[0];
        let names: Vec<(&str, &str)> = m.get_label().iter().map(|l| (l.get_name(), l.get_value())).collect();
        assert_eq!(names, [("phase", "executing"), ("priority_level", "a")]);
        let h = m.get_histogram();
        let total = h.get_sample_count() as f64;
        let low = h.get_bucket()[0].get_cumulative_count() as f64;
        assert!(total >= 40e6, "{total} ns");
        assert!(low >= 20e6 && low < total, "{low} of {total} ns at 0.25");
        assert_eq!(h.get_bucket()[1].get_cumulative_count(), h.get_sample_count());
        // the integral: about 0.25 * 20 ms + 1.0 * 20 ms
        assert!(h.get_sample_sum() >= 0.25 * 20e6 + 20e6, "{}", h.get_sample_sum());
    }

    #[test]
    fn an_unchanged_ratio_is_accounted_at_its_next_change() {
        let v = TimingRatioVec::new("t_same", "help", &["priority_level"], None, &[0.0, 0.5, 1.0]);
        let r = v.with(&["a"], 4.0);
        let t0 = Instant::now();
        r.set_at(v.bounds(), t0, 1.0, 4.0);
        r.set_at(v.bounds(), t0 + Duration::from_millis(5), 1.0, 4.0);
        r.set_at(v.bounds(), t0 + Duration::from_millis(20), 4.0, 4.0);
        let s = r.0.lock().unwrap();
        assert_eq!(s.counts[1], 20_000_000, "all 20 ms at 0.25");
        assert_eq!(s.sum, 0.25 * 20e6);
        assert_eq!(s.since, t0 + Duration::from_millis(20));
    }
}
