//! Golden output of every view at a fixed clock (`cargo insta review` after an intended change).

use super::describe::{Described, EventLine, JobLine};
use super::list::Layout;
use super::style::Style;
use super::summary::Summary;
use crate::args::SortKey;
use crew_api::CrewExecution;
use jiff::Timestamp;

fn now() -> Timestamp {
    "2026-11-29T12:00:00Z".parse().unwrap()
}

fn fixtures() -> Vec<CrewExecution> {
    serde_saphyr::from_str(include_str!("fixtures.yaml")).unwrap()
}

fn named(name: &str) -> CrewExecution {
    fixtures()
        .into_iter()
        .find(|cx| cx.metadata.name.as_deref() == Some(name))
        .unwrap()
}

fn summaries() -> Vec<Summary> {
    let mut rows: Vec<Summary> = fixtures().iter().map(|cx| Summary::of(cx, now())).collect();
    super::list::sort(&mut rows, None);
    rows
}

#[test]
fn list_table() {
    let text = super::list::render(
        &summaries(),
        Layout::default(),
        true,
        now(),
        Style::default(),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn list_table_all_namespaces_wide() {
    let layout = Layout {
        namespaces: true,
        wide: true,
    };
    let text = super::list::render(&summaries(), layout, true, now(), Style::default());
    insta::assert_snapshot!(text);
}

#[test]
fn list_sorted_by_duration_without_headers() {
    let mut rows = summaries();
    super::list::sort(&mut rows, Some(SortKey::Duration));
    let text = super::list::render(&rows, Layout::default(), false, now(), Style::default());
    insta::assert_snapshot!(text);
}

#[test]
fn describe_running() {
    let cx = named("report-42");
    let described = Described {
        cx: &cx,
        events: vec![
            EventLine {
                type_: "Normal".into(),
                reason: "Started".into(),
                last_seen: Some("2026-11-29T11:50:05Z".parse().unwrap()),
                count: 1,
                message: "step research, attempt 1: Job report-42-research-1 created".into(),
            },
            EventLine {
                type_: "Warning".into(),
                reason: "RetryBackoff".into(),
                last_seen: Some("2026-11-29T11:57:20Z".parse().unwrap()),
                count: 2,
                message: "step write attempt 1 failed: exit code 3".into(),
            },
        ],
        jobs: vec![
            JobLine {
                name: "report-42-research-1".into(),
                step: "research".into(),
                attempt: "1".into(),
                status: "Complete".into(),
                created: Some("2026-11-29T11:50:05Z".parse().unwrap()),
            },
            JobLine {
                name: "report-42-write-2".into(),
                step: "write".into(),
                attempt: "2".into(),
                status: "Running".into(),
                created: Some("2026-11-29T11:57:30Z".parse().unwrap()),
            },
        ],
        waiting: None,
        deliveries: vec![
            super::describe::DeliveryLine {
                sink: "audit".into(),
                state: "delivered".into(),
                error: None,
            },
            super::describe::DeliveryLine {
                sink: "slack".into(),
                state: "pending".into(),
                error: Some("the receiver answered 503: upstream unavailable".into()),
            },
        ],
    };
    insta::assert_snapshot!(super::describe::render(&described, now(), Style::default()));
}

#[test]
fn describe_queued_says_why_it_waits() {
    let cx = named("backfill-3");
    let line = fixtures();
    let waiting = super::waiting::waiting(&cx, &line, &Default::default(), Some(1), false);
    assert_eq!(waiting.position, 1);
    assert_eq!(waiting.holders, ["report-42"]);
    // Every fixture is listed, but `fresh` (team-b, no queue) waits in another line, as the operator counts.
    assert_eq!(waiting.waiting, 1);
    let described = Described {
        cx: &cx,
        events: vec![],
        jobs: vec![],
        waiting: Some(waiting),
        deliveries: vec![],
    };
    insta::assert_snapshot!(super::describe::render(&described, now(), Style::default()));
}

#[test]
fn describe_before_the_first_status() {
    let cx = named("fresh");
    let described = Described {
        cx: &cx,
        events: vec![],
        jobs: vec![],
        waiting: None,
        deliveries: vec![],
    };
    insta::assert_snapshot!(super::describe::render(&described, now(), Style::default()));
}

#[test]
fn history_table() {
    insta::assert_snapshot!(super::history::render(
        &named("report-42"),
        Style::default()
    ));
}

#[test]
fn history_of_a_finished_run() {
    insta::assert_snapshot!(super::history::render(&named("triage-7"), Style::default()));
}

#[test]
fn stats_text() {
    let stats = super::stats::compute(&fixtures(), "*", None, now());
    insta::assert_snapshot!(super::stats::render(&stats, Style::default()));
}

#[test]
fn stats_json() {
    let stats = super::stats::compute(
        &fixtures(),
        "team-a",
        Some(std::time::Duration::from_secs(3600)),
        now(),
    );
    insta::assert_snapshot!(serde_json::to_string_pretty(&stats).unwrap());
}

#[test]
fn watch_lines() {
    let rows = summaries();
    let text: String = rows
        .iter()
        .map(|s| format!("{}\n", super::watch::plain_line(s, now(), true)))
        .collect();
    insta::assert_snapshot!(text);
    assert_eq!(super::watch::tally(&rows, 0), "1 succeeded, 1 failed");
    assert_eq!(super::watch::verdict(&rows, 0), crate::error::Exit::Failed);
}

#[test]
fn bulk_dry_run() {
    use super::bulk::{Operation, dry_run_line};
    let text: String = [Operation::Cancel, Operation::Suspend, Operation::Resume]
        .iter()
        .flat_map(|op| {
            fixtures()
                .into_iter()
                .map(move |cx| format!("{}\n", dry_run_line(*op, &cx, true)))
        })
        .collect();
    insta::assert_snapshot!(text);
}
