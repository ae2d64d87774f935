//! The charts: latency CDF (log RTT axis, percentiles marked), histogram (log-spaced bins),
//! RTT over time (outliers and losses marked), each drawn once per backend (SVG and PNG).
use std::path::{Path, PathBuf};

use plotters::coord::combinators::{BindKeyPoints, WithKeyPoints};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::input::{Figures, Series, PERCENTILES};
use super::ReportError;

/// Size of every chart, pixels.
pub const SIZE: (u32, u32) = (1000, 600);
/// At most this many points per line: enough for the eye, small enough for an SVG.
const MAX_LINE_POINTS: usize = 2500;
/// Samples above which the time chart shows per-bin bands instead of every sample.
const MAX_TIME_POINTS: usize = 4000;
/// Series colours, in run order (colour-blind-safe Okabe-Ito palette).
const COLORS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];
const OUTLIER: RGBColor = RGBColor(200, 0, 0);

/// A colour per series index.
pub fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// A chart drawable on any plotters backend.
pub trait Chart {
    /// Draws on `root` (already sized).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Draws `chart` to `stem.svg` and `stem.png`; returns both paths.
pub fn render(chart: &impl Chart, stem: &Path) -> Result<[PathBuf; 2], ReportError> {
    let svg = stem.with_extension("svg");
    let png = stem.with_extension("png");
    let fail = |path: &Path, message: String| ReportError::Draw {
        path: path.to_path_buf(),
        message,
    };
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        chart.draw(&root).map_err(|m| fail(&svg, m))?;
        root.present().map_err(|e| fail(&svg, e.to_string()))?;
    }
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        chart.draw(&root).map_err(|m| fail(&png, m))?;
        root.present().map_err(|e| fail(&png, e.to_string()))?;
    }
    Ok([svg, png])
}

pub(super) fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Every chart's legend: the series labels in a framed, mostly opaque box in `corner`.
pub(super) fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    corner: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(corner)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// `157`, `1.5k`, `20k` (µs tick labels on a log axis).
pub(super) fn us_label(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A padded log range around `[lo, hi]`.
pub(super) fn log_range(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let lo = lo.max(0.01);
    let hi = hi.max(lo * 1.5);
    lo / 1.2..hi * 1.2
}

/// Tick values for a log axis over `range`: 1-2-5 per decade, denser when the range is narrow.
pub fn log_ticks(range: &std::ops::Range<f64>) -> Vec<f64> {
    let sets: [&[f64]; 3] = [
        &[1.0, 2.0, 5.0],
        &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0],
        &[1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
    ];
    let mut ticks = Vec::new();
    for set in sets {
        ticks.clear();
        let mut decade = 10f64.powi(range.start.log10().floor() as i32);
        while decade <= range.end {
            ticks.extend(set.iter().map(|m| m * decade).filter(|v| range.contains(v)));
            decade *= 10.0;
        }
        if ticks.len() >= 5 {
            break;
        }
    }
    ticks
}

/// A log axis over `range` with [`log_ticks`] as its labelled points.
pub(super) fn log_axis(range: std::ops::Range<f64>) -> WithKeyPoints<LogCoord<f64>> {
    let ticks = log_ticks(&range);
    range.log_scale().with_key_points(ticks)
}

/// Overlaid CDFs of one or several series, with the percentiles of the first marked when
/// there is only one line per run.
pub struct CdfChart<'a> {
    /// Title.
    pub title: String,
    /// (legend name, sorted RTTs in µs, figures to mark or `None`).
    pub lines: Vec<(String, &'a [f64], Option<&'a Figures>)>,
}

