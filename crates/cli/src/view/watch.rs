//! What `watch` prints: a line per transition without a terminal, a live bar's text with one, and the verdict.

use super::summary::Summary;
use super::time::{exact, stamp};
use crate::error::Exit;
use jiff::Timestamp;

/// What changed between two sightings of an execution, worth a line: its phase, its step or its attempt.
pub fn changed(before: Option<&Summary>, now: &Summary) -> bool {
    match before {
        None => true,
        Some(b) => {
            b.phase != now.phase
                || b.step != now.step
                || b.attempt != now.attempt
                || b.completed != now.completed
        }
    }
}

/// The plain line for a transition: `2026-11-29T10:00:05Z team-a/report Running 1/3 step=write attempt=1`.
pub fn plain_line(s: &Summary, at: Timestamp, qualified: bool) -> String {
    let name = if qualified {
        format!("{}/{}", s.namespace, s.name)
    } else {
        s.name.clone()
    };
    let mut line = format!(
        "{} {name} {} {}/{}",
        stamp(at),
        s.phase_text(),
        s.completed,
        s.total
    );
    if !s.step.is_empty() {
        line.push_str(&format!(" step={}", s.step));
    }
    if let Some(attempt) = s.attempt.filter(|_| !s.step.is_empty()) {
        line.push_str(&format!(" attempt={attempt}"));
    }
    if let Some(d) = s.duration {
        line.push_str(&format!(" duration={}", exact(d)));
    }
    if !s.reason.is_empty() {
        line.push_str(&format!(" reason={}", s.reason));
    }
    line
}

/// The message beside a live bar: phase, step, attempt and time so far.
pub fn bar_message(s: &Summary) -> String {
    let mut text = s.phase_text().to_string();
    if !s.step.is_empty() {
        text.push_str(&format!(" · {}", s.step));
        if let Some(a) = s.attempt.filter(|a| *a > 1) {
            text.push_str(&format!(" (attempt {a})"));
        }
    }
    if let Some(d) = s.duration {
        text.push_str(&format!(" · {}", exact(d)));
    }
    if s.is_terminal() && !s.reason.is_empty() && s.phase_text() != "Succeeded" {
        text.push_str(&format!(" · {}", s.reason));
    }
    text
}

/// Exit status once every watched execution has finished (`deleted`: watched ones that disappeared).
pub fn verdict(finished: &[Summary], deleted: usize) -> Exit {
    if deleted == 0 && finished.iter().all(|s| s.phase_text() == "Succeeded") {
        Exit::Ok
    } else {
        Exit::Failed
    }
}

/// `3 succeeded, 1 failed, 1 cancelled`.
pub fn tally(finished: &[Summary], deleted: usize) -> String {
    let count = |phase: &str| finished.iter().filter(|s| s.phase_text() == phase).count();
    let mut parts = vec![format!("{} succeeded", count("Succeeded"))];
    for (phase, word) in [("Failed", "failed"), ("Cancelled", "cancelled")] {
        let n = count(phase);
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    if deleted > 0 {
        parts.push(format!("{deleted} deleted"));
    }
    parts.join(", ")
}
