//! SVG line charts of the connection sweep (a figure against the number of open connections), one line per
//! server, both axes logarithmic since the servers span orders of magnitude.

use plotters::prelude::*;

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Index into the palette, so that a server keeps its colour from chart to chart and run to run.
    pub colour: usize,
    /// Drawn dashed (a reference line rather than a contender).
    pub dashed: bool,
    /// `(x, y)` points; those with a non-positive coordinate cannot sit on a log axis and are left out.
    pub points: Vec<(f64, f64)>,
}

/// Line colours, indexed by [`Series::colour`].
const COLOURS: [RGBColor; 8] = [
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
    RGBColor(23, 190, 207),
];

const SIZE: (u32, u32) = (960, 540);
/// Width of the legend strip right of the plot.
const LEGEND_WIDTH: u32 = 150;

/// Renders a log–log line chart as an SVG document, the x axis labelled at the `x_ticks` values.
///
/// # Errors
///
/// Fails when no series has a plottable point, or when plotters reports a drawing error.
pub fn log_log_svg(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    x_ticks: &[f64],
    series: &[Series],
) -> Result<String, String> {
    let plottable = |&(x, y): &(f64, f64)| x > 0.0 && y > 0.0 && x.is_finite() && y.is_finite();
    let points = || series.iter().flat_map(|s| s.points.iter().copied().filter(plottable));
    let (Some(x_range), Some(y_range)) = (span(points().map(|p| p.0)), span(points().map(|p| p.1))) else {
        return Err(format!("chart {title:?}: nothing to plot"));
    };
    let x_range = (x_range.0 / 1.2)..(x_range.1 * 1.2);
    let y_range = (y_range.0 / 1.6)..(y_range.1 * 1.6);
    let mut x_ticks: Vec<f64> = x_ticks.to_vec();
    if x_ticks.is_empty() {
        x_ticks = points().map(|p| p.0).collect();
    }
    let y_ticks = log_ticks(y_range.start, y_range.end);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let body = root.titled(title, ("sans-serif", 24)).map_err(|e| e.to_string())?;
        let (plot, legend) = body.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&plot)
            .margin(18)
            .x_label_area_size(48)
            .y_label_area_size(84)
            .build_cartesian_2d(
                x_range.log_scale().with_key_points(x_ticks),
                y_range.log_scale().with_key_points(y_ticks),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| si(*y))
            .label_style(("sans-serif", 14))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| e.to_string())?;
        let mut row = 0;
        for s in series {
            let colour = COLOURS[s.colour % COLOURS.len()];
            let line: Vec<(f64, f64)> = s.points.iter().copied().filter(plottable).collect();
            if line.is_empty() {
                continue;
            }
            let style = colour.stroke_width(2);
            if s.dashed {
                chart.draw_series(DashedLineSeries::new(line.clone(), 8, 5, style)).map_err(|e| e.to_string())?;
            } else {
                chart.draw_series(LineSeries::new(line.iter().copied(), style)).map_err(|e| e.to_string())?;
            }
            chart.draw_series(line.iter().map(|&p| Circle::new(p, 3, colour.filled()))).map_err(|e| e.to_string())?;

            // Legend entry in the strip right of the plot, where it can hide no line.
            let y = 40 + 26 * row;
            let sample: Vec<(i32, i32)> =
                if s.dashed { vec![(8, y), (16, y), (20, y), (28, y)] } else { vec![(8, y), (28, y)] };
            if s.dashed {
                legend.draw(&PathElement::new(sample[..2].to_vec(), style)).map_err(|e| e.to_string())?;
                legend.draw(&PathElement::new(sample[2..].to_vec(), style)).map_err(|e| e.to_string())?;
            } else {
                legend.draw(&PathElement::new(sample, style)).map_err(|e| e.to_string())?;
            }
            legend
                .draw(&Text::new(s.name.as_str(), (36, y - 8), ("sans-serif", 15).into_font().color(&BLACK)))
                .map_err(|e| e.to_string())?;
            row += 1;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Labels for a logarithmic axis over `lo..hi`: the 1-2-5 values of each decade that fall inside, or every
/// integer multiple of the decade when that gives fewer than three.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = lo.log10().floor() as i32..=hi.log10().ceil() as i32;
    let pick = |multiples: &[f64]| -> Vec<f64> {
        decades
            .clone()
            .flat_map(|e| multiples.iter().map(move |m| if e >= 0 { m * 10f64.powi(e) } else { m / 10f64.powi(-e) }))
            .filter(|v| (lo..=hi).contains(v))
            .collect()
    };
    let ticks = pick(&[1.0, 2.0, 5.0]);
    if ticks.len() >= 3 { ticks } else { pick(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]) }
}

/// The smallest and largest of `values`.
fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// An axis label with an SI suffix: `500`, `20k`, `1.2M`, `0.5`.
fn si(value: f64) -> String {
    let (scaled, suffix) = if value >= 1e6 {
        (value / 1e6, "M")
    } else if value >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let text = if scaled >= 10.0 || scaled == scaled.round() { format!("{scaled:.0}") } else { format!("{scaled:.1}") };
    format!("{text}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_labels_are_short() {
        assert_eq!(si(500.0), "500");
        assert_eq!(si(20_000.0), "20k");
        assert_eq!(si(1_250_000.0), "1.2M");
        assert_eq!(si(0.5), "0.5");
        assert_eq!(si(2.0), "2");
    }

    #[test]
    fn chart_has_a_line_and_a_legend_entry_per_series() {
        let series = vec![
            Series {
                name: "gale_http1".into(),
                colour: 0,
                dashed: false,
                points: vec![(64.0, 120_000.0), (256.0, 110_000.0)],
            },
            Series { name: "tornado".into(), colour: 1, dashed: false, points: vec![(64.0, 6_000.0), (256.0, 0.0)] },
        ];
        let svg = log_log_svg("req/s", "connections", "req/s", &[64.0, 256.0], &series).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        // plotters writes each text element's content on a line of its own.
        assert!(svg.contains("\ngale_http1\n") && svg.contains("\ntornado\n"), "{svg}");
        assert!(svg.contains("\n256\n"), "x axis labelled at the sweep points");
        // One line plus one legend sample per series, in the series' own colour.
        assert_eq!(svg.matches(r##"stroke="#D62728" stroke-width="2""##).count(), 2, "{svg}");
        assert_eq!(svg.matches(r##"stroke="#FF7F0E" stroke-width="2""##).count(), 2, "{svg}");
    }

    #[test]
    fn log_axis_labels_are_round_numbers_inside_the_range() {
        assert_eq!(log_ticks(3_000.0, 300_000.0), [5e3, 1e4, 2e4, 5e4, 1e5, 2e5]);
        assert_eq!(log_ticks(0.3, 1.5), [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]);
    }

    #[test]
    fn chart_without_plottable_points_is_an_error() {
        let series = vec![Series { name: "x".into(), colour: 0, dashed: false, points: vec![(64.0, 0.0)] }];
        assert!(log_log_svg("t", "x", "y", &[], &series).is_err());
    }
}
