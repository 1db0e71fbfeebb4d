//! What a simulated pod does: per-pod overrides read from its annotations, combined with the simulator's
//! defaults and the pod's `crew.dev/attempt` label into a [`Plan`]. Pure; bad values become warnings.

use super::duration::parse_duration;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long the pod runs before it terminates (`2s`, `250ms`, `0`; see [`parse_duration`]).
pub const ANNOTATION_DURATION: &str = "sim.crew.dev/duration";
/// Exit code of the containers (decimal `i32`): 0 makes the pod `Succeeded`, anything else `Failed`.
pub const ANNOTATION_EXIT_CODE: &str = "sim.crew.dev/exit-code";
/// Termination message of the containers (the worker's result), verbatim.
pub const ANNOTATION_MESSAGE: &str = "sim.crew.dev/message";
/// `N`: attempts `<= N` (by the `crew.dev/attempt` label) fail, later attempts succeed with exit code 0.
pub const ANNOTATION_FAIL_ATTEMPTS: &str = "sim.crew.dev/fail-attempts";
/// `true`: the pod goes `Running` and never terminates.
pub const ANNOTATION_HANG: &str = "sim.crew.dev/hang";
/// Label carrying the 1-based attempt number of the step the pod runs.
pub const ATTEMPT_LABEL: &str = "crew.dev/attempt";

/// Exit code of a failing attempt under `fail-attempts` when no non-zero `exit-code` is given.
pub const FAIL_ATTEMPT_EXIT_CODE: i32 = 1;

/// The simulator-wide defaults a pod's annotations override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// Run time when the pod has no valid `sim.crew.dev/duration`.
    pub duration: Duration,
    /// Exit code when the pod has no valid `sim.crew.dev/exit-code`.
    pub exit_code: i32,
}

/// The `sim.crew.dev/*` annotations of one pod, parsed. `None` = absent or invalid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `sim.crew.dev/duration`.
    pub duration: Option<Duration>,
    /// `sim.crew.dev/exit-code`.
    pub exit_code: Option<i32>,
    /// `sim.crew.dev/message` (an empty value counts as absent).
    pub message: Option<String>,
    /// `sim.crew.dev/fail-attempts`.
    pub fail_attempts: Option<u32>,
    /// `sim.crew.dev/hang`.
    pub hang: bool,
}

/// How the pod ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// All containers terminate with this exit code and termination message.
    Exit {
        /// 0 = `Succeeded`, else `Failed`.
        code: i32,
        /// Termination message, if any.
        message: Option<String>,
    },
    /// Stays `Running` forever.
    Hang,
}

/// Everything the simulator does with one pod once it is `Running`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Time from `Running` to termination (unused for [`Outcome::Hang`]).
    pub duration: Duration,
    /// The end.
    pub outcome: Outcome,
}

/// Parses the `sim.crew.dev/*` annotations; each invalid value is skipped with a warning.
pub fn parse_overrides(annotations: &BTreeMap<String, String>) -> (Overrides, Vec<String>) {
    let mut warnings = Vec::new();
    let mut overrides = Overrides::default();

    if let Some(raw) = annotations.get(ANNOTATION_DURATION) {
        match parse_duration(raw) {
            Ok(d) => overrides.duration = Some(d),
            Err(e) => warnings.push(format!("{ANNOTATION_DURATION}: {e}; using the default")),
        }
    }
    if let Some(raw) = annotations.get(ANNOTATION_EXIT_CODE) {
        match raw.trim().parse::<i32>() {
            Ok(code) => overrides.exit_code = Some(code),
            Err(_) => warnings.push(format!(
                "{ANNOTATION_EXIT_CODE}: {raw:?} is not an integer; using the default"
            )),
        }
    }
    if let Some(raw) = annotations.get(ANNOTATION_MESSAGE)
        && !raw.is_empty()
    {
        overrides.message = Some(raw.clone());
    }
    if let Some(raw) = annotations.get(ANNOTATION_FAIL_ATTEMPTS) {
        match raw.trim().parse::<u32>() {
            Ok(n) => overrides.fail_attempts = Some(n),
            Err(_) => warnings.push(format!(
                "{ANNOTATION_FAIL_ATTEMPTS}: {raw:?} is not a non-negative integer; ignored"
            )),
        }
    }
    if let Some(raw) = annotations.get(ANNOTATION_HANG) {
        match parse_bool(raw) {
            Some(b) => overrides.hang = b,
            None => warnings.push(format!(
                "{ANNOTATION_HANG}: {raw:?} is not true/false; assuming false"
            )),
        }
    }
    (overrides, warnings)
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" | "" => Some(false),
        _ => None,
    }
}

