//! Statistics over a span: from the archive's rollups when the dashboard has an archive server (they outlive the
//! objects), else from the runs still in the cluster.

use super::Dashboard;
use super::failure::Failure;
use super::users::Caller;
use super::wire::{Failures, Figures, Period, QueueFigures, Stats};
use crate::archive::escape;
use crate::clock::now;
use crate::cluster::{EXECUTIONS, list_all};
use crate::error::Request;
use crate::slim::into_execution;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use crew_api::{CrewExecution, Phase, StepPhase};
use jiff::Timestamp;
use kube::Api;
use kube::api::ListParams;
use serde::Deserialize;
use std::collections::BTreeMap;

const DAY: i64 = 86_400;
/// The longest span asked for (the archive keeps daily rollups for as long as it keeps runs).
const MAX_SINCE: u64 = 366 * 86_400;

#[derive(Debug, Default, Deserialize)]
pub struct StatsQuery {
    #[serde(default)]
    namespace: Option<String>,
    /// `7d`, `24h`, `3600s`.
    #[serde(default)]
    since: Option<String>,
}

pub async fn figures(
    State(d): State<Dashboard>,
    c: Caller,
    Query(q): Query<StatsQuery>,
) -> Result<Json<serde_json::Value>, Failure> {
    let since = seconds_of(q.since.as_deref().unwrap_or("7d")).ok_or_else(|| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "since: a span like 30m, 24h or 7d (at most a year)",
        )
    })?;
    let namespace = q
        .namespace
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if let Some(archive) = &c.archive {
        let path = match namespace {
            Some(ns) => format!("/v1/namespaces/{}/stats?since={since}s", escape(ns)),
            None => format!("/v1/stats?since={since}s"),
        };
        let stats: crew_api::archive::Stats = archive.get_json(&path).await?;
        let answer = serde_json::to_value(of_archive(&stats, since))
            .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        return Ok(Json(answer));
    }
    // Each user's own answer: what one may read is not what another may.
    let key = format!("{}\0{}\0{since}", c.user, namespace.unwrap_or_default());
    let client = c.cluster.client.clone();
    let page = c.cluster.page;
    let answer = d
        .stats
        .clone()
        .get(&key, || async move {
            let api: Api<crate::slim::SlimExecution> = match namespace {
                Some(ns) => Api::namespaced(client, ns),
                None => Api::all(client),
            };
            let items = list_all(
                &api,
                ListParams::default().limit(page),
                Request::new("list", EXECUTIONS, namespace),
            )
            .await?;
            let executions: Vec<CrewExecution> = items.into_iter().map(into_execution).collect();
            serde_json::to_value(of_live(&executions, since, now()))
                .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        })
        .await?;
    Ok(Json(answer))
}

/// `30m`, `24h`, `7d`, `90s` in seconds (at most a year).
fn seconds_of(span: &str) -> Option<u64> {
    let unit_at = span.char_indices().last()?.0;
    let (number, unit) = span.split_at(unit_at);
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (1..=MAX_SINCE).contains(&seconds).then_some(seconds)
}

fn of_archive(stats: &crew_api::archive::Stats, since: u64) -> Stats {
    Stats {
        source: "archive",
        since_seconds: since,
        overall: stats.overall.clone(),
        by_period: stats
            .by_period
            .iter()
            .map(|(start, f)| Period {
                start: *start,
                figures: f.clone(),
            })
            .collect(),
        by_queue: stats
            .by_queue
            .iter()
            .map(|(queue, f)| QueueFigures {
                queue: queue.clone(),
                figures: f.clone(),
            })
            .collect(),
        failures: stats
            .failed_steps
            .iter()
            .map(|f| Failures {
                step: f.step.clone(),
                reason: f.reason.clone(),
                count: f.count,
            })
            .collect(),
    }
}

/// The figures of the runs in the cluster that finished within `since` of `now`, by day (by hour under two days).
pub fn of_live(executions: &[CrewExecution], since: u64, now: Timestamp) -> Stats {
    let cutoff = now.as_second() - since as i64;
    let bucket = if since < 2 * DAY as u64 { 3600 } else { DAY };
    let mut overall = Tally::default();
    let mut periods: BTreeMap<i64, Tally> = BTreeMap::new();
    let mut queues: BTreeMap<String, Tally> = BTreeMap::new();
    let mut failures: BTreeMap<(String, String), i64> = BTreeMap::new();
    for cx in executions {
        let Some(status) = &cx.status else { continue };
        let Some(phase) = status.phase.filter(|p| p.is_terminal()) else {
            continue;
        };
        let Some(finished) = status.completion_time.as_ref().map(|t| t.0.as_second()) else {
            continue;
        };
        if finished < cutoff {
            continue;
        }
        let duration = status.duration_seconds;
        overall.add(phase, duration);
        periods
            .entry(finished - finished.rem_euclid(bucket))
            .or_default()
            .add(phase, duration);
        queues
            .entry(cx.spec.queue.clone().unwrap_or_default())
            .or_default()
            .add(phase, duration);
        if phase == Phase::Failed {
            let step = status
                .steps
                .iter()
                .find(|s| s.phase == StepPhase::Failed)
                .map(|s| s.name.clone())
                .unwrap_or_default();
            let reason = status.reason.clone().unwrap_or_default();
            *failures.entry((step, reason)).or_default() += 1;
        }
    }
    let mut failures: Vec<Failures> = failures
        .into_iter()
        .map(|((step, reason), count)| Failures {
            step,
            reason,
            count,
        })
        .collect();
    failures.sort_by(|a, b| b.count.cmp(&a.count).then(a.step.cmp(&b.step)));
    Stats {
        source: "live",
        since_seconds: since,
        overall: overall.figures(),
        by_period: periods
            .into_iter()
            .filter_map(|(start, t)| {
                Some(Period {
                    start: Timestamp::from_second(start).ok()?,
                    figures: t.figures(),
                })
            })
            .collect(),
        by_queue: queues
            .into_iter()
            .map(|(queue, t)| QueueFigures {
                queue,
                figures: t.figures(),
            })
            .collect(),
        failures,
    }
}

