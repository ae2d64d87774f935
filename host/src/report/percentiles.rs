//! The percentile distribution, drawn as HdrHistogram draws it: x is the percentile p on a log
//! scale of 1/(1-p), so 50, 90, 99, 99.9, ... are equally spaced and the tail gets as much room
//! as the body; y is the round-trip time at that percentile. One line per run. The values are
//! the statistics core's nearest-rank percentiles of every recorded round trip, so a marked
//! point is the figure the run reported.
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::plot::{color, err, legend, log_axis, log_range, us_label, Chart};
use crate::stats::Recorder;

/// The marked percentiles: axis label and quantile. The quantiles are the literals the run
/// summaries use, so a marked point and the reported figure are the same number.
pub const TICKS: [(&str, f64); 7] = [
    ("50", 0.5),
    ("90", 0.9),
    ("99", 0.99),
    ("99.9", 0.999),
    ("99.99", 0.9999),
    ("99.999", 0.99999),
    ("99.9999", 0.999999),
];

/// Points per line between p = 0 and its last resolvable percentile.
const STEPS: usize = 400;

/// The x position of quantile `q` in [0, 1): log10(1/(1-q)), the number of nines.
pub fn x_of(q: f64) -> f64 {
    -(1.0 - q).log10()
}

/// The quantile at x position `x` (inverse of [`x_of`]).
pub fn q_of(x: f64) -> f64 {
    1.0 - 10f64.powf(-x)
}

/// The x range of a chart whose longest line ends at `x_last`: whole decades of 1/(1-p), from
/// p = 0 to at least p99 and at most p99.9999, with room for the last marker.
pub fn x_range(x_last: f64) -> std::ops::Range<f64> {
    let end = x_last.ceil().clamp(2.0, 6.0);
    0.0..end * 1.02
}

/// The ticks inside `range`, as (label, x).
pub fn ticks(range: &std::ops::Range<f64>) -> Vec<(&'static str, f64)> {
    TICKS
        .iter()
        .map(|&(name, q)| (name, x_of(q)))
        .filter(|(_, x)| range.contains(x))
        .collect()
}

/// The x axis: linear in x, with the marked percentiles as its only key points.
struct PercentileAxis {
    range: std::ops::Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for PercentileAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let f = (value - self.range.start) / (self.range.end - self.range.start);
        limit.0 + (f * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.range.clone()
    }
}

/// The label of tick position `x`, empty between ticks.
fn tick_label(x: f64) -> String {
    TICKS
        .iter()
        .find(|(_, q)| (x_of(*q) - x).abs() < 1e-9)
        .map_or_else(String::new, |(name, _)| name.to_string())
}

/// One run's distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Legend name.
    pub name: String,
    /// (x, µs) from p = 0 to the last resolvable percentile, then up to the largest sample.
    pub points: Vec<(f64, f64)>,
    /// (x, µs) at each marked percentile the samples resolve.
    pub marks: Vec<(f64, f64)>,
}

impl Line {
    /// The line of everything `recorder` holds, or `None` when it holds nothing. With n samples
    /// the line runs to p = 1 - 1/n: beyond it every percentile is the largest sample, which
    /// the line steps up to at its end.
    pub fn new(name: String, recorder: &Recorder) -> Option<Line> {
        let n = recorder.samples();
        let max = recorder.summary().max_us?;
        let x_last = (n as f64).log10();
        let marked: Vec<f64> = TICKS
            .iter()
            .map(|t| t.1)
            // With n = 10^k samples, p(1 - 10^-k) is resolved though float rounding may put
            // its x a hair beyond log10(n).
            .filter(|&q| x_of(q) <= x_last + 1e-9)
            .collect();
        let mut quantiles: Vec<f64> = (0..=STEPS)
            .map(|i| q_of(x_last * i as f64 / STEPS as f64))
            .chain(marked.iter().copied())
            .collect();
        quantiles.sort_by(f64::total_cmp);
        quantiles.dedup();
        let values = recorder.percentiles_us(&quantiles);
        let mut points: Vec<(f64, f64)> = quantiles
            .iter()
            .zip(&values)
            .map(|(&q, &v)| (x_of(q), v))
            .collect();
        let x_end = points.last().map_or(x_last, |p| p.0.max(x_last));
        points.push((x_end, max));
        let marks = marked
            .iter()
            .map(|&q| {
                let i = quantiles.iter().position(|&k| k == q).expect("marked");
                (x_of(q), values[i])
            })
            .collect();
        Some(Line {
            name,
            points,
            marks,
        })
    }
}

