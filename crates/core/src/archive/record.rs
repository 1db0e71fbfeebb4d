//! What the archive stores of one execution, read from the object alone: the typed columns users filter on, one
//! row per step attempt, the labels, where its posted results are, and the object itself.

use crew_api::{CrewExecution, HistoryEntry, Phase, Reason, StepPhase, StepStatus};
use jiff::Timestamp;
use kube_core::ResourceExt;

/// One execution as archived.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchiveRecord {
    /// `metadata.uid`: the row's identity (a name is reused; a uid never is).
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.resourceVersion` as a number (etcd's revision): a snapshot with a higher one is newer. 0 when it
    /// is not a number (then any later snapshot of the same uid replaces it).
    pub resource_version: i64,
    /// The phase, or the last phase it had when it was deleted before it finished.
    pub phase: Phase,
    /// `status.reason`.
    pub reason: Option<String>,
    /// `status.message`.
    pub message: Option<String>,
    /// The step whose failure failed the run.
    pub failed_step: Option<String>,
    /// `spec.queue`.
    pub queue: Option<String>,
    /// `spec.priority`.
    pub priority: i32,
    /// `metadata.labels`.
    pub labels: Vec<(String, String)>,
    /// `metadata.creationTimestamp`.
    pub created: Option<Timestamp>,
    /// When its first step started.
    pub started: Option<Timestamp>,
    /// When it finished; for a run deleted before it finished, when it was deleted.
    pub finished: Option<Timestamp>,
    /// Seconds from start to finish.
    pub duration_seconds: Option<i64>,
    /// Seconds from creation to the first step's start.
    pub queue_wait_seconds: Option<i64>,
    /// Attempts over all steps.
    pub attempts: i32,
    /// Steps the run has.
    pub steps_total: i32,
    /// Steps that succeeded.
    pub steps_succeeded: i32,
    /// It was deleted before it finished (archived with its last state).
    pub deleted_before_finishing: bool,
    /// One row per step attempt the object records.
    pub steps: Vec<StepRecord>,
    /// The posted results to archive with it (the shell reads each ConfigMap).
    pub results: Vec<ResultLocation>,
    /// The object, without `managedFields`.
    pub object: serde_json::Value,
}

/// One attempt of one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRecord {
    /// Step name.
    pub name: String,
    /// 1-based attempt.
    pub attempt: i32,
    /// Its phase (an earlier attempt read from history is `Failed`).
    pub phase: StepPhase,
    /// The worker's exit code (the latest attempt only).
    pub exit_code: Option<i32>,
    /// Why it ended as it did (a reason of the history, or the latest attempt's message).
    pub reason: Option<String>,
    /// The failure or result message.
    pub message: Option<String>,
    /// When it started.
    pub started: Option<Timestamp>,
    /// When it ended.
    pub finished: Option<Timestamp>,
    /// The attempt's Job (the latest attempt only; earlier ones are named in history).
    pub job_name: Option<String>,
}

/// Where one step's posted result is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultLocation {
    /// Step name.
    pub step: String,
    /// The ConfigMap holding it.
    pub config_map: String,
    /// Its SHA-256 as the status records it.
    pub sha256: String,
    /// Its content type.
    pub content_type: String,
}

impl ArchiveRecord {
    /// The record of `cx` as it is now (the shell archives it once it finished, or once it is being deleted).
    pub fn of(cx: &CrewExecution) -> ArchiveRecord {
        let status = cx.status.clone().unwrap_or_default();
        let phase = status.phase.unwrap_or_default();
        let deleted_before_finishing =
            cx.metadata.deletion_timestamp.is_some() && !phase.is_terminal();
        let created = cx.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let started = status.start_time.as_ref().map(|t| t.0);
        let finished = status.completion_time.as_ref().map(|t| t.0).or_else(|| {
            deleted_before_finishing
                .then(|| cx.metadata.deletion_timestamp.as_ref().map(|t| t.0))
                .flatten()
        });
        let seconds = |from: Option<Timestamp>, to: Option<Timestamp>| {
            Some(to?.duration_since(from?).as_secs().max(0))
        };
        let mut object = serde_json::to_value(cx).unwrap_or(serde_json::Value::Null);
        if let Some(metadata) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            metadata.remove("managedFields");
        }
        without_nul(&mut object);
        ArchiveRecord {
            uid: cx.uid().unwrap_or_default(),
            namespace: cx.namespace().unwrap_or_default(),
            name: cx.name_any(),
            resource_version: cx
                .resource_version()
                .and_then(|rv| rv.parse().ok())
                .unwrap_or(0),
            phase,
            reason: status.reason.as_deref().map(clean),
            message: status.message.as_deref().map(clean),
            failed_step: failed_step(&status.steps, phase),
            queue: cx.spec.queue.clone(),
            priority: cx.spec.priority,
            labels: cx
                .labels()
                .iter()
                .map(|(k, v)| (clean(k), clean(v)))
                .collect(),
            created,
            started,
            finished,
            duration_seconds: status
                .duration_seconds
                .or_else(|| seconds(started, finished)),
            queue_wait_seconds: seconds(created, started),
            attempts: status.steps.iter().map(|s| s.attempt as i32).sum(),
            steps_total: status.steps.len() as i32,
            steps_succeeded: status
                .steps
                .iter()
                .filter(|s| s.phase == StepPhase::Succeeded)
                .count() as i32,
            deleted_before_finishing,
            steps: status
                .steps
                .iter()
                .enumerate()
                .flat_map(|(i, step)| {
                    // A step's first attempt starts as the step before it ends (the run's start for the first):
                    // the operator records no StepStarted for it.
                    let handed_over = match i {
                        0 => status.start_time.as_ref(),
                        _ => status.steps[i - 1].completion_time.as_ref(),
                    };
                    attempts_of(step, &status.history, handed_over.map(|t| t.0))
                })
                .collect(),
            results: status
                .steps
                .iter()
                .filter_map(|step| {
                    let reference = step.result_ref.as_ref()?;
                    Some(ResultLocation {
                        step: step.name.clone(),
                        config_map: reference.config_map.clone(),
                        sha256: reference.sha256.clone(),
                        content_type: reference.content_type.clone(),
                    })
                })
                .collect(),
            object,
        }
    }
}

/// PostgreSQL refuses the NUL character in `text` and `jsonb`, which Kubernetes accepts (a worker's termination
/// message may hold one): every string is stored with U+FFFD in its place, or the run could never be archived.
pub fn without_nul(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) if text.contains('\0') => {
            *text = text.replace('\0', "\u{FFFD}")
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(without_nul),
        serde_json::Value::Object(map) => {
            let keys: Vec<String> = map.keys().filter(|k| k.contains('\0')).cloned().collect();
            for key in keys {
                if let Some(moved) = map.remove(&key) {
                    map.insert(key.replace('\0', "\u{FFFD}"), moved);
                }
            }
            map.values_mut().for_each(without_nul);
        }
        _ => {}
    }
}

fn clean(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// The step whose failure failed the run: the failed one (or the first, when several did).
fn failed_step(steps: &[StepStatus], phase: Phase) -> Option<String> {
    if phase != Phase::Failed {
        return None;
    }
    steps
        .iter()
        .find(|s| s.phase == StepPhase::Failed)
        .map(|s| s.name.clone())
}

/// The attempts of `step`: the earlier ones from history (each failed: only a failed attempt is retried, and the
/// operator records it as `RetryScheduled`), the latest from the step's status. A retry's start is its
/// `StepStarted`; the first attempt's is `first_start` (when the step before it ended). Earlier attempts that
/// history no longer holds (`historyLimit`) are left out.
fn attempts_of(
    step: &StepStatus,
    history: &[HistoryEntry],
    first_start: Option<Timestamp>,
) -> Vec<StepRecord> {
    if step.attempt == 0 {
        return Vec::new();
    }
    let latest_start = step.start_time.as_ref().map(|t| t.0);
    // The entries of `reason` for this step before the latest attempt started, the newest `earlier` of them.
    let earlier = step.attempt as usize - 1;
    let before_latest = |reason: Reason| {
        let entries: Vec<&HistoryEntry> = history
            .iter()
            .filter(|e| {
                e.step.as_deref() == Some(step.name.as_str()) && e.reason == reason.as_str()
            })
            // The latest attempt's own start is not an earlier one; a failure may share its second.
            .filter(|e| {
                latest_start.is_none_or(|start| {
                    e.time.0 < start || (reason == Reason::RetryScheduled && e.time.0 == start)
                })
            })
            .collect();
        let skip = entries.len().saturating_sub(earlier);
        entries.into_iter().skip(skip).collect::<Vec<_>>()
    };
    let (starts, failures) = (
        before_latest(Reason::StepStarted),
        before_latest(Reason::RetryScheduled),
    );
    // Numbered back from the latest attempt: the newest failure is attempt `attempt - 1`.
    let first = step.attempt as usize - failures.len();
    let mut rows: Vec<StepRecord> = failures
        .iter()
        .enumerate()
        .map(|(i, failure)| StepRecord {
            name: step.name.clone(),
            attempt: (first + i) as i32,
            phase: StepPhase::Failed,
            exit_code: None,
            reason: Some(Reason::StepFailed.as_str().to_string()),
            message: failure.message.as_deref().map(clean),
            started: (starts.len() + i)
                .checked_sub(failures.len())
                .and_then(|j| starts.get(j))
                .map(|e| e.time.0)
                .or(if first + i == 1 { first_start } else { None }),
            finished: Some(failure.time.0),
            job_name: None,
        })
        .collect();
    rows.push(StepRecord {
        name: step.name.clone(),
        attempt: step.attempt as i32,
        phase: step.phase,
        exit_code: step.exit_code,
        reason: None,
        message: step.message.as_deref().map(clean),
        started: latest_start,
        finished: step.completion_time.as_ref().map(|t| t.0),
        job_name: step.job_name.clone(),
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crew_api::{CrewExecutionSpec, CrewExecutionStatus, ResultRef, StepSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + second).unwrap())
    }

    fn entry(second: i64, reason: Reason, step: &str, message: &str) -> HistoryEntry {
        HistoryEntry {
            time: at(second),
            from: Phase::Running,
            to: Phase::Running,
            reason: reason.as_str().into(),
            message: Some(message.into()),
            step: Some(step.into()),
        }
    }

    /// `fetch` succeeded at once; `train` failed twice (exit 3 the second time) and the run failed; `report`
    /// never ran.
    fn failed_run() -> CrewExecution {
        let mut cx = CrewExecution::new(
            "nightly",
            CrewExecutionSpec {
                steps: vec![StepSpec {
                    name: "fetch".into(),
                    ..Default::default()
                }],
                queue: Some("gpu".into()),
                priority: 7,
                ..Default::default()
            },
        );
        cx.metadata.namespace = Some("team-a".into());
        cx.metadata.uid = Some("uid-1".into());
        cx.metadata.resource_version = Some("4711".into());
        cx.metadata.creation_timestamp = Some(at(0));
        cx.metadata.labels = Some([("app".to_string(), "ml".to_string())].into());
        cx.metadata.managed_fields = Some(vec![Default::default()]);
        cx.status = Some(CrewExecutionStatus {
            phase: Some(Phase::Failed),
            reason: Some("RetriesExhausted".into()),
            start_time: Some(at(4)),
            completion_time: Some(at(60)),
            steps: vec![
                StepStatus {
                    name: "fetch".into(),
                    phase: StepPhase::Succeeded,
                    attempt: 1,
                    job_name: Some("nightly-fetch-1".into()),
                    start_time: Some(at(4)),
                    completion_time: Some(at(10)),
                    exit_code: Some(0),
                    result_ref: Some(ResultRef {
                        config_map: "nightly-result-ab".into(),
                        size: 2,
                        sha256: "00".repeat(32),
                        content_type: "application/json".into(),
                    }),
                    ..Default::default()
                },
                StepStatus {
                    name: "train".into(),
                    phase: StepPhase::Failed,
                    attempt: 2,
                    job_name: Some("nightly-train-2".into()),
                    start_time: Some(at(30)),
                    completion_time: Some(at(60)),
                    exit_code: Some(3),
                    message: Some("out of memory".into()),
                    ..Default::default()
                },
                StepStatus {
                    name: "report".into(),
                    ..Default::default()
                },
            ],
            // As the operator writes it: no StepStarted for a step's first attempt (the step before it ends in the
            // same write), a retried failure is RetryScheduled, the last one ends the run.
            history: vec![
                entry(4, Reason::Started, "fetch", "started at step fetch"),
                entry(10, Reason::StepSucceeded, "fetch", "next: step train"),
                entry(20, Reason::RetryScheduled, "train", "exit code 1"),
                entry(30, Reason::StepStarted, "train", "attempt 2"),
                entry(60, Reason::RetriesExhausted, "train", "out of memory"),
            ],
            ..Default::default()
        });
        cx
    }

    #[test]
    fn a_failed_run_reads_as_its_columns() {
        let record = ArchiveRecord::of(&failed_run());
        assert_eq!(
            (
                record.uid.as_str(),
                record.namespace.as_str(),
                record.name.as_str()
            ),
            ("uid-1", "team-a", "nightly")
        );
        assert_eq!(record.resource_version, 4711);
        assert_eq!(record.phase, Phase::Failed);
        assert_eq!(record.failed_step.as_deref(), Some("train"));
        assert_eq!(record.queue.as_deref(), Some("gpu"));
        assert_eq!(record.priority, 7);
        assert_eq!(record.labels, [("app".to_string(), "ml".to_string())]);
        assert_eq!(record.queue_wait_seconds, Some(4));
        assert_eq!(record.duration_seconds, Some(56));
        assert_eq!(record.attempts, 3);
        assert_eq!((record.steps_total, record.steps_succeeded), (3, 1));
        assert!(!record.deleted_before_finishing);
        assert_eq!(record.results.len(), 1);
        assert_eq!(record.results[0].config_map, "nightly-result-ab");
        assert!(record.object["metadata"].get("managedFields").is_none());
        assert_eq!(record.object["metadata"]["name"], "nightly");
    }

    #[test]
    fn each_attempt_is_a_row_earlier_ones_from_history() {
        let record = ArchiveRecord::of(&failed_run());
        let rows: Vec<(&str, i32, StepPhase, Option<i32>)> = record
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.attempt, s.phase, s.exit_code))
            .collect();
        assert_eq!(
            rows,
            [
                ("fetch", 1, StepPhase::Succeeded, Some(0)),
                ("train", 1, StepPhase::Failed, None),
                ("train", 2, StepPhase::Failed, Some(3)),
            ]
        );
        let first = &record.steps[1];
        assert_eq!(first.started, Some(at(10).0), "as the step before it ended");
        assert_eq!(first.finished, Some(at(20).0));
        assert_eq!(first.message.as_deref(), Some("exit code 1"));
        assert_eq!(record.steps[2].job_name.as_deref(), Some("nightly-train-2"));
    }

    #[test]
    fn a_truncated_history_keeps_only_the_attempts_it_holds() {
        let mut cx = failed_run();
        let status = cx.status.as_mut().unwrap();
        status.steps[1].attempt = 3;
        // Attempt 1's entries are gone; attempt 2's remain.
        status.history.drain(0..3);
        status
            .history
            .insert(0, entry(20, Reason::RetryScheduled, "train", "exit code 2"));
        status
            .history
            .insert(0, entry(12, Reason::StepStarted, "train", "attempt 2"));
        let record = ArchiveRecord::of(&cx);
        let train: Vec<(i32, Option<Timestamp>)> = record
            .steps
            .iter()
            .filter(|s| s.name == "train")
            .map(|s| (s.attempt, s.started))
            .collect();
        assert_eq!(train, [(2, Some(at(12).0)), (3, Some(at(30).0))]);
    }

    #[test]
    fn a_run_deleted_before_it_finished_keeps_its_last_phase_and_ends_at_deletion() {
        let mut cx = failed_run();
        let status = cx.status.as_mut().unwrap();
        status.phase = Some(Phase::Running);
        status.completion_time = None;
        status.duration_seconds = None;
        cx.metadata.deletion_timestamp = Some(at(100));
        let record = ArchiveRecord::of(&cx);
        assert!(record.deleted_before_finishing);
        assert_eq!(record.phase, Phase::Running);
        assert_eq!(record.failed_step, None);
        assert_eq!(record.finished, Some(at(100).0));
        assert_eq!(record.duration_seconds, Some(96));
    }

    #[test]
    fn nul_characters_are_replaced_wherever_they_are() {
        let mut cx = failed_run();
        let status = cx.status.as_mut().unwrap();
        status.message = Some("bad\0byte".into());
        status.steps[1].message = Some("exit\0".into());
        cx.metadata.annotations = Some([("note".to_string(), "a\0b".to_string())].into());
        let record = ArchiveRecord::of(&cx);
        assert_eq!(record.message.as_deref(), Some("bad\u{FFFD}byte"));
        assert_eq!(record.steps[2].message.as_deref(), Some("exit\u{FFFD}"));
        assert!(
            !serde_json::to_string(&record.object)
                .unwrap()
                .contains("\\u0000")
        );
        assert_eq!(
            record.object["metadata"]["annotations"]["note"],
            "a\u{FFFD}b"
        );
    }

    #[test]
    fn an_unnumbered_resource_version_reads_as_zero() {
        let mut cx = failed_run();
        cx.metadata.resource_version = Some("abc".into());
        assert_eq!(ArchiveRecord::of(&cx).resource_version, 0);
    }
}