/// Combines the overrides, the pod's `crew.dev/attempt` label value and the defaults into a plan.
///
/// Precedence: `hang` beats everything; with `fail-attempts = N`, attempts `<= N` fail (exit code from
/// `exit-code` if that is non-zero, else 1) and later attempts exit 0; otherwise `exit-code`, else the
/// default. The message applies whatever the outcome; a failing attempt without one gets a descriptive text.
pub fn decide(
    overrides: &Overrides,
    attempt_label: Option<&str>,
    defaults: &Defaults,
) -> (Plan, Vec<String>) {
    let mut warnings = Vec::new();
    let duration = overrides.duration.unwrap_or(defaults.duration);
    if overrides.hang {
        return (
            Plan {
                duration,
                outcome: Outcome::Hang,
            },
            warnings,
        );
    }
    let outcome = match overrides.fail_attempts {
        Some(fail_attempts) => {
            let attempt = match attempt_label.map(|v| v.trim().parse::<u32>()) {
                Some(Ok(a)) => a,
                Some(Err(_)) => {
                    warnings.push(format!(
                        "{ATTEMPT_LABEL} label {:?} is not a number; assuming attempt 1",
                        attempt_label.unwrap_or_default()
                    ));
                    1
                }
                None => {
                    warnings.push(format!(
                        "{ANNOTATION_FAIL_ATTEMPTS} set but the pod has no {ATTEMPT_LABEL} label; assuming attempt 1"
                    ));
                    1
                }
            };
            if attempt <= fail_attempts {
                let code = overrides
                    .exit_code
                    .filter(|c| *c != 0)
                    .unwrap_or(FAIL_ATTEMPT_EXIT_CODE);
                let message = overrides.message.clone().or_else(|| {
                    Some(format!(
                        "simulated failure of attempt {attempt} ({ANNOTATION_FAIL_ATTEMPTS}={fail_attempts})"
                    ))
                });
                Outcome::Exit { code, message }
            } else {
                Outcome::Exit {
                    code: 0,
                    message: overrides.message.clone(),
                }
            }
        }
        None => Outcome::Exit {
            code: overrides.exit_code.unwrap_or(defaults.exit_code),
            message: overrides.message.clone(),
        },
    };
    (Plan { duration, outcome }, warnings)
}

