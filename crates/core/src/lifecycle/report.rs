//! What workers report about their own progress (`POST /v1/progress`), bounded and accumulated per step attempt,
//! and how it is folded into `status.steps[]`.
//!
//! The shell authenticates a report and maps it to its attempt; everything about its content is decided here:
//! percent clamped to 0–100 and never decreasing within an attempt, a message of at most
//! [`MAX_MESSAGE_CHARS`], at most [`MAX_METRICS`] metrics (the latest value of each), the last [`MAX_WARNINGS`]
//! warnings. An empty report is a heartbeat: it only moves the time of the last report.

use crew_api::{StepProgress, StepStatus};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeMap;

/// Longest progress message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 256;
/// Most distinct metrics one attempt may report.
pub const MAX_METRICS: usize = 32;
/// Longest metric name, in characters.
pub const MAX_METRIC_NAME_CHARS: usize = 63;
/// Warnings kept per attempt (the newest).
pub const MAX_WARNINGS: usize = 10;
/// Longest warning, in characters.
pub const MAX_WARNING_CHARS: usize = 256;

/// One report as a worker sent it (the JSON body of `POST /v1/progress`).
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerReport {
    /// Percent of the step done (clamped to 0–100).
    #[serde(default)]
    pub percent: Option<f64>,
    /// What the worker is doing.
    #[serde(default)]
    pub message: Option<String>,
    /// Custom figures by name.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Warnings to add.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Why a report is refused (HTTP 422: the worker must change what it sends).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("message has {0} characters; at most {MAX_MESSAGE_CHARS} are allowed")]
    MessageTooLong(usize),
    #[error("the attempt would report {0} metrics; at most {MAX_METRICS} are allowed")]
    TooManyMetrics(usize),
    #[error(
        "metric name {0:?} must be 1 to {MAX_METRIC_NAME_CHARS} characters of letters, digits, '_', '.' or '-'"
    )]
    BadMetricName(String),
    #[error("metric {0:?} is not a finite number")]
    NotFinite(String),
    #[error("percent is not a finite number")]
    BadPercent,
    #[error(
        "a report may carry at most {MAX_WARNINGS} warnings of at most {MAX_WARNING_CHARS} characters each"
    )]
    BadWarnings,
}

/// Everything one step attempt's worker has reported so far.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptReports {
    /// The step.
    pub step: String,
    /// The attempt (from 1).
    pub attempt: u32,
    /// Highest percent reported (0 before any).
    pub percent: u32,
    /// Whether any report carried a percent or a message (a heartbeat alone shows no progress).
    pub has_progress: bool,
    /// Latest message.
    pub message: Option<String>,
    /// Latest value of each metric.
    pub metrics: BTreeMap<String, f64>,
    /// The newest warnings, oldest first.
    pub warnings: Vec<String>,
    /// When the last report (a heartbeat included) arrived, on the operator's clock.
    pub last_report: Timestamp,
    /// Reports received for this attempt.
    pub reports: u64,
}

impl AttemptReports {
    /// No report yet for `step` attempt `attempt`.
    pub fn new(step: &str, attempt: u32, now: Timestamp) -> AttemptReports {
        AttemptReports {
            step: step.to_string(),
            attempt,
            percent: 0,
            has_progress: false,
            message: None,
            metrics: BTreeMap::new(),
            warnings: Vec::new(),
            last_report: now,
            reports: 0,
        }
    }

