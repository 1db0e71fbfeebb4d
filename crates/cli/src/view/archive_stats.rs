//! `kubectl crew stats --archived`: the archive's figures over a span, by queue, by day and by failed step.

use super::style::Style;
use super::table::{Cell, Table};
use crew_api::archive::{Figures, Stats};

fn rate(figures: &Figures) -> String {
    let finished = figures.succeeded + figures.failed + figures.cancelled;
    if finished == 0 {
        return "-".into();
    }
    format!("{:.1}%", figures.succeeded as f64 * 100.0 / finished as f64)
}

fn seconds(value: Option<i64>) -> String {
    value.map_or("-".into(), |s| format!("≤{}", super::time::short(s)))
}

fn row(label: String, f: &Figures) -> Vec<Cell> {
    vec![
        label.into(),
        f.total.to_string().into(),
        f.succeeded.to_string().into(),
        f.failed.to_string().into(),
        f.cancelled.to_string().into(),
        f.deleted.to_string().into(),
        rate(f).into(),
        seconds(f.p50_seconds).into(),
        seconds(f.p95_seconds).into(),
    ]
}

const HEADERS: [&str; 9] = [
    "",
    "TOTAL",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
    "DELETED",
    "SUCCESS",
    "P50",
    "P95",
];

/// The figures of `stats` for `scope` over the last `since_seconds`.
pub fn render(stats: &Stats, scope: &str, since_seconds: u64, style: Style) -> String {
    let mut out = format!(
        "Archived executions in {scope}, finished within {}:\n\n",
        super::time::short(since_seconds as i64)
    );
    let mut overall = Table::new(&HEADERS);
    overall.row(row("all".into(), &stats.overall));
    for (queue, figures) in &stats.by_queue {
        let label = if queue.is_empty() {
            "(no queue)".to_string()
        } else {
            format!("queue {queue}")
        };
        overall.row(row(label, figures));
    }
    out.push_str(&overall.render(true, 0, style));
    if !stats.by_period.is_empty() {
        out.push_str("\nBy period:\n");
        let mut periods = Table::new(&HEADERS);
        for (start, figures) in &stats.by_period {
            periods.row(row(start.to_string(), figures));
        }
        out.push_str(&periods.render(true, 2, style));
    }
    if !stats.failed_steps.is_empty() {
        out.push_str("\nFailures by step:\n");
        let mut failures = Table::new(&["STEP", "REASON", "RUNS"]);
        for failure in &stats.failed_steps {
            failures.row(vec![
                failure.step.clone().into(),
                failure.reason.clone().into(),
                failure.count.to_string().into(),
            ]);
        }
        out.push_str(&failures.render(true, 2, style));
    }
    out.push_str("\n(durations: the upper bound of the histogram bucket they fall in)\n");
    out
}
