//! Bulk operations decided per target, before any request: change it, or say why it is already so.

use crew_api::CrewExecution;
use crew_core::lifecycle::membership::phase_of;
use kube::ResourceExt;

/// A bulk operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Cancel,
    Suspend,
    Resume,
    Rerun,
    Delete,
}

impl Operation {
    /// The verb, as in "would cancel".
    pub fn verb(self) -> &'static str {
        match self {
            Operation::Cancel => "cancel",
            Operation::Suspend => "suspend",
            Operation::Resume => "resume",
            Operation::Rerun => "rerun",
            Operation::Delete => "delete",
        }
    }

    /// The past participle, as in "12 cancelled".
    pub fn done(self) -> &'static str {
        match self {
            Operation::Cancel => "cancelled",
            Operation::Suspend => "suspended",
            Operation::Resume => "resumed",
            Operation::Rerun => "rerun",
            Operation::Delete => "deleted",
        }
    }

    /// The merge patch of `spec` this operation sends (`None`: it does not patch).
    pub fn patch(self) -> Option<serde_json::Value> {
        match self {
            Operation::Cancel => Some(serde_json::json!({"spec": {"cancel": true}})),
            Operation::Suspend => Some(serde_json::json!({"spec": {"suspend": true}})),
            Operation::Resume => Some(serde_json::json!({"spec": {"suspend": false}})),
            Operation::Rerun | Operation::Delete => None,
        }
    }

    /// The merge patch this operation sends to the execution with UID `uid`: [`Operation::patch`] and
    /// `metadata.uid`, which the API server refuses to change, so the patch applies to that execution only and
    /// never to a later one of the same name.
    pub fn guarded_patch(self, uid: &str) -> Option<serde_json::Value> {
        let mut patch = self.patch()?;
        if !uid.is_empty() {
            patch["metadata"] = serde_json::json!({ "uid": uid });
        }
        Some(patch)
    }
}

/// What an operation does to one execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Send the request.
    Apply,
    /// Nothing to do, and why (`already cancelled`, `already finished (Succeeded)`).
    Already(String),
}

/// The change `op` makes to `cx`, decided from what the list showed.
pub fn change(op: Operation, cx: &CrewExecution) -> Change {
    let phase = cx.status.as_ref().and_then(|s| s.phase);
    let finished = phase.filter(|p| p.is_terminal());
    if cx.metadata.deletion_timestamp.is_some() && op != Operation::Rerun {
        return Change::Already("already being deleted".into());
    }
    match op {
        Operation::Cancel if cx.spec.cancel => Change::Already("already cancelled".into()),
        Operation::Cancel | Operation::Suspend if finished.is_some() => Change::Already(format!(
            "already finished ({})",
            finished.map(|p| p.as_str()).unwrap_or_default()
        )),
        Operation::Suspend if cx.spec.cancel => Change::Already("cancelled".into()),
        Operation::Suspend if cx.spec.suspend => Change::Already("already suspended".into()),
        Operation::Resume if !cx.spec.suspend => Change::Already("not suspended".into()),
        _ => Change::Apply,
    }
}

/// The dry-run line of one target.
pub fn dry_run_line(op: Operation, cx: &CrewExecution, qualified: bool) -> String {
    let name = if qualified {
        format!("{}/{}", cx.namespace().unwrap_or_default(), cx.name_any())
    } else {
        cx.name_any()
    };
    let phase = phase_of(cx).as_str();
    match change(op, cx) {
        Change::Apply => match op.patch() {
            Some(patch) => format!("would {} {name} ({phase}): merge patch {patch}", op.verb()),
            None => format!("would {} {name} ({phase})", op.verb()),
        },
        Change::Already(why) => format!("{name}: {why}, unchanged"),
    }
}

/// The outcome of one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Changed(String),
    Unchanged,
    /// Failed, with the API's reason and message.
    Failed(String, String),
}

/// `cancel: 998 cancelled, 2 already so, 1 failed` and a line per failure.
pub fn summary(op: Operation, outcomes: &[Outcome]) -> String {
    let changed = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Changed(_)))
        .count();
    let unchanged = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Unchanged))
        .count();
    let failed: Vec<(&String, &String)> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Failed(who, why) => Some((who, why)),
            _ => None,
        })
        .collect();
    let mut text = format!(
        "{}: {changed} {}, {unchanged} already in that state, {} failed\n",
        op.verb(),
        op.done(),
        failed.len()
    );
    for (who, why) in failed {
        text.push_str(&format!("  {who}: {why}\n"));
    }
    text
}