    /// Adds `report`, received at `now`; a refused report changes nothing.
    pub fn apply(&mut self, report: WorkerReport, now: Timestamp) -> Result<(), ReportError> {
        if let Some(message) = &report.message {
            let chars = message.chars().count();
            if chars > MAX_MESSAGE_CHARS {
                return Err(ReportError::MessageTooLong(chars));
            }
        }
        if report.warnings.len() > MAX_WARNINGS
            || report
                .warnings
                .iter()
                .any(|w| w.chars().count() > MAX_WARNING_CHARS)
        {
            return Err(ReportError::BadWarnings);
        }
        for (name, value) in &report.metrics {
            if !metric_name_ok(name) {
                return Err(ReportError::BadMetricName(name.clone()));
            }
            if !value.is_finite() {
                return Err(ReportError::NotFinite(name.clone()));
            }
        }
        let distinct = self
            .metrics
            .keys()
            .chain(report.metrics.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if distinct > MAX_METRICS {
            return Err(ReportError::TooManyMetrics(distinct));
        }
        let percent = match report.percent {
            Some(p) if !p.is_finite() => return Err(ReportError::BadPercent),
            Some(p) => Some(p.clamp(0.0, 100.0).floor() as u32),
            None => None,
        };
        if let Some(p) = percent {
            self.percent = self.percent.max(p);
            self.has_progress = true;
        }
        if let Some(message) = report.message {
            self.message = Some(message);
            self.has_progress = true;
        }
        self.metrics.extend(report.metrics);
        self.warnings.extend(report.warnings);
        let extra = self.warnings.len().saturating_sub(MAX_WARNINGS);
        self.warnings.drain(..extra);
        self.last_report = now;
        self.reports += 1;
        Ok(())
    }

    /// Writes what was reported into `step`, if it is this attempt's.
    pub fn fold_into(&self, step: &mut StepStatus) {
        if step.name != self.step || step.attempt != self.attempt {
            return;
        }
        let mut progress = step.progress.clone().unwrap_or_default();
        if self.has_progress {
            progress.percent = progress.percent.max(self.percent);
            if self.message.is_some() {
                progress.message = self.message.clone();
            }
        }
        progress.update_time = Some(Time(super::timefmt::whole_seconds(self.last_report)));
        step.progress = Some(progress);
        // The bound holds across operator restarts too: the book of a new replica knows nothing of the names the
        // status already has, so a new name joins only while there is room.
        for (name, value) in &self.metrics {
            if step.metrics.len() < MAX_METRICS || step.metrics.contains_key(name) {
                step.metrics.insert(name.clone(), *value);
            }
        }
        if !self.warnings.is_empty() {
            step.warnings = self.warnings.clone();
        }
    }
}

fn metric_name_ok(name: &str) -> bool {
    let chars = name.chars().count();
    (1..=MAX_METRIC_NAME_CHARS).contains(&chars)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The percent a step status shows (0 without a report).
pub fn step_percent(step: &StepStatus) -> u32 {
    step.progress
        .as_ref()
        .map_or(0, |p: &StepProgress| p.percent.min(100))
}

/// When the step's worker last reported, as written in the step's status.
pub fn written_report_time(step: &StepStatus) -> Option<Timestamp> {
    step.progress
        .as_ref()
        .and_then(|p| p.update_time.as_ref())
        .map(|t| t.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn report(json: &str) -> WorkerReport {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn percent_is_clamped_and_never_goes_back() {
        let mut r = AttemptReports::new("write", 1, at(0));
        r.apply(report(r#"{"percent": 45.7}"#), at(1)).unwrap();
        assert_eq!(r.percent, 45);
        r.apply(report(r#"{"percent": 30}"#), at(2)).unwrap();
        assert_eq!(r.percent, 45, "monotone within the attempt");
        r.apply(report(r#"{"percent": 250}"#), at(3)).unwrap();
        assert_eq!(r.percent, 100);
        r.apply(report(r#"{"percent": -5}"#), at(4)).unwrap();
        assert_eq!(r.percent, 100);
        assert_eq!(r.reports, 4);
    }

    #[test]
    fn a_heartbeat_moves_only_the_clock() {
        let mut r = AttemptReports::new("write", 1, at(0));
        r.apply(report("{}"), at(9)).unwrap();
        assert_eq!((r.has_progress, r.last_report), (false, at(9)));
        let mut step = StepStatus {
            name: "write".into(),
            attempt: 1,
            ..Default::default()
        };
        r.fold_into(&mut step);
        let progress = step.progress.unwrap();
        assert_eq!(progress.percent, 0);
        assert_eq!(progress.update_time.unwrap().0, at(9));
    }

    #[test]
    fn bounds_are_enforced_and_a_refusal_changes_nothing() {
        let mut r = AttemptReports::new("s", 1, at(0));
        let long = "x".repeat(257);
        assert_eq!(
            r.apply(report(&format!(r#"{{"message": "{long}"}}"#)), at(1)),
            Err(ReportError::MessageTooLong(257))
        );
        let many: BTreeMap<String, f64> = (0..33).map(|i| (format!("m{i}"), 1.0)).collect();
        let too_many = WorkerReport {
            metrics: many,
            ..Default::default()
        };
        assert_eq!(
            r.apply(too_many, at(1)),
            Err(ReportError::TooManyMetrics(33))
        );
        assert!(matches!(
            r.apply(report(r#"{"metrics": {"bad name": 1}}"#), at(1)),
            Err(ReportError::BadMetricName(_))
        ));
        assert!(serde_json::from_str::<WorkerReport>(r#"{"percent": 5, "extra": 1}"#).is_err());
        assert_eq!(r.reports, 0);
        // 32 distinct over several reports are fine; the 33rd is refused.
        for i in 0..32 {
            r.apply(report(&format!(r#"{{"metrics": {{"m{i}": {i}}}}}"#)), at(2))
                .unwrap();
        }
        r.apply(report(r#"{"metrics": {"m3": 30}}"#), at(3))
            .unwrap();
        assert_eq!(r.metrics["m3"], 30.0);
        assert!(
            r.apply(report(r#"{"metrics": {"m99": 1}}"#), at(4))
                .is_err()
        );
    }

    #[test]
    fn the_last_ten_warnings_are_kept() {
        let mut r = AttemptReports::new("s", 1, at(0));
        for i in 0..13 {
            r.apply(report(&format!(r#"{{"warnings": ["w{i}"]}}"#)), at(i))
                .unwrap();
        }
        assert_eq!(r.warnings.len(), 10);
        assert_eq!(r.warnings[0], "w3");
        assert_eq!(r.warnings[9], "w12");
    }

    #[test]
    fn folding_touches_only_the_same_attempt() {
        let mut r = AttemptReports::new("write", 2, at(0));
        r.apply(
            report(r#"{"percent": 40, "message": "chapter 4", "metrics": {"pages": 12}}"#),
            at(5),
        )
        .unwrap();
        let mut older = StepStatus {
            name: "write".into(),
            attempt: 1,
            ..Default::default()
        };
        r.fold_into(&mut older);
        assert_eq!(older.progress, None);
        let mut current = StepStatus {
            name: "write".into(),
            attempt: 2,
            ..Default::default()
        };
        r.fold_into(&mut current);
        let progress = current.progress.clone().unwrap();
        assert_eq!(
            (progress.percent, progress.message.as_deref()),
            (40, Some("chapter 4"))
        );
        assert_eq!(current.metrics["pages"], 12.0);
        assert_eq!(step_percent(&current), 40);
        assert_eq!(written_report_time(&current), Some(at(5)));
    }

    /// Review finding 13: the metric bound was checked against the book only, so after each operator restart a
    /// worker could add 32 more names to its step's status.
    #[test]
    fn metrics_stay_bounded_across_a_restart() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut step = StepStatus {
            name: "a".into(),
            attempt: 1,
            metrics: (0..MAX_METRICS).map(|i| (format!("old{i}"), 1.0)).collect(),
            ..Default::default()
        };
        // A new replica's book: empty before this report.
        let mut book = AttemptReports::new("a", 1, now);
        let report = WorkerReport {
            metrics: (0..MAX_METRICS - 1)
                .map(|i| (format!("new{i}"), 2.0))
                .chain([("old0".to_string(), 3.0)])
                .collect(),
            ..Default::default()
        };
        book.apply(report, now).unwrap();
        book.fold_into(&mut step);
        assert_eq!(step.metrics.len(), MAX_METRICS, "no room for a new name");
        assert_eq!(
            step.metrics.get("old0"),
            Some(&3.0),
            "a known name is updated"
        );
        assert!(!step.metrics.contains_key("new0"));
    }
}
