//! The one graph of allowed phase transitions.

use crew_api::Phase;

/// Whether an execution may move from `from` to `to`. Staying in the same phase is not a transition.
///
/// Every non-terminal phase may end: a Paused or Queued execution fails when a spec edit leaves its failed step no
/// retry (`retry.limit` lowered during a backoff) and succeeds when no step is left to run, so no edit can leave an
/// execution waiting for a move the graph refuses.
pub fn allowed(from: Phase, to: Phase) -> bool {
    use Phase::*;
    matches!(
        (from, to),
        (Pending, Queued | Running | Paused | Cancelled | Failed)
            | (Queued, Running | Paused | Succeeded | Failed | Cancelled)
            | (Running, Paused | Succeeded | Failed | Cancelled)
            | (Paused, Queued | Running | Succeeded | Failed | Cancelled)
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
            (Queued, [false, false, true, true, true, true, true]),
            (Running, [false, false, false, true, true, true, true]),
            (Paused, [false, true, true, false, true, true, true]),
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

    /// Once started (anything but Pending), every live phase can reach every terminal one: an edit that ends the
    /// run never meets a refused move.
    #[test]
    fn every_started_live_phase_can_end_every_way() {
        for from in [Queued, Running, Paused] {
            for to in Phase::ALL.into_iter().filter(|p| p.is_terminal()) {
                assert!(allowed(from, to), "{from} -> {to}");
            }
        }
    }
}