/// Runs of a group, and their durations.
#[derive(Default)]
struct Tally {
    figures: Figures,
    durations: Vec<i64>,
}

impl Tally {
    fn add(&mut self, phase: Phase, duration: Option<i64>) {
        self.figures.total += 1;
        match phase {
            Phase::Succeeded => self.figures.succeeded += 1,
            Phase::Failed => self.figures.failed += 1,
            Phase::Cancelled => self.figures.cancelled += 1,
            _ => {}
        }
        self.durations.extend(duration);
    }

    fn figures(mut self) -> Figures {
        self.durations.sort_unstable();
        let n = self.durations.len();
        let at =
            |p: usize| (n > 0).then(|| self.durations[((n * p).div_ceil(100)).clamp(1, n) - 1]);
        self.figures.p50_seconds = at(50);
        self.figures.p95_seconds = at(95);
        self.figures.mean_seconds =
            (n > 0).then(|| self.durations.iter().sum::<i64>() as f64 / n as f64);
        self.figures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crew_api::{CrewExecutionSpec, CrewExecutionStatus, StepStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn finished(
        name: &str,
        phase: Phase,
        at: i64,
        seconds: i64,
        queue: Option<&str>,
    ) -> CrewExecution {
        let mut cx = CrewExecution::new(
            name,
            CrewExecutionSpec {
                queue: queue.map(str::to_string),
                ..Default::default()
            },
        );
        cx.status = Some(CrewExecutionStatus {
            phase: Some(phase),
            reason: (phase == Phase::Failed).then(|| "StepFailed".to_string()),
            completion_time: Some(Time(Timestamp::from_second(at).unwrap())),
            duration_seconds: Some(seconds),
            steps: vec![StepStatus {
                name: "fetch".into(),
                phase: if phase == Phase::Failed {
                    StepPhase::Failed
                } else {
                    StepPhase::Succeeded
                },
                ..Default::default()
            }],
            ..Default::default()
        });
        cx
    }

    #[test]
    fn live_runs_are_counted_by_day_queue_and_failed_step() {
        let now = Timestamp::from_second(10 * DAY).unwrap();
        let runs = vec![
            finished("a", Phase::Succeeded, 9 * DAY + 10, 10, Some("gpu")),
            finished("b", Phase::Succeeded, 9 * DAY + 20, 30, Some("gpu")),
            finished("c", Phase::Failed, 8 * DAY + 5, 20, None),
            finished("old", Phase::Failed, DAY, 5, None),
            {
                let mut running = finished("r", Phase::Running, 9 * DAY, 1, None);
                running.status.as_mut().unwrap().completion_time = None;
                running
            },
        ];
        let stats = of_live(&runs, 7 * DAY as u64, now);
        assert_eq!(stats.source, "live");
        assert_eq!(
            stats.overall.total, 3,
            "the old and the running run are left out"
        );
        assert_eq!((stats.overall.succeeded, stats.overall.failed), (2, 1));
        assert_eq!(stats.overall.p50_seconds, Some(20));
        assert_eq!(stats.overall.p95_seconds, Some(30));
        assert_eq!(stats.by_period.len(), 2);
        assert_eq!(
            stats.by_period[0].start,
            Timestamp::from_second(8 * DAY).unwrap()
        );
        assert_eq!(stats.by_period[1].figures.succeeded, 2);
        let queues: Vec<&str> = stats.by_queue.iter().map(|q| q.queue.as_str()).collect();
        assert_eq!(queues, ["", "gpu"]);
        assert_eq!(
            stats.failures,
            vec![Failures {
                step: "fetch".into(),
                reason: "StepFailed".into(),
                count: 1
            }]
        );
    }

    #[test]
    fn spans_are_checked() {
        assert_eq!(seconds_of("7d"), Some(7 * 86_400));
        assert_eq!(seconds_of("30m"), Some(1800));
        assert_eq!(seconds_of("0s"), None);
        assert_eq!(seconds_of("400d"), None);
        assert_eq!(seconds_of("7"), None);
        assert_eq!(seconds_of(""), None);
        assert_eq!(seconds_of("99999999999999999999d"), None);
        assert_eq!(
            seconds_of("1é"),
            None,
            "a unit of more than one byte is refused, not a panic"
        );
    }
}
