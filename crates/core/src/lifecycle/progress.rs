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
