//! Why a Queued execution waits: its place in the admission order and who holds the slots, computed with the
//! operator's own order (`crew_core::lifecycle::queue`).

use crew_api::{CrewExecution, Phase};
use crew_core::lifecycle::queue::{Member, admission_order, member_key};
use jiff::Timestamp;
use kube::ResourceExt;

/// A waiting execution's place in its queue line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// The CrewQueue, or `None` for the operator-wide limit.
    pub queue: Option<String>,
    /// The queue's `maxRunning` (`None`: the queue does not exist, or the operator-wide limit is unknown here).
    pub max_running: Option<u32>,
    /// 1-based place among the waiting members, in admission order.
    pub position: usize,
    /// How many members wait.
    pub waiting: usize,
    /// The members holding a slot (`name`, or `namespace/name` when the line spans namespaces), in name order.
    pub holders: Vec<String>,
}

fn member(cx: &CrewExecution) -> Member {
    let phase = cx
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .unwrap_or(Phase::Pending);
    let created = cx
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH);
    Member::new(
        &member_key(&cx.namespace().unwrap_or_default(), &cx.name_any()),
        &cx.spec,
        phase,
        created,
    )
}

/// Where `cx` stands among `line` (every execution of its queue line, `cx` included or not).
pub fn waiting(
    cx: &CrewExecution,
    line: &[CrewExecution],
    max_running: Option<u32>,
    spans_namespaces: bool,
) -> Waiting {
    let me = member(cx);
    let mut waiting: Vec<Member> = line
        .iter()
        .map(member)
        .filter(|m| m.waiting && m.key != me.key)
        .collect();
    if me.waiting {
        waiting.push(me.clone());
    }
    waiting.sort_by(admission_order);
    let position = waiting
        .iter()
        .position(|m| m.key == me.key)
        .map_or(0, |p| p + 1);
    let mut holders: Vec<String> = line
        .iter()
        .filter(|other| member(other).running)
        .map(|other| {
            if spans_namespaces {
                format!(
                    "{}/{}",
                    other.namespace().unwrap_or_default(),
                    other.name_any()
                )
            } else {
                other.name_any()
            }
        })
        .collect();
    holders.sort();
    Waiting {
        queue: cx.spec.queue.clone(),
        max_running,
        position,
        waiting: waiting.len(),
        holders,
    }
}

/// The sentence `describe` prints.
pub fn sentence(w: &Waiting) -> String {
    let line = match &w.queue {
        Some(q) => format!("queue \"{q}\""),
        None => "the operator-wide limit (--max-running)".to_string(),
    };
    let limit = match (w.max_running, &w.queue) {
        (Some(max), _) => format!("{} of {max} slots held", w.holders.len()),
        (None, Some(_)) => "the CrewQueue does not exist (yet)".to_string(),
        (None, None) => format!("{} running", w.holders.len()),
    };
    let place = if w.position == 0 {
        "not waiting for a slot".to_string()
    } else {
        format!("position {} of {} waiting", w.position, w.waiting)
    };
    let mut text = format!("{place} in {line}; {limit}");
    if !w.holders.is_empty() {
        const SHOWN: usize = 5;
        let names: Vec<&str> = w.holders.iter().take(SHOWN).map(String::as_str).collect();
        text.push_str(&format!(" by {}", names.join(", ")));
        if w.holders.len() > SHOWN {
            text.push_str(&format!(" and {} more", w.holders.len() - SHOWN));
        }
    }
    text
}
