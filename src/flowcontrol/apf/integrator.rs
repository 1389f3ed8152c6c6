//! kube's seat-demand integrator (fairqueuing/integrator.go) and the smoothed demand the
//! borrowing computation reads (apf_controller.go `seatDemandStats`).

use std::time::Instant;

/// The time integral of a piecewise-constant value since the last reset.
#[derive(Debug, Clone)]
pub struct Integrator {
    last: Instant,
    x: f64,
    elapsed: f64,
    integral_x: f64,
    integral_xx: f64,
    max: f64,
}

/// What one period of the integral says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Results {
    pub duration: f64,
    pub average: f64,
    /// NaN when the period was empty (as kube's).
    pub deviation: f64,
    pub max: f64,
}

impl Integrator {
    pub fn new(now: Instant) -> Self {
        Integrator { last: now, x: 0.0, elapsed: 0.0, integral_x: 0.0, integral_xx: 0.0, max: 0.0 }
    }

    fn update(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.elapsed += dt;
        self.integral_x += dt * self.x;
        self.integral_xx += dt * self.x * self.x;
    }

    /// The value changes to `x` at `now`.
    pub fn set(&mut self, now: Instant, x: f64) {
        self.update(now);
        self.x = x;
        self.max = self.max.max(x);
    }

    /// The period's results; the next period starts at the current value.
    pub fn reset(&mut self, now: Instant) -> Results {
        self.update(now);
        let (average, deviation) = if self.elapsed <= 0.0 {
            (f64::NAN, f64::NAN)
        } else {
            let avg = self.integral_x / self.elapsed;
            let variance = self.integral_xx / self.elapsed - avg * avg;
            (avg, if variance >= 0.0 { variance.sqrt() } else { f64::NAN })
        };
        let r = Results { duration: self.elapsed, average, deviation, max: self.max };
        self.elapsed = 0.0;
        self.integral_x = 0.0;
        self.integral_xx = 0.0;
        self.max = self.x;
        r
    }
}

/// kube's `seatDemandSmoothingCoefficient`: a half-life of 5 minutes at one update per 10 s.
const SMOOTHING: f64 = 0.977;

/// A level's seat demand as borrowing reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DemandStats {
    pub avg: f64,
    pub std_dev: f64,
    pub high_watermark: f64,
    pub smoothed: f64,
}

impl DemandStats {
    /// kube's `seatDemandStats.update`: smoothed follows `avg + stdDev` up at once and down slowly.
    pub fn update(&mut self, obs: Results) {
        self.high_watermark = obs.max;
        if obs.duration <= 0.0 {
            return;
        }
        let deviation = if obs.deviation.is_nan() { 0.0 } else { obs.deviation };
        self.avg = obs.average;
        self.std_dev = deviation;
        let envelope = obs.average + deviation;
        self.smoothed = envelope.max(SMOOTHING * self.smoothed + (1.0 - SMOOTHING) * envelope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn average_deviation_and_watermark() {
        let t0 = Instant::now();
        let mut i = Integrator::new(t0);
        i.set(t0, 2.0);
        i.set(t0 + Duration::from_secs(1), 6.0);
        let r = i.reset(t0 + Duration::from_secs(2));
        assert_eq!((r.duration, r.average, r.deviation, r.max), (2.0, 4.0, 2.0, 6.0));
        // the next period starts at the current value: its watermark is 6, not 0
        let r = i.reset(t0 + Duration::from_secs(3));
        assert_eq!((r.average, r.deviation, r.max), (6.0, 0.0, 6.0));

        let mut s = DemandStats::default();
        s.update(Results { duration: 10.0, average: 4.0, deviation: 2.0, max: 9.0 });
        assert_eq!(s.smoothed, 6.0, "up at once");
        s.update(Results { duration: 10.0, average: 0.0, deviation: f64::NAN, max: 0.0 });
        assert!((s.smoothed - 6.0 * SMOOTHING).abs() < 1e-9, "down slowly: {}", s.smoothed);
        assert_eq!(s.high_watermark, 0.0);
    }
}