impl Chart for CdfChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let all = self.lines.iter().filter(|l| !l.1.is_empty());
        let lo = all.clone().map(|l| l.1[0]).fold(f64::MAX, f64::min);
        let hi = all.map(|l| l.1[l.1.len() - 1]).fold(0.0, f64::max);
        if hi <= 0.0 {
            return Err("no answered samples to plot".into());
        }
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(log_axis(log_range(lo, hi)), 0.0..100.5)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("round-trip time (us, log scale)")
            .y_desc("transactions at or below (%)")
            .x_label_formatter(&|v| us_label(*v))
            .x_labels(12)
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(err)?;
        for (i, (name, rtts, marks)) in self.lines.iter().enumerate() {
            let c = color(i);
            let n = rtts.len();
            let step = (n / MAX_LINE_POINTS).max(1);
            // Every step-th sample, and every one of the tail, where the eye looks.
            let tail = n.saturating_sub(MAX_LINE_POINTS / 4);
            let pts = (0..n)
                .filter(move |&k| k % step == 0 || k >= tail)
                .map(|k| (rtts[k], (k + 1) as f64 * 100.0 / n as f64));
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
                });
            if let Some(f) = marks {
                mark_percentiles(&mut chart, f, c)?;
            }
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    }
}

/// Marks `f`'s percentiles on a CDF: a dot at each with its name drawn from the dot itself, in
/// pixels, so that no axis scale can move one from the other. The tail's names, which crowd
/// at the top edge, step down 20 px each on short leader lines, on the side of the dot away
/// from the curve (right, or left near the right edge). The values are listed in the lower
/// right corner.
fn mark_percentiles<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<WithKeyPoints<LogCoord<f64>>, RangedCoordf64>>,
    f: &Figures,
    c: RGBColor,
) -> Result<(), String> {
    let x_range = chart.x_range();
    let span = (x_range.end / x_range.start).ln();
    let font = ("sans-serif", 16).into_font();
    let mut listing = Vec::new();
    let mut stacked = 0;
    for ((name, q), v) in PERCENTILES.iter().zip(f.percentiles_us) {
        let Some(v) = v else { continue };
        listing.push(format!("{name} {} us", us_label(v)));
        let (dx, dy): (i32, i32) = if *q < 99.0 {
            // Below the curve's rise: right of the dot.
            (8, 8)
        } else {
            stacked += 1;
            let near_right_edge = (v / x_range.start).ln() / span > 0.85;
            (if near_right_edge { -10 } else { 10 }, 20 * stacked)
        };
        let anchor = Pos::new(if dx < 0 { HPos::Right } else { HPos::Left }, VPos::Center);
        chart
            .draw_series([EmptyElement::at((v, *q))
                + Circle::new((0, 0), 5, c.filled())
                + PathElement::new(vec![(0, 0), (dx - dx.signum() * 2, dy)], BLACK.mix(0.5))
                + Text::new(
                    name.to_string(),
                    (dx, dy),
                    font.clone().color(&BLACK).pos(anchor),
                )])
            .map_err(err)?;
    }
    if let Some(max) = f.max_us {
        listing.push(format!("max {} us", us_label(max)));
    }
    // Right-aligned, bottom line just above the x axis.
    let corner = (x_range.end, 0.0);
    let right = Pos::new(HPos::Right, VPos::Bottom);
    for (i, line) in listing.iter().rev().enumerate() {
        chart
            .draw_series([EmptyElement::at(corner)
                + Text::new(
                    line.clone(),
                    (-12, -8 - 20 * i as i32),
                    font.clone().color(&BLACK).pos(right),
                )])
            .map_err(err)?;
    }
    Ok(())
}

/// A histogram of one series with log-spaced bins.
pub struct HistChart<'a> {
    /// Title.
    pub title: String,
    /// Sorted RTTs, µs.
    pub rtts: &'a [f64],
}

/// Number of bins of the histogram.
const BINS: usize = 60;

/// Counts of `sorted` in [`BINS`] log-spaced bins; returns (edges, counts).
pub fn log_bins(sorted: &[f64]) -> (Vec<f64>, Vec<u64>) {
    let lo = sorted[0].max(0.01);
    let hi = sorted[sorted.len() - 1].max(lo * 1.01);
    let ratio = (hi / lo).powf(1.0 / BINS as f64);
    let edges: Vec<f64> = (0..=BINS).map(|i| lo * ratio.powi(i as i32)).collect();
    let mut counts = vec![0u64; BINS];
    for &v in sorted {
        let i = ((v.max(lo) / lo).ln() / ratio.ln()) as usize;
        counts[i.min(BINS - 1)] += 1;
    }
    (edges, counts)
}

