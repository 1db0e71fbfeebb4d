//! The one graph of allowed phase transitions.

use crew_api::Phase;

/// Whether an execution may move from `from` to `to`. Staying in the same phase is not a transition.
pub fn allowed(from: Phase, to: Phase) -> bool {
    use Phase::*;
    matches!(
        (from, to),
        (Pending, Queued | Running | Paused | Cancelled | Failed)
            | (Queued, Running | Paused | Cancelled)
            | (Running, Paused | Succeeded | Failed | Cancelled)
            | (Paused, Queued | Running | Cancelled)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use Phase::*;

    /// Every ordered pair of phases, with the expected answer written out in full.
    #[test]
    fn every_pair_of_phases() {
        let table: [(Phase, [bool; 7]); 7] = [
            //            Pending Queued Running Paused Succeeded Failed Cancelled
            (Pending, [false, true, true, true, false, true, true]),
            (Queued, [false, false, true, true, false, false, true]),
            (Running, [false, false, false, true, true, true, true]),
            (Paused, [false, true, true, false, false, false, true]),
            (Succeeded, [false, false, false, false, false, false, false]),
            (Failed, [false, false, false, false, false, false, false]),
            (Cancelled, [false, false, false, false, false, false, false]),
        ];
        for (from, row) in table {
            for (to, expected) in Phase::ALL.into_iter().zip(row) {
                assert_eq!(allowed(from, to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn terminal_phases_have_no_way_out() {
        for from in Phase::ALL.into_iter().filter(|p| p.is_terminal()) {
            assert!(
                Phase::ALL.into_iter().all(|to| !allowed(from, to)),
                "{from}"
            );
        }
    }

    #[test]
    fn every_non_terminal_phase_can_be_cancelled() {
        for from in Phase::ALL.into_iter().filter(|p| !p.is_terminal()) {
            assert!(allowed(from, Cancelled), "{from}");
        }
    }
}
