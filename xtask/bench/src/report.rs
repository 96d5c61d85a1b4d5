//! The results: rows of figures, target checks, and their Markdown and
//! JSON renderings under `target/bench/`.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::stats::Summary;

/// One figure of one case.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Case number and name, e.g. "2 capture".
    pub case: String,
    /// What was measured, e.g. "egret eBPF".
    pub subject: String,
    /// The quantity, e.g. "connections/s".
    pub metric: String,
    pub unit: String,
    pub value: Summary,
    /// Conditions worth reading next to the number.
    pub note: String,
}

/// A stated goal and whether this run met it.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub what: String,
    pub goal: String,
    pub measured: String,
    pub met: bool,
}

/// Everything one `cargo xtask bench` produced.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub mode: String,
    pub machine: String,
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
    /// Cases that failed or were skipped, with the reason.
    pub problems: Vec<String>,
    /// Cases measured on a machine that was not quiet.
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
}

impl Report {
    /// Adds a row.
    pub fn add(&mut self, case: &str, subject: &str, metric: &str, unit: &str, samples: &[f64]) {
        self.add_noted(case, subject, metric, unit, samples, "");
    }

    /// Adds a row with a note.
    pub fn add_noted(
        &mut self,
        case: &str,
        subject: &str,
        metric: &str,
        unit: &str,
        samples: &[f64],
        note: &str,
    ) {
        self.add_summary(case, subject, metric, unit, Summary::of(samples), note);
    }

    /// Adds a row from a ready summary (e.g. a ratio).
    pub fn add_summary(
        &mut self,
        case: &str,
        subject: &str,
        metric: &str,
        unit: &str,
        value: Summary,
        note: &str,
    ) {
        self.rows.push(Row {
            case: case.into(),
            subject: subject.into(),
            metric: metric.into(),
            unit: unit.into(),
            value,
            note: note.into(),
        });
    }

    /// Records a target check.
    pub fn target(&mut self, what: &str, goal: &str, measured: String, met: bool) {
        self.targets.push(Target {
            what: what.into(),
            goal: goal.into(),
            measured,
            met,
        });
    }

    /// The Markdown table (also printed at the end of the run).
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# egret benchmarks ({})\n", self.mode);
        let _ = writeln!(md, "Machine: {}\n", self.machine);
        md.push_str("Each figure: median of N runs [min – max]. Ratios are taken run by run (same round) and then summarised.\n\n");
        if !self.warnings.is_empty() {
            md.push_str("**The machine was not quiet** — read these figures with care:\n\n");
            for w in &self.warnings {
                let _ = writeln!(md, "- {w}");
            }
            md.push('\n');
        }
        md.push_str("| case | subject | metric | median | [min – max] | N | note |\n");
        md.push_str("|---|---|---|---:|---|---:|---|\n");
        for r in &self.rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} {} | [{} – {}] | {} | {} |",
                r.case,
                r.subject,
                r.metric,
                fmt(r.value.median),
                r.unit,
                fmt(r.value.min),
                fmt(r.value.max),
                r.value.runs,
                r.note
            );
        }
        if !self.targets.is_empty() {
            md.push_str("\n| target | goal | measured | met |\n|---|---|---|---|\n");
            for t in &self.targets {
                let met = if t.met { "yes" } else { "**NO — missed**" };
                let _ = writeln!(md, "| {} | {} | {} | {} |", t.what, t.goal, t.measured, met);
            }
        }
        for (title, items) in [("Problems", &self.problems), ("Notes", &self.notes)] {
            if !items.is_empty() {
                let _ = writeln!(md, "\n{title}:\n");
                for p in items {
                    let _ = writeln!(md, "- {p}");
                }
            }
        }
        md
    }

    /// Writes `results.md` and `results.json` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("results.md"), self.markdown())?;
        std::fs::write(
            dir.join("results.json"),
            serde_json::to_string_pretty(self)?,
        )?;
        Ok(())
    }
}

/// Three significant digits, thousands kept whole.
pub fn fmt(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
