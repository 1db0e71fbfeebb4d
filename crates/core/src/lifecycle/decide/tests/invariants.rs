//! Checks over whole lives: every story's uncapped history is a chain of allowed moves and its terminal phase
//! never changes; after a run ends, `spec.jobCleanup` has let go of every finished Job it covers.

use super::prelude::*;
use super::stories;
use crate::lifecycle::transitions::allowed;

/// Checks over a whole life: the uncapped history is a chain of allowed moves, terminal phases never change.
pub fn check_whole_life(label: &str, w: &World) {
    let mut phase = Phase::Pending;
    for (i, entry) in w.full_history.iter().enumerate() {
        if w.history_gaps.contains(&i) {
            phase = entry.from;
        }
        assert_eq!(entry.from, phase, "{label}: broken chain at {entry:?}");
        assert!(
            entry.from == entry.to || allowed(entry.from, entry.to),
            "{label}: {} -> {} not allowed",
            entry.from,
            entry.to
        );
        phase = entry.to;
    }
    assert_eq!(phase, w.phase(), "{label}: final phase");
    if let Some(first) = w.phases.iter().position(|p| p.is_terminal()) {
        assert!(
            w.phases[first..].iter().all(|p| *p == w.phases[first]),
            "{label}: left a terminal phase: {:?}",
            w.phases
        );
    }
    for pair in w.full_history.windows(2) {
        assert!(
            pair[0].time <= pair[1].time,
            "{label}: history out of order"
        );
    }
}

/// Once the run has ended and been reconciled, `spec.jobCleanup` has let go of every finished Job it covers.
pub fn check_cleaned_up(w: &World) {
    let policy = w.spec.job_cleanup.unwrap_or_default();
    let kept: Vec<_> = w
        .jobs
        .iter()
        .filter(|j| j.owned && !j.deleting)
        .filter(|j| match policy {
            JobCleanup::Keep => false,
            JobCleanup::OnStepCompletion => true,
            JobCleanup::OnStepSuccess => w.status().steps.iter().any(|s| {
                s.name == j.step && s.attempt == j.attempt && s.phase == StepPhase::Succeeded
            }),
        })
        .map(|j| &j.name)
        .collect();
    assert!(kept.is_empty(), "{policy:?} kept {kept:?}: {:#?}", w.status);
}

#[test]
fn every_story_history_respects_the_transition_graph() {
    let mut checked = 0;
    for (name, run) in stories::all() {
        for (i, w) in run().iter().enumerate() {
            check_whole_life(&format!("{name}[{i}]"), w);
            checked += 1;
        }
    }
    assert!(checked >= stories::all().count());
}
