//! `kubectl crew stats`: totals by phase, success rate, durations, slowest steps, top failure reasons.

use super::style::Style;
use super::summary::Summary;
use super::table::{Cell, Table};
use super::time::exact;
use crew_api::{CrewExecution, Phase};
use crew_core::lifecycle::queue_stats::percentile;
use jiff::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;

/// How many slowest steps and failure reasons are listed.
pub const TOP: usize = 5;

/// The figures, also printed as JSON with `-o json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// The namespace, or `*` for every namespace.
    pub scope: String,
    /// Only executions created within this many seconds (`--since`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_seconds: Option<u64>,
    pub total: usize,
    /// Executions per phase (every phase, zeros included).
    pub phases: BTreeMap<String, usize>,
    /// Succeeded, Failed or Cancelled.
    pub finished: usize,
    /// Percent of finished executions that succeeded (one decimal); unset before any finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<f64>,
    pub running: usize,
    pub queued: usize,
    /// Durations of finished executions, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<Spread>,
    /// Steps by their 95th percentile duration, slowest first.
    pub slowest_steps: Vec<StepSpread>,
    /// Reasons of Failed executions, most frequent first.
    pub failure_reasons: Vec<ReasonCount>,
}

/// Mean, median, 95th percentile and maximum, in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spread {
    pub count: usize,
    pub mean: u64,
    pub p50: u64,
    pub p95: u64,
    pub max: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepSpread {
    pub step: String,
    #[serde(flatten)]
    pub spread: Spread,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasonCount {
    pub reason: String,
    pub count: usize,
}

fn spread(mut values: Vec<u64>) -> Option<Spread> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let sum: u64 = values.iter().sum();
    Some(Spread {
        count: values.len(),
        mean: sum / values.len() as u64,
        p50: percentile(&values, 50).unwrap_or(0),
        p95: percentile(&values, 95).unwrap_or(0),
        max: values.last().copied().unwrap_or(0),
    })
}

/// The figures over `executions` (already filtered by selector, queue and phase), keeping those created within
/// `since` of `now`.
pub fn compute(
    executions: &[CrewExecution],
    scope: &str,
    since: Option<std::time::Duration>,
    now: Timestamp,
) -> Stats {
    let cutoff = since.map(|s| now.as_second() - s.as_secs() as i64);
    let mut stats = Stats {
        scope: scope.to_string(),
        since_seconds: since.map(|s| s.as_secs()),
        phases: Phase::ALL
            .iter()
            .map(|p| (p.as_str().to_string(), 0))
            .collect(),
        ..Default::default()
    };
    let mut durations = Vec::new();
    let mut steps: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for cx in executions {
        let s = Summary::of(cx, now);
        if let Some(cutoff) = cutoff
            && s.created.is_none_or(|c| c.as_second() < cutoff)
        {
            continue;
        }
        stats.total += 1;
        *stats.phases.entry(s.phase_text().to_string()).or_default() += 1;
        match s.phase {
            Some(Phase::Running) => stats.running += 1,
            Some(Phase::Queued) => stats.queued += 1,
            _ => {}
        }
        if s.is_terminal() {
            stats.finished += 1;
            if let Some(d) = s.duration {
                durations.push(d.max(0) as u64);
            }
        }
        if s.phase == Some(Phase::Failed) {
            let reason = if s.reason.is_empty() {
                "Unknown".into()
            } else {
                s.reason.clone()
            };
            *reasons.entry(reason).or_default() += 1;
        }
        for step in cx.status.iter().flat_map(|st| &st.steps) {
            if let Some(d) = step.duration_seconds {
                steps
                    .entry(step.name.clone())
                    .or_default()
                    .push(d.max(0) as u64);
            }
        }
    }
    let succeeded = stats.phases.get("Succeeded").copied().unwrap_or(0);
    if stats.finished > 0 {
        let rate = 1000.0 * succeeded as f64 / stats.finished as f64;
        stats.success_rate = Some(rate.round() / 10.0);
    }
    stats.duration = spread(durations);
    let mut slowest: Vec<StepSpread> = steps
        .into_iter()
        .filter_map(|(step, values)| spread(values).map(|spread| StepSpread { step, spread }))
        .collect();
    slowest.sort_by(|a, b| b.spread.p95.cmp(&a.spread.p95).then(a.step.cmp(&b.step)));
    slowest.truncate(TOP);
    stats.slowest_steps = slowest;
    let mut reasons: Vec<ReasonCount> = reasons
        .into_iter()
        .map(|(reason, count)| ReasonCount { reason, count })
        .collect();
    reasons.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
    reasons.truncate(TOP);
    stats.failure_reasons = reasons;
    stats
}

/// The figures as text.
pub fn render(stats: &Stats, style: Style) -> String {
    let mut out = String::new();
    let scope = if stats.scope == "*" {
        "every namespace".to_string()
    } else {
        format!("namespace {}", stats.scope)
    };
    let window = stats
        .since_seconds
        .map(|s| format!(", created in the last {}", exact(s as i64)))
        .unwrap_or_default();
    out.push_str(&format!(
        "Executions:     {} ({scope}{window})\n",
        stats.total
    ));
    let phases: Vec<String> = Phase::ALL
        .iter()
        .filter_map(|p| {
            let n = stats.phases.get(p.as_str()).copied().unwrap_or(0);
            (n > 0).then(|| format!("{p} {n}"))
        })
        .collect();
    if !phases.is_empty() {
        out.push_str(&format!("By phase:       {}\n", phases.join(", ")));
    }
    let succeeded = stats.phases.get("Succeeded").copied().unwrap_or(0);
    match stats.success_rate {
        Some(rate) => out.push_str(&format!(
            "Success rate:   {rate:.1}% ({succeeded} of {} finished)\n",
            stats.finished
        )),
        None => out.push_str("Success rate:   - (none finished)\n"),
    }
    out.push_str(&format!(
        "Now:            {} running, {} queued\n",
        stats.running, stats.queued
    ));
    match &stats.duration {
        Some(d) => out.push_str(&format!(
            "Duration:       mean {}, p50 {}, p95 {}, max {} (over {} finished)\n",
            exact(d.mean as i64),
            exact(d.p50 as i64),
            exact(d.p95 as i64),
            exact(d.max as i64),
            d.count
        )),
        None => out.push_str("Duration:       -\n"),
    }
    out.push_str("\nSlowest steps (by p95):\n");
    if stats.slowest_steps.is_empty() {
        out.push_str("  <none>\n");
    } else {
        let mut table = Table::new(&["STEP", "RUNS", "P50", "P95", "MAX"]);
        for s in &stats.slowest_steps {
            table.row(vec![
                Cell::from(s.step.as_str()),
                Cell::from(s.spread.count.to_string()),
                Cell::from(exact(s.spread.p50 as i64)),
                Cell::from(exact(s.spread.p95 as i64)),
                Cell::from(exact(s.spread.max as i64)),
            ]);
        }
        out.push_str(&table.render(true, 2, style));
    }
    out.push_str("\nTop failure reasons:\n");
    if stats.failure_reasons.is_empty() {
        out.push_str("  <none>\n");
    } else {
        let mut table = Table::new(&["REASON", "COUNT"]);
        for r in &stats.failure_reasons {
            table.row(vec![
                Cell::from(r.reason.as_str()),
                Cell::from(r.count.to_string()),
            ]);
        }
        out.push_str(&table.render(true, 2, style));
    }
    out
}