/// [`parse_overrides`] then [`decide`] for a pod's annotations and labels.
pub fn plan_for(
    annotations: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    defaults: &Defaults,
) -> (Plan, Vec<String>) {
    let (overrides, mut warnings) = parse_overrides(annotations);
    let (plan, more) = decide(
        &overrides,
        labels.get(ATTEMPT_LABEL).map(String::as_str),
        defaults,
    );
    warnings.extend(more);
    (plan, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Defaults = Defaults {
        duration: Duration::from_secs(1),
        exit_code: 0,
    };

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn exit(code: i32, message: Option<&str>) -> Outcome {
        Outcome::Exit {
            code,
            message: message.map(str::to_string),
        }
    }

    #[test]
    fn no_annotations_use_defaults() {
        let (plan, warnings) = plan_for(&map(&[]), &map(&[]), &DEFAULTS);
        assert!(warnings.is_empty());
        assert_eq!(plan.duration, Duration::from_secs(1));
        assert_eq!(plan.outcome, exit(0, None));

        let defaults = Defaults {
            duration: Duration::from_millis(5),
            exit_code: 3,
        };
        let (plan, _) = plan_for(&map(&[]), &map(&[]), &defaults);
        assert_eq!(plan.duration, Duration::from_millis(5));
        assert_eq!(plan.outcome, exit(3, None));
    }

    #[test]
    fn parses_every_annotation() {
        let (o, warnings) = parse_overrides(&map(&[
            (ANNOTATION_DURATION, "250ms"),
            (ANNOTATION_EXIT_CODE, " 2 "),
            (ANNOTATION_MESSAGE, " the result\n"),
            (ANNOTATION_FAIL_ATTEMPTS, "3"),
            (ANNOTATION_HANG, "TRUE"),
            ("other.io/x", "y"),
        ]));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            o,
            Overrides {
                duration: Some(Duration::from_millis(250)),
                exit_code: Some(2),
                message: Some(" the result\n".into()),
                fail_attempts: Some(3),
                hang: true,
            }
        );
        let (o, _) = parse_overrides(&map(&[
            (ANNOTATION_DURATION, "0"),
            (ANNOTATION_MESSAGE, ""),
            (ANNOTATION_HANG, "false"),
        ]));
        assert_eq!(o.duration, Some(Duration::ZERO));
        assert_eq!(o.message, None);
        assert!(!o.hang);
    }

    #[test]
    fn bad_values_warn_and_fall_back() {
        let (o, warnings) = parse_overrides(&map(&[
            (ANNOTATION_DURATION, "soon"),
            (ANNOTATION_EXIT_CODE, "one"),
            (ANNOTATION_FAIL_ATTEMPTS, "-1"),
            (ANNOTATION_HANG, "maybe"),
        ]));
        assert_eq!(o, Overrides::default());
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings[0].starts_with(ANNOTATION_DURATION));

        let (plan, warnings) = plan_for(
            &map(&[
                (ANNOTATION_DURATION, "5x"),
                (ANNOTATION_EXIT_CODE, "99999999999"),
            ]),
            &map(&[]),
            &DEFAULTS,
        );
        assert_eq!(warnings.len(), 2);
        assert_eq!(plan.duration, DEFAULTS.duration);
        assert_eq!(plan.outcome, exit(0, None));
    }

    #[test]
    fn exit_code_and_message() {
        let (plan, _) = plan_for(
            &map(&[(ANNOTATION_EXIT_CODE, "1"), (ANNOTATION_MESSAGE, "boom")]),
            &map(&[]),
            &DEFAULTS,
        );
        assert_eq!(plan.outcome, exit(1, Some("boom")));
        let (plan, _) = plan_for(
            &map(&[(ANNOTATION_MESSAGE, "{\"answer\":42}")]),
            &map(&[]),
            &DEFAULTS,
        );
        assert_eq!(plan.outcome, exit(0, Some("{\"answer\":42}")));
    }

    #[test]
    fn fail_attempts_by_attempt_label() {
        let ann = map(&[(ANNOTATION_FAIL_ATTEMPTS, "2"), (ANNOTATION_MESSAGE, "ok")]);
        for (attempt, code) in [("1", 1), ("2", 1), ("3", 0), ("10", 0)] {
            let (plan, warnings) = plan_for(&ann, &map(&[(ATTEMPT_LABEL, attempt)]), &DEFAULTS);
            assert!(warnings.is_empty());
            assert_eq!(plan.outcome, exit(code, Some("ok")), "attempt {attempt}");
        }
        // Without a message, failing attempts explain themselves; succeeding ones say nothing.
        let ann = map(&[(ANNOTATION_FAIL_ATTEMPTS, "1")]);
        let (plan, _) = plan_for(&ann, &map(&[(ATTEMPT_LABEL, "1")]), &DEFAULTS);
        assert!(matches!(
            plan.outcome,
            Outcome::Exit { code: 1, message: Some(ref m) } if m.contains("attempt 1")
        ));
        let (plan, _) = plan_for(&ann, &map(&[(ATTEMPT_LABEL, "2")]), &DEFAULTS);
        assert_eq!(plan.outcome, exit(0, None));
        // fail-attempts 0 never fails, even with a non-zero default exit code.
        let defaults = Defaults {
            exit_code: 7,
            ..DEFAULTS
        };
        let ann = map(&[(ANNOTATION_FAIL_ATTEMPTS, "0")]);
        let (plan, _) = plan_for(&ann, &map(&[(ATTEMPT_LABEL, "1")]), &defaults);
        assert_eq!(plan.outcome, exit(0, None));
    }

    #[test]
    fn fail_attempts_exit_code_and_missing_label() {
        let ann = map(&[
            (ANNOTATION_FAIL_ATTEMPTS, "1"),
            (ANNOTATION_EXIT_CODE, "42"),
        ]);
        let (plan, _) = plan_for(&ann, &map(&[(ATTEMPT_LABEL, "1")]), &DEFAULTS);
        assert!(matches!(plan.outcome, Outcome::Exit { code: 42, .. }));
        let (plan, _) = plan_for(&ann, &map(&[(ATTEMPT_LABEL, "2")]), &DEFAULTS);
        assert!(matches!(plan.outcome, Outcome::Exit { code: 0, .. }));

        let ann = map(&[(ANNOTATION_FAIL_ATTEMPTS, "1")]);
        let (plan, warnings) = plan_for(&ann, &map(&[]), &DEFAULTS);
        assert_eq!(warnings.len(), 1);
        assert!(matches!(plan.outcome, Outcome::Exit { code: 1, .. }));
        let (plan, warnings) = plan_for(&ann, &map(&[(ATTEMPT_LABEL, "x")]), &DEFAULTS);
        assert_eq!(warnings.len(), 1);
        assert!(matches!(plan.outcome, Outcome::Exit { code: 1, .. }));
    }

    #[test]
    fn hang_wins() {
        let ann = map(&[
            (ANNOTATION_HANG, "true"),
            (ANNOTATION_EXIT_CODE, "1"),
            (ANNOTATION_FAIL_ATTEMPTS, "5"),
        ]);
        let (plan, _) = plan_for(&ann, &map(&[(ATTEMPT_LABEL, "1")]), &DEFAULTS);
        assert_eq!(plan.outcome, Outcome::Hang);
        for yes in ["1", "yes", " True "] {
            let (o, w) = parse_overrides(&map(&[(ANNOTATION_HANG, yes)]));
            assert!(o.hang && w.is_empty(), "{yes}");
        }
    }
}
