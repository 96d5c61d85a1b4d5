//! The results as SVG charts under `target/bench/plots/`, for people who
//! would rather look than read: one horizontal bar chart per case and
//! metric (median, with a min–max whisker), e.g. req/s and p99 per proxy,
//! capture rate per method, config-change time per level, kernel ns per
//! program per level.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::report::{Report, Row};

/// Pixels per bar, and the chart's fixed parts.
const BAR_HEIGHT: u32 = 26;
const CHROME_HEIGHT: u32 = 90;
const WIDTH: u32 = 900;
const LABEL_AREA: u32 = 330;

/// Writes one chart per (case, metric, unit) and returns their paths.
pub fn write_all(report: &Report, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut groups: BTreeMap<(String, String, String), Vec<&Row>> = BTreeMap::new();
    for row in &report.rows {
        groups
            .entry((row.case.clone(), row.metric.clone(), row.unit.clone()))
            .or_default()
            .push(row);
    }
    let mut written = Vec::new();
    for ((case, metric, unit), rows) in groups {
        let path = dir.join(format!("{}.svg", file_name(&case, &metric)));
        chart(&path, &format!("{case}: {metric} ({unit})"), &rows)?;
        written.push(path);
    }
    Ok(written)
}

fn chart(path: &Path, title: &str, rows: &[&Row]) -> anyhow::Result<()> {
    let height = CHROME_HEIGHT + BAR_HEIGHT * rows.len() as u32;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = rows
        .iter()
        .map(|r| r.value.max.max(r.value.median))
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.1;
    let n = rows.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(LABEL_AREA)
        .build_cartesian_2d(0.0..top, (0..n).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => {
                rows.get(*i).map(|r| r.subject.clone()).unwrap_or_default()
            }
            _ => String::new(),
        })
        .label_style(("sans-serif", 12))
        .draw()?;
    chart.draw_series(rows.iter().enumerate().map(|(i, r)| {
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (r.value.median, SegmentValue::Exact(i + 1)),
            ],
            BLUE.mix(0.55).filled(),
        );
        bar.set_margin(4, 4, 0, 0);
        bar
    }))?;
    // Min–max whiskers: how far the runs spread.
    chart.draw_series(rows.iter().enumerate().map(|(i, r)| {
        PathElement::new(
            vec![
                (r.value.min, SegmentValue::CenterOf(i)),
                (r.value.max, SegmentValue::CenterOf(i)),
            ],
            BLACK.stroke_width(2),
        )
    }))?;
    root.present()?;
    Ok(())
}

/// `3-waypoint-1-kib--req-s` from a case and a metric.
fn file_name(case: &str, metric: &str) -> String {
    let slug = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect::<String>()
    };
    format!("{}--{}", slug(case), slug(metric))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Summary;

    #[test]
    fn one_svg_per_case_and_metric() {
        let mut report = Report::default();
        report.add("3 waypoint", "egret", "req/s", "req/s", &[10.0, 12.0, 11.0]);
        report.add("3 waypoint", "nginx", "req/s", "req/s", &[9.0, 9.5, 9.2]);
        report.add("3 waypoint", "egret", "p99", "ms", &[1.0, 1.2, 1.1]);
        report.add_summary(
            "2 capture",
            "ratio",
            "vs none",
            "x",
            Summary::of(&[0.95]),
            "",
        );
        let dir = tempfile::tempdir().unwrap();
        let written = write_all(&report, dir.path()).unwrap();
        assert_eq!(written.len(), 3);
        let svg = std::fs::read_to_string(dir.path().join("3-waypoint--req-s.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("nginx"), "{svg}");
    }
}
