//! Robust straight-line fit with a guaranteed error bound.
//!
//! Each point says: at guest counter `x`, host time was `y`, give or take `half_width` (the
//! most that point can be off, e.g. half an exchange's network round trip). The fit is
//! Theil-Sen (median of pairwise slopes, then median intercept), which shrugs off a minority of
//! bad points. The bound is exact under the model's one assumption, that the guest counter is
//! linear in host time over the fitted span: the fitted line minus the true line is itself a
//! line, at every point at most `|residual| + half_width` (+ the counter's quantisation),
//! so over the span between the first and last point it is at most the largest of those.

/// One observation of the guest counter against host time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    /// Guest ticks relative to the fit's reference tick.
    pub x: f64,
    /// Host ns relative to the fit's reference time.
    pub y: f64,
    /// Most this point's `y` can be off the true host time of `x` (ns).
    pub half_width: f64,
}

/// A fitted line `y = intercept + slope * x` and its error bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Fit {
    /// Host ns at `x = 0`.
    pub intercept: f64,
    /// Host ns per guest tick.
    pub slope: f64,
    /// Bound on |fitted - true| between `x_min` and `x_max` (ns).
    pub bound: f64,
    /// Smallest `x` fitted.
    pub x_min: f64,
    /// Largest `x` fitted.
    pub x_max: f64,
    /// Whether the slope was fitted (`false`: one distinct `x`, the nominal slope was used).
    pub slope_fitted: bool,
}

impl Fit {
    /// Bound on |fitted - true| at `x`: the span bound, growing linearly outside the span by the
    /// largest slope error the span's end bounds allow.
    pub fn bound_at(&self, x: f64) -> f64 {
        let outside = if x < self.x_min {
            self.x_min - x
        } else if x > self.x_max {
            x - self.x_max
        } else {
            0.0
        };
        if outside == 0.0 {
            return self.bound;
        }
        match self.slope_error() {
            Some(e) => self.bound + e * outside,
            None => f64::INFINITY,
        }
    }

    /// Largest possible slope error (ns per tick); `None` when no span constrains it.
    pub fn slope_error(&self) -> Option<f64> {
        let span = self.x_max - self.x_min;
        (self.slope_fitted && span > 0.0).then(|| 2.0 * self.bound / span)
    }
}

/// Median of a non-empty slice (reorders it).
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Fit a line through `points` (non-empty). With fewer than two distinct `x` the slope is
/// `nominal_slope`. `quantum_ns` is added to the bound for the counter's quantisation.
pub(crate) fn fit(points: &[Point], nominal_slope: f64, quantum_ns: f64) -> Fit {
    debug_assert!(!points.is_empty());
    let mut slopes = Vec::with_capacity(points.len() * points.len().saturating_sub(1) / 2);
    for (i, p) in points.iter().enumerate() {
        for q in &points[i + 1..] {
            if q.x != p.x {
                slopes.push((q.y - p.y) / (q.x - p.x));
            }
        }
    }
    let slope_fitted = !slopes.is_empty();
    let slope = if slope_fitted {
        median(&mut slopes)
    } else {
        nominal_slope
    };
    let mut intercepts: Vec<f64> = points.iter().map(|p| p.y - slope * p.x).collect();
    let intercept = median(&mut intercepts);
    let bound = points
        .iter()
        .map(|p| (p.y - intercept - slope * p.x).abs() + p.half_width)
        .fold(0.0, f64::max)
        + quantum_ns;
    let x_min = points.iter().map(|p| p.x).fold(f64::INFINITY, f64::min);
    let x_max = points.iter().map(|p| p.x).fold(f64::NEG_INFINITY, f64::max);
    Fit {
        intercept,
        slope,
        bound,
        x_min,
        x_max,
        slope_fitted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize, a: f64, b: f64) -> Vec<Point> {
        (0..n)
            .map(|i| Point {
                x: i as f64 * 10.0,
                y: a + b * i as f64 * 10.0,
                half_width: 1.0,
            })
            .collect()
    }

    #[test]
    fn exact_line_is_recovered() {
        let f = fit(&line(9, 5.0, 16.0), 16.0, 0.0);
        assert!((f.slope - 16.0).abs() < 1e-12 && (f.intercept - 5.0).abs() < 1e-9);
        assert_eq!(f.bound, 1.0);
        assert_eq!((f.x_min, f.x_max), (0.0, 80.0));
    }

    #[test]
    fn a_minority_of_wild_points_does_not_move_the_line() {
        let mut pts = line(11, 5.0, 16.0);
        pts[3].y += 1e6;
        pts[7].y -= 1e6;
        let f = fit(&pts, 1.0, 0.0);
        assert!((f.slope - 16.0).abs() < 1e-9, "{f:?}");
        // ...but the bound owns up to them.
        assert!(f.bound >= 1e6);
    }

    #[test]
    fn one_distinct_x_uses_the_nominal_slope() {
        let pts = [
            Point {
                x: 3.0,
                y: 100.0,
                half_width: 2.0,
            },
            Point {
                x: 3.0,
                y: 104.0,
                half_width: 2.0,
            },
        ];
        let f = fit(&pts, 16.0, 0.5);
        assert!(!f.slope_fitted && f.slope == 16.0);
        assert_eq!(f.intercept, 102.0 - 48.0);
        assert_eq!(f.bound, 4.5);
        assert_eq!(f.bound_at(10.0), f64::INFINITY);
    }

    #[test]
    fn bound_grows_outside_the_span() {
        let f = fit(&line(3, 0.0, 1.0), 1.0, 0.0);
        assert_eq!(f.bound_at(10.0), 1.0);
        // slope error 2*1/20 per tick, 20 ticks past the end
        assert!((f.bound_at(40.0) - 3.0).abs() < 1e-12);
    }
}
