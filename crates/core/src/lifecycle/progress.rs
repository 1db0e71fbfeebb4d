//! Progress arithmetic for `status.progress`.

use crew_api::{Phase, Progress};

/// Progress of an execution with `completed` of `total` steps done and `current` running.
pub fn progress(
    phase: Phase,
    completed: u32,
    total: u32,
    current: Option<&str>,
    message: Option<String>,
) -> Progress {
    let total = total.max(1);
    let completed = completed.min(total);
    let percent = if phase == Phase::Succeeded {
        100
    } else {
        (100 * u64::from(completed) / u64::from(total)) as u32
    };
    Progress {
        percent,
        completed_steps: completed,
        total_steps: total,
        current_step: current.map(str::to_string),
        message,
        display: format!("{completed}/{total} ({percent}%)"),
    }
}

/// `progress` counting the running step's reported percent as a fraction of a step: `1/3 (45%)` while the
/// second of three steps reports 35%.
pub fn with_running_step(mut progress: Progress, step_percent: u32) -> Progress {
    let total = progress.total_steps.max(1);
    if progress.completed_steps >= total || step_percent == 0 {
        return progress;
    }
    let hundredths = 100 * u64::from(progress.completed_steps) + u64::from(step_percent.min(100));
    let percent = (hundredths / u64::from(total)) as u32;
    progress.percent = percent.min(99).max(progress.percent);
    progress.display = format!(
        "{}/{total} ({}%)",
        progress.completed_steps, progress.percent
    );
    progress
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn display_matches_kubectl_get_form() {
        let p = progress(Phase::Running, 2, 3, Some("write"), None);
        assert_eq!((p.percent, p.display.as_str()), (66, "2/3 (66%)"));
        assert_eq!(p.current_step.as_deref(), Some("write"));
        assert_eq!(
            progress(Phase::Succeeded, 3, 3, None, None).display,
            "3/3 (100%)"
        );
        assert_eq!(
            progress(Phase::Pending, 0, 1, None, None).display,
            "0/1 (0%)"
        );
    }

    #[test]
    fn the_running_step_counts_by_its_reported_fraction() {
        let p = with_running_step(progress(Phase::Running, 1, 3, Some("write"), None), 35);
        assert_eq!((p.percent, p.display.as_str()), (45, "1/3 (45%)"));
        let done = with_running_step(progress(Phase::Running, 0, 1, Some("main"), None), 100);
        assert_eq!(done.percent, 99, "100% only once the step succeeded");
        let none = with_running_step(progress(Phase::Running, 2, 3, None, None), 0);
        assert_eq!(none.display, "2/3 (66%)");
    }

    proptest! {
        #[test]
        fn percent_is_bounded_and_monotone(total in 1u32..500, completed in 0u32..500) {
            let p = progress(Phase::Running, completed, total, None, None);
            prop_assert!(p.percent <= 100);
            prop_assert!(p.completed_steps <= p.total_steps);
            if completed < total { prop_assert!(p.percent < 100); }
            if completed < total {
                prop_assert!(progress(Phase::Running, completed + 1, total, None, None).percent >= p.percent);
            }
        }
    }
}
