//! `kubectl crew list`: one row per execution.

use super::bar::bar;
use super::style::{Style, phase_paint};
use super::summary::Summary;
use super::table::{Cell, Table};
use super::time::{exact, short};
use crate::args::SortKey;
use jiff::Timestamp;

/// Width of the bar in the PROGRESS column.
pub const BAR_WIDTH: usize = 10;

/// How the table is laid out.
#[derive(Clone, Copy, Debug, Default)]
pub struct Layout {
    /// A NAMESPACE column first (with `-A`).
    pub namespaces: bool,
    /// `-o wide`: PRIORITY, REASON and MESSAGE too.
    pub wide: bool,
}

/// The headers of `layout`.
pub fn headers(layout: Layout) -> Vec<&'static str> {
    let mut headers = Vec::new();
    if layout.namespaces {
        headers.push("NAMESPACE");
    }
    headers.extend([
        "NAME", "PHASE", "PROGRESS", "STEP", "ATTEMPT", "QUEUE", "DURATION", "AGE",
    ]);
    if layout.wide {
        headers.extend(["PRIORITY", "REASON", "MESSAGE"]);
    }
    headers
}

/// The cells of one row.
pub fn cells(s: &Summary, layout: Layout, now: Timestamp) -> Vec<Cell> {
    let dash = |text: &str| -> Cell {
        if text.is_empty() {
            Cell::from("-")
        } else {
            Cell::from(text)
        }
    };
    let mut cells = Vec::new();
    if layout.namespaces {
        cells.push(Cell::from(s.namespace.as_str()));
    }
    let phase = s.phase_text();
    cells.push(Cell::from(s.name.as_str()));
    cells.push(Cell::painted(phase, phase_paint(phase)));
    cells.push(Cell::from(format!(
        "{} {}/{}",
        bar(s.percent, 100, BAR_WIDTH),
        s.completed,
        s.total
    )));
    cells.push(dash(&s.step));
    cells.push(dash(&s.attempt.map(|a| a.to_string()).unwrap_or_default()));
    cells.push(dash(&s.queue));
    cells.push(dash(&s.duration.map(exact).unwrap_or_default()));
    cells.push(Cell::from(short(s.age(now))));
    if layout.wide {
        cells.push(Cell::from(s.priority.to_string()));
        cells.push(dash(&s.reason));
        cells.push(dash(&first_line(&s.message, 80)));
    }
    cells
}

/// The whole table.
pub fn render(
    summaries: &[Summary],
    layout: Layout,
    headers_shown: bool,
    now: Timestamp,
    style: Style,
) -> String {
    let mut table = Table::new(&headers(layout));
    for s in summaries {
        table.row(cells(s, layout, now));
    }
    table.render(headers_shown, 0, style)
}

/// Sorts rows by `key` (ties: namespace, then name), as `--sort-by` asks; the default is namespace, then name.
pub fn sort(summaries: &mut [Summary], key: Option<SortKey>) {
    summaries.sort_by(|a, b| {
        let by_key = match key {
            None | Some(SortKey::Name) => std::cmp::Ordering::Equal,
            Some(SortKey::Age) => b.created.cmp(&a.created),
            Some(SortKey::Phase) => a.phase_text().cmp(b.phase_text()),
            Some(SortKey::Duration) => b.duration.cmp(&a.duration),
            Some(SortKey::Progress) => (u64::from(b.completed) * u64::from(a.total.max(1)))
                .cmp(&(u64::from(a.completed) * u64::from(b.total.max(1)))),
            Some(SortKey::Priority) => b.priority.cmp(&a.priority),
            Some(SortKey::Queue) => a.queue.cmp(&b.queue),
        };
        let by_name = if key == Some(SortKey::Name) {
            a.name.cmp(&b.name).then(a.namespace.cmp(&b.namespace))
        } else {
            a.namespace.cmp(&b.namespace).then(a.name.cmp(&b.name))
        };
        by_key.then(by_name)
    });
}

/// The first line of `text`, at most `max` characters (an ellipsis marks a cut).
pub fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim_end();
    if line.chars().count() <= max {
        if text.lines().nth(1).is_some() {
            return format!("{line} …");
        }
        return line.to_string();
    }
    let cut: String = line.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}