/// The chart: every line over one percentile axis.
pub struct PercentileChart {
    /// Title.
    pub title: String,
    /// One line per run.
    pub lines: Vec<Line>,
}

impl Chart for PercentileChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let values = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
        let lo = values.clone().fold(f64::MAX, f64::min);
        let hi = values.fold(0.0, f64::max);
        if self.lines.is_empty() {
            return Err("no answered samples to plot".into());
        }
        let x_last = self
            .lines
            .iter()
            .filter_map(|l| l.points.last())
            .map(|p| p.0)
            .fold(0.0, f64::max);
        let x = x_range(x_last);
        let axis = PercentileAxis {
            ticks: ticks(&x).iter().map(|t| t.1).collect(),
            range: x,
        };
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(axis, log_axis(log_range(lo, hi)))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("percentile (%, log scale of 1/(1-p))")
            .y_desc("round-trip time (us, log scale)")
            .x_label_formatter(&|v| tick_label(*v))
            .y_label_formatter(&|v| us_label(*v))
            .y_labels(12)
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(err)?;
        for (i, line) in self.lines.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    c.stroke_width(2),
                ))
                .map_err(err)?
                .label(line.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
                });
            chart
                .draw_series(line.marks.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::plot::SIZE;
    use crate::stats::SampleId;

    fn recorder(values: impl Iterator<Item = u64>) -> Recorder {
        let mut r = Recorder::new(0);
        for v in values {
            r.record(
                v,
                SampleId {
                    seq: 0,
                    send_unix_ns: 0,
                    send_mono_ns: 0,
                },
            );
        }
        r
    }

    #[test]
    fn the_axis_counts_nines() {
        for (q, x) in [
            (0.0, 0.0),
            (0.9, 1.0),
            (0.99, 2.0),
            (0.999, 3.0),
            (0.99999, 5.0),
        ] {
            assert!((x_of(q) - x).abs() < 1e-9, "x_of({q}) = {}", x_of(q));
            assert!((q_of(x) - q).abs() < 1e-12, "q_of({x}) = {}", q_of(x));
        }
        assert!((x_of(0.5) - 2f64.log10()).abs() < 1e-12);
        // Equal steps in x are equal factors of the tail 1-p.
        assert!((x_of(0.9999) - x_of(0.999) - (x_of(0.99) - x_of(0.9))).abs() < 1e-9);
    }

    #[test]
    fn the_axis_maps_nines_linearly_to_pixels() {
        let axis = PercentileAxis {
            range: 0.0..3.0,
            ticks: vec![],
        };
        let px = |q: f64| axis.map(&x_of(q), (100, 400));
        assert_eq!(
            (px(0.0), px(0.9), px(0.99), px(0.999)),
            (100, 200, 300, 400)
        );
        assert_eq!(px(0.5), 100 + (100.0 * 2f64.log10()).round() as i32);
    }

    #[test]
    fn the_range_covers_the_data_in_whole_decades() {
        let names = |r: std::ops::Range<f64>| ticks(&r).iter().map(|t| t.0).collect::<Vec<_>>();
        // 300 samples: the line ends at p 99.67, the axis at p99.9.
        let r = x_range(300f64.log10());
        assert!(r.end > 3.0 && r.end < 3.1, "{r:?}");
        assert_eq!(names(r), ["50", "90", "99", "99.9"]);
        assert_eq!(
            names(x_range(5.0)),
            ["50", "90", "99", "99.9", "99.99", "99.999"]
        );
        // Never less than p99, never more than p99.9999.
        assert_eq!(names(x_range(0.5)), ["50", "90", "99"]);
        assert_eq!(names(x_range(9.0)).len(), 7);
        assert_eq!(tick_label(x_of(0.999)), "99.9");
        assert_eq!(tick_label(1.5), "");
    }

    #[test]
    fn marks_are_the_reported_percentiles() {
        let r = recorder((1..=100_000).map(|i| i * 7 + (i % 13) * 1000));
        let line = Line::new("run".into(), &r).unwrap();
        let s = r.summary();
        let reported = [s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.p9999_us];
        assert_eq!(line.marks.len(), 6, "100 000 samples resolve p99.999");
        for ((mark, reported), (_, q)) in line.marks.iter().zip(reported).zip(TICKS) {
            assert_eq!(Some(mark.1), reported, "p{}", q * 100.0);
            assert_eq!(mark.0, x_of(q));
        }
        // From p = 0 (the smallest) to the largest, never falling.
        assert_eq!(line.points[0], (0.0, s.min_us.unwrap()));
        let end = line.points.last().unwrap();
        assert!(
            (end.0 - 5.0).abs() < 1e-9 && end.1 == s.max_us.unwrap(),
            "{end:?}"
        );
        assert!(line
            .points
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn few_samples_mark_what_they_resolve() {
        let line = Line::new("run".into(), &recorder(1_000..1_300)).unwrap();
        assert_eq!(line.marks.len(), 3, "300 samples resolve p50..p99");
        assert!(Line::new("empty".into(), &Recorder::new(0)).is_none());
    }

    /// Draws the chart as SVG and finds, in it, the x-axis label of each marked percentile
    /// and every line's dot for it: they must be in the same pixel column.
    #[test]
    fn ticks_land_on_their_points() {
        crate::report::load_font(None).expect("DejaVu Sans (scripts/setup.sh installs it)");
        let fast = recorder((0..20_000).map(|i| 50_000 + (i * 7919) % 40_000));
        let slow = recorder((0..2_000).map(|i| 90_000 + (i * 131) % 900_000));
        let chart = PercentileChart {
            title: "test".into(),
            lines: vec![
                Line::new("fast".into(), &fast).unwrap(),
                Line::new("slow".into(), &slow).unwrap(),
            ],
        };
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            chart.draw(&root).unwrap();
            root.present().unwrap();
        }
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let attr = |n: &roxmltree::Node, a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
        // x-axis labels are centred on their ticks; y-axis labels end at theirs.
        let labels: Vec<(String, f64, f64)> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text") && n.attribute("text-anchor") == Some("middle"))
            .map(|n| {
                let t = n.text().unwrap_or("").trim().to_string();
                (t, attr(&n, "x"), attr(&n, "y"))
            })
            .collect();
        let dots: Vec<(String, f64, f64)> = doc
            .descendants()
            .filter(|n| n.has_tag_name("circle"))
            .map(|n| {
                let fill = n.attribute("fill").unwrap().to_string();
                (fill, attr(&n, "cx"), attr(&n, "cy"))
            })
            .collect();
        let hex = |c: RGBColor| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
        // fast (20 000 samples) resolves p99.99, slow (2 000) p99.9.
        for (line, colour, marked) in [(0, hex(color(0)), 5), (1, hex(color(1)), 4)] {
            let mine: Vec<&(String, f64, f64)> = dots
                .iter()
                .filter(|d| d.0.eq_ignore_ascii_case(&colour))
                .collect();
            assert_eq!(mine.len(), marked, "line {line} dots: {dots:?}");
            for (dot, (name, _)) in mine.iter().zip(TICKS) {
                // The axis label sits below the plot, centred on its tick.
                let label = labels
                    .iter()
                    .find(|l| l.0 == name && l.2 > dot.2)
                    .unwrap_or_else(|| panic!("no label {name}: {labels:?}"));
                assert!(
                    (label.1 - dot.1).abs() <= 1.0,
                    "p{name}: label at x {} but line {line}'s dot at x {}",
                    label.1,
                    dot.1
                );
            }
        }
        // The slower line's p50 dot is higher up (smaller y) than the faster one's.
        let p50 = |c: String| {
            dots.iter()
                .find(|d| d.0.eq_ignore_ascii_case(&c))
                .unwrap()
                .2
        };
        assert!(p50(hex(color(1))) < p50(hex(color(0))));
    }
}