impl Chart for HistChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        if self.rtts.is_empty() {
            return Err("no answered samples to plot".into());
        }
        let (edges, counts) = log_bins(self.rtts);
        let top = counts.iter().copied().max().unwrap_or(1) as f64 * 1.08;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(log_axis(edges[0] / 1.05..edges[BINS] * 1.05), 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("round-trip time (us, log scale, log-spaced bins)")
            .y_desc("transactions per bin")
            .x_label_formatter(&|v| us_label(*v))
            .x_labels(12)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, &c)| c > 0)
                    .map(|(i, &c)| {
                        Rectangle::new(
                            [(edges[i], 0.0), (edges[i + 1], c as f64)],
                            color(0).filled(),
                        )
                    }),
            )
            .map_err(err)?;
        Ok(())
    }
}

/// RTT over time: every sample (or per-bin min..max bands when there are many), the
/// reported outliers circled, losses as crosses along the top.
pub struct TimeChart<'a> {
    /// Title.
    pub title: String,
    /// The series.
    pub series: &'a Series,
}

impl Chart for TimeChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let s = self.series;
        let answered: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter_map(|p| p.rtt_us.map(|r| (p.t_s, r)))
            .collect();
        if answered.is_empty() {
            return Err("no answered samples to plot".into());
        }
        let t_end = s.points.iter().map(|p| p.t_s).fold(0.0, f64::max).max(1e-3);
        let lo = answered.iter().map(|p| p.1).fold(f64::MAX, f64::min);
        let hi = answered.iter().map(|p| p.1).fold(0.0, f64::max);
        let y = log_range(lo, hi);
        let y_top = y.end / 1.05;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..t_end * 1.01, log_axis(y))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time since the first request (s)")
            .y_desc("round-trip time (us, log scale)")
            .y_label_formatter(&|v| us_label(*v))
            .y_labels(12)
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(err)?;
        let c = color(0);
        if answered.len() <= MAX_TIME_POINTS {
            chart
                .draw_series(answered.iter().map(|&p| Circle::new(p, 2, c.filled())))
                .map_err(err)?
                .label("one transaction")
                .legend(move |(x, y)| Circle::new((x + 10, y), 3, c.filled()));
        } else {
            // Per-bin min..max as a vertical bar and the bin median as a line.
            let bins = MAX_TIME_POINTS / 4;
            let width = t_end / bins as f64;
            let mut groups: Vec<Vec<f64>> = vec![Vec::new(); bins];
            for &(t, r) in &answered {
                groups[((t / width) as usize).min(bins - 1)].push(r);
            }
            let mut medians = Vec::new();
            let mut bars = Vec::new();
            for (i, g) in groups.iter_mut().enumerate() {
                if g.is_empty() {
                    continue;
                }
                g.sort_by(f64::total_cmp);
                let t = (i as f64 + 0.5) * width;
                medians.push((t, g[g.len() / 2]));
                bars.push(PathElement::new(
                    vec![(t, g[0]), (t, g[g.len() - 1])],
                    c.mix(0.35),
                ));
            }
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(format!("min..max per {:.2} s", width))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x + 10, y - 6), (x + 10, y + 6)], c.mix(0.35))
                });
            chart
                .draw_series(LineSeries::new(medians, c.stroke_width(2)))
                .map_err(err)?
                .label("median per bin")
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(2))
                });
        }
        let outliers: Vec<(f64, f64)> = s
            .outlier_seqs
            .iter()
            .filter_map(|seq| s.points.iter().find(|p| p.seq == *seq))
            .filter_map(|p| p.rtt_us.map(|r| (p.t_s, r)))
            .collect();
        if !outliers.is_empty() {
            chart
                .draw_series(
                    outliers
                        .iter()
                        .map(|&p| Circle::new(p, 7, OUTLIER.stroke_width(2))),
                )
                .map_err(err)?
                .label(format!("{} largest (outliers)", outliers.len()))
                .legend(|(x, y)| Circle::new((x + 10, y), 6, OUTLIER.stroke_width(2)));
            // The largest one, named.
            let (t, r) = outliers[0];
            let text = format!("max {} us at {t:.2} s", us_label(r));
            // Right of the circle, or left of it in the right half of the chart.
            let font = ("sans-serif", 15).into_font();
            let w = font.box_size(&text).map(|b| b.0).unwrap_or(150) as f64;
            let x = if t > t_end / 2.0 {
                t - (w + 12.0) / 880.0 * t_end
            } else {
                t + 12.0 / 880.0 * t_end
            };
            chart
                .draw_series(std::iter::once(Text::new(
                    text,
                    (x, r / 1.1),
                    font.color(&OUTLIER),
                )))
                .map_err(err)?;
        }
        let lost: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| p.rtt_us.is_none())
            .map(|p| (p.t_s, y_top))
            .collect();
        if !lost.is_empty() {
            let n = lost.len();
            chart
                .draw_series(
                    lost.into_iter()
                        .map(|p| Cross::new(p, 5, BLACK.stroke_width(2))),
                )
                .map_err(err)?
                .label(format!("{n} lost"))
                .legend(|(x, y)| Cross::new((x + 10, y), 5, BLACK.stroke_width(2)));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_bins_count_every_sample() {
        let v: Vec<f64> = (1..=1000).map(|i| i as f64).collect();
        let (edges, counts) = log_bins(&v);
        assert_eq!(edges.len(), BINS + 1);
        assert_eq!(counts.iter().sum::<u64>(), 1000);
        assert!(counts[BINS - 1] > 0);
        assert!((edges[BINS] - 1000.0).abs() < 1e-6);
    }

    /// Each percentile's name is drawn at its own dot: the SVG has dot, leader and name one
    /// after the other, and the name starts within a few pixels across and a short step down.
    #[test]
    fn percentile_names_stay_at_their_dots() {
        crate::report::load_font(None).expect("DejaVu Sans (scripts/setup.sh installs it)");
        let rtts: Vec<f64> = (0..10_000)
            .map(|i| 50.0 + (i as f64 / 200.0).powi(3))
            .collect();
        let figures = Figures {
            percentiles_us: [5_000, 9_000, 9_900, 9_990, 9_999].map(|k| Some(rtts[k - 1])),
            max_us: Some(rtts[9_999]),
            ..Figures::default()
        };
        let chart = CdfChart {
            title: "test".into(),
            lines: vec![("run".into(), &rtts, Some(&figures))],
        };
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            chart.draw(&root).unwrap();
            root.present().unwrap();
        }
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let num = |n: &roxmltree::Node, a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
        let mut dot = None;
        let mut found = Vec::new();
        for n in doc.descendants() {
            if n.has_tag_name("circle") {
                dot = Some((num(&n, "cx"), num(&n, "cy")));
            }
            let text = n.text().unwrap_or("").trim();
            if n.has_tag_name("text") && PERCENTILES.iter().any(|p| p.0 == text) {
                let (cx, cy) = dot.take().expect("a name with no dot before it");
                let (x, y) = (num(&n, "x"), num(&n, "y"));
                assert!((x - cx).abs() <= 12.0, "{text} at x {x}, its dot at {cx}");
                assert!(
                    (0.0..=100.0).contains(&(y - cy)),
                    "{text} at y {y}, dot at {cy}"
                );
                found.push(text.to_string());
            }
        }
        assert_eq!(found, ["p50", "p90", "p99", "p99.9", "p99.99"]);
    }

    #[test]
    fn labels() {
        assert_eq!(us_label(157.3), "157");
        assert_eq!(us_label(1500.0), "1.5k");
        assert_eq!(us_label(20_000.0), "20k");
        assert_eq!(us_label(2.5), "2.5");
    }
}
