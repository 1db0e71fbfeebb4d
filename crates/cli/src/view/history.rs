//! `kubectl crew history`: every recorded transition, with the time spent in the phase it left.

use super::describe::transition;
use super::style::Style;
use super::table::{Cell, Table};
use super::time::{exact, seconds_between, stamp};
use crew_api::{CrewExecution, HistoryEntry, Phase};
use jiff::Timestamp;

/// Seconds spent in `entry.from` before `entry`, for each entry that changed the phase; `None` for step outcomes
/// that kept it, and when the entry into `from` was trimmed from the history (`spec.historyLimit`).
pub fn time_in_previous(history: &[HistoryEntry], created: Option<Timestamp>) -> Vec<Option<i64>> {
    let mut entered: Option<(Phase, Timestamp)> = created.map(|c| (Phase::Pending, c));
    history
        .iter()
        .map(|entry| {
            if entry.from == entry.to {
                return None;
            }
            let spent = match entered {
                Some((phase, since)) if phase == entry.from => {
                    Some(seconds_between(since, entry.time.0))
                }
                _ => None,
            };
            entered = Some((entry.to, entry.time.0));
            spent
        })
        .collect()
}

/// The history table.
pub fn render(cx: &CrewExecution, style: Style) -> String {
    let history = cx
        .status
        .as_ref()
        .map(|s| s.history.as_slice())
        .unwrap_or_default();
    if history.is_empty() {
        return "No history yet: the operator has not acted on this execution.\n".to_string();
    }
    let created = cx.metadata.creation_timestamp.as_ref().map(|t| t.0);
    // A history trimmed by `spec.historyLimit` no longer starts at Pending: its first stay is unknown.
    let created = created.filter(|_| history.first().is_some_and(|e| e.from == Phase::Pending));
    let spent = time_in_previous(history, created);
    let mut table = Table::new(&[
        "TIME",
        "TRANSITION",
        "REASON",
        "STEP",
        "IN PREVIOUS",
        "MESSAGE",
    ]);
    for (entry, spent) in history.iter().zip(spent) {
        table.row(vec![
            Cell::from(stamp(entry.time.0)),
            Cell::from(transition(entry.from.as_str(), entry.to.as_str())),
            Cell::from(entry.reason.as_str()),
            Cell::from(entry.step.clone().unwrap_or_else(|| "-".into())),
            Cell::from(spent.map(exact).unwrap_or_else(|| "-".into())),
            Cell::from(entry.message.clone().unwrap_or_else(|| "-".into())),
        ]);
    }
    table.render(true, 0, style)
}
