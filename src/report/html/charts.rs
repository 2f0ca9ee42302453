//! The page's charts, drawn by plotters into SVG text that the page inlines: lines over run
//! time (one per run, or per run and lane) and the latency histogram (one bar per run in each
//! bucket). The SVG backend writes text as `<text>` elements, so no font file is read; the
//! browser draws them with its own sans-serif.

use plotters::prelude::*;

use crate::watch::LATENCY_BUCKETS_S;

/// One color per run (then per series), readable on white and told apart by most eyes.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

const SIZE: (u32, u32) = (660, 300);

/// The color of series number `i`.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// `#rrggbb` of series number `i`, for the page's own legends.
pub fn css_color(i: usize) -> String {
    let RGBColor(r, g, b) = color(i);
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// A line to draw: (seconds of run time, value) points, in a color, and the run times
/// its run was resumed at (drawn as thin vertical lines in the same color).
pub struct Line<'a> {
    pub label: String,
    pub color: usize,
    pub points: &'a [(f64, f64)],
    pub resumed_at: &'a [f64],
}

/// `1,234` as `1.2k`, `3,400,000` as `3.4M`: axis labels stay short.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The unit run time reads best in: seconds, minutes or hours, and its length in seconds.
fn time_unit(x_max: f64) -> (&'static str, f64) {
    if x_max > 3.0 * 3600.0 {
        ("h", 3600.0)
    } else if x_max > 300.0 {
        ("min", 60.0)
    } else {
        ("s", 1.0)
    }
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// An SVG of `lines` over run time with `y_desc` on the y axis; `None` when no line has a
/// point.
pub fn lines(title: &str, y_desc: &str, lines: &[Line]) -> Option<String> {
    let all = || lines.iter().flat_map(|l| l.points.iter());
    all().next()?;
    let x_max = all().map(|p| p.0).fold(0.0, f64::max);
    let y_max = all().map(|p| p.1).fold(0.0, f64::max);
    let (unit, seconds) = time_unit(x_max);
    let y_top = (y_max * 1.1).max(1.0);
    let mut svg = String::new();
    let drawn: Drawn = (|| {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..(x_max / seconds).max(1e-3) * 1.02, 0.0..y_top)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE.mix(0.0))
            .x_desc(format!("run time ({unit})"))
            .y_desc(y_desc)
            .y_label_formatter(&|v| short(*v))
            .x_label_formatter(&|v| short(*v))
            .draw()?;
        for line in lines {
            let c = color(line.color);
            chart.draw_series(line.resumed_at.iter().map(|&x| {
                PathElement::new(vec![(x / seconds, 0.0), (x / seconds, y_top)], c.mix(0.4))
            }))?;
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().map(|&(x, y)| (x / seconds, y)),
                    c.stroke_width(2),
                ))?
                .label(line.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 12))
            .draw()?;
        root.present()?;
        Ok(())
    })();
    Some(drawn.map_or_else(|e| not_drawn(title, &e.to_string()), |()| svg))
}

/// A note where a chart could not be drawn (plotters refused its data).
fn not_drawn(title: &str, why: &str) -> String {
    format!(
        "<p class=\"note\">{}: chart not drawn ({})</p>",
        super::escape(title),
        super::escape(why)
    )
}

/// A bucket's upper bound as the axis names it: `25ms`, `2.5s`.
fn bound_label(index: usize) -> String {
    match LATENCY_BUCKETS_S.get(index) {
        Some(&s) if s < 1.0 => format!("{:.0}ms", s * 1000.0),
        Some(&s) => format!("{}s", s),
        None => "more".to_string(),
    }
}

/// The latency histogram: in each bucket one bar per run (`calls[run][bucket]`), over the
/// buckets from the first to the last that any run has calls in. `None` without calls.
pub fn latency_histogram(labels: &[String], calls: &[Vec<u64>]) -> Option<String> {
    let used = |i: usize| calls.iter().any(|c| c.get(i).copied().unwrap_or(0) > 0);
    let buckets = LATENCY_BUCKETS_S.len() + 1;
    let first = (0..buckets).find(|&i| used(i))?;
    let last = (0..buckets).rev().find(|&i| used(i))?;
    let y_max = calls.iter().flatten().copied().max().unwrap_or(1) as f64;
    let runs = calls.len().max(1) as f64;
    let mut svg = String::new();
    let title = "Calls by latency";
    let drawn: Drawn = (|| {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .margin_right(24)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(first as f64..(last + 1) as f64, 0.0..y_max * 1.1)?;
        // Bars sit between two bounds: the label at x = i is bucket i-1's upper bound.
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE.mix(0.0))
            .x_labels(last + 2 - first)
            .x_label_formatter(&|x| match x.round() as usize {
                0 => "0".to_string(),
                i => bound_label(i - 1),
            })
            .y_label_formatter(&|v| short(*v))
            .x_desc("latency of a call (bucket upper bounds)")
            .y_desc("calls")
            .draw()?;
        for (run, run_calls) in calls.iter().enumerate() {
            let c = color(run);
            let width = 0.8 / runs;
            chart
                .draw_series((first..=last).map(|i| {
                    let x0 = i as f64 + 0.1 + width * run as f64;
                    let n = run_calls.get(i).copied().unwrap_or(0) as f64;
                    Rectangle::new([(x0, 0.0), (x0 + width, n)], c.filled())
                }))?
                .label(labels.get(run).map_or("", String::as_str))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 12))
            .draw()?;
        root.present()?;
        Ok(())
    })();
    Some(drawn.map_or_else(|e| not_drawn(title, &e.to_string()), |()| svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_svg_with_its_title_and_legend_and_nothing_without_points() {
        let points = [(0.0, 1.0), (5.0, 3.0), (10.0, 2.0)];
        let svg = lines(
            "Records per second",
            "records/s",
            &[Line {
                label: "night 1".into(),
                color: 0,
                points: &points,
                resumed_at: &[5.0],
            }],
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{svg:.200}");
        assert!(svg.contains("Records per second"));
        assert!(svg.contains("night 1"));
        assert!(svg.contains("run time (s)"));
        assert!(svg.contains("<polyline"));
        // The resume at 5 s: a vertical line in the run's color, faded.
        assert!(svg.contains("opacity=\"0.4\" stroke=\"#1F77B4\""), "{svg}");
        assert!(lines("t", "y", &[]).is_none());
    }

    #[test]
    fn the_histogram_draws_a_bar_per_run_per_bucket_and_names_the_bounds() {
        let mut a = vec![0; LATENCY_BUCKETS_S.len() + 1];
        a[3] = 10;
        a[5] = 2;
        let mut b = a.clone();
        b[4] = 7;
        let svg = latency_histogram(&["a".into(), "b".into()], &[a, b]).unwrap();
        // Buckets 3..=5 for each run: three bars and a legend swatch in its color.
        for run in 0..2 {
            let fill = format!("fill=\"{}\"", css_color(run).to_uppercase());
            assert_eq!(svg.matches(&fill).count(), 4, "{fill} in {svg}");
        }
        assert!(svg.contains("250ms"), "{svg}");
        assert!(latency_histogram(&[], &[vec![0; 15]]).is_none());
        assert_eq!(short(12_345.0), "12k");
        assert_eq!(short(2_500_000.0), "2.5M");
    }
}
