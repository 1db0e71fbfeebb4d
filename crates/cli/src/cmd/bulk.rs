//! `cancel`, `suspend`, `resume`, `rerun` and `delete` over names, a selector, phases or `--all`.
//!
//! `cancel`, `suspend` and `resume` send a JSON merge patch of `spec.cancel` / `spec.suspend` alone, with field
//! manager `kubectl-crew`; nothing else in the spec is touched.
//!
//! Every write names the object that was listed, not just its name: deletes carry a UID precondition and patches
//! `metadata.uid`, so an execution deleted and re-created under the same name between the list (or the question
//! on a terminal) and the write is left alone and reported as a Conflict.

use crate::args::{BulkArgs, RerunArgs, RetryArgs};
use crate::cluster::{Cluster, EXECUTIONS};
use crate::cmd::rerun::{Rerun, rerun_of, tracking_labels};
use crate::error::{self, CliError, Exit, Request};
use crate::output::{can_ask, confirm, note, print};
use crate::selection::{self, Selection};
use crate::view::bulk::{Change, Operation, Outcome, change, dry_run_line, summary};
use crew_api::{CrewExecution, Phase};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};

/// Field manager of every change this tool makes.
pub const FIELD_MANAGER: &str = "kubectl-crew";
/// More targets than this on a terminal ask first (unless `--yes`).
pub const ASK_ABOVE: usize = 10;

/// The executions a bulk command acts on.
async fn targets(
    cluster: &Cluster,
    args: &BulkArgs,
    whole: bool,
) -> Result<Vec<CrewExecution>, CliError> {
    match selection::of(args)? {
        Selection::Filtered(filter) if whole => cluster.executions_whole(filter).await,
        Selection::Filtered(filter) => cluster.executions(filter).await,
        Selection::Names(names) => {
            let mut found = Vec::new();
            for name in names {
                found.push(cluster.execution(name).await?);
            }
            Ok(found)
        }
    }
}

pub async fn run(
    cluster: &Cluster,
    op: Operation,
    args: &BulkArgs,
    rerun: &Rerun<'_>,
) -> Result<Exit, CliError> {
    // A rerun copies the whole spec; the other operations decide from the slim form.
    let targets = targets(cluster, args, op == Operation::Rerun).await?;
    let qualified = cluster.namespace.is_none();
    if rerun.name.is_some() && targets.len() != 1 {
        return Err(CliError::Usage(format!(
            "--name needs exactly one execution to rerun, not {}",
            targets.len()
        )));
    }
    if targets.is_empty() {
        note("No executions match: nothing to do.\n");
        return Ok(Exit::Ok);
    }
    if args.dry_run {
        let lines: String = targets
            .iter()
            .map(|cx| format!("{}\n", dry_run_line(op, cx, qualified)))
            .collect();
        print(&lines)?;
        return Ok(Exit::Ok);
    }
    let (todo, already): (Vec<_>, Vec<_>) = targets
        .into_iter()
        .partition(|cx| change(op, cx) == Change::Apply);
    if todo.len() > ASK_ABOVE && !args.yes && can_ask() {
        let place = match &cluster.namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "in every namespace".into(),
        };
        let question = format!(
            "{} {} executions {place}?",
            capitalized(op.verb()),
            todo.len()
        );
        if !confirm(&question)? {
            note("Nothing changed.\n");
            return Ok(Exit::Ok);
        }
    }
    let progress = if can_ask() && todo.len() > 1 {
        let bar =
            ProgressBar::with_draw_target(Some(todo.len() as u64), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}") {
            bar.set_style(style);
        }
        bar.set_message(op.verb());
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut outcomes: Vec<Outcome> = already.iter().map(|_| Outcome::Unchanged).collect();
    // A rerun says which GitOps tracking labels of its original it did not copy.
    let dropped = if op == Operation::Rerun {
        not_copied(&todo, qualified)
    } else {
        String::new()
    };
    let mut changes = futures::stream::iter(todo)
        .map(|cx| act(cluster, op, cx, rerun, qualified))
        .buffer_unordered(usize::from(args.parallel));
    let mut created = Vec::new();
    while let Some(outcome) = changes.next().await {
        progress.inc(1);
        if let Outcome::Changed(line) = &outcome
            && !line.is_empty()
        {
            created.push(line.clone());
        }
        outcomes.push(outcome);
    }
    progress.finish_and_clear();
    created.sort();
    print(&created.iter().map(|l| format!("{l}\n")).collect::<String>())?;
    note(&dropped);
    note(&summary(op, &outcomes));
    let failed = outcomes.iter().any(|o| matches!(o, Outcome::Failed(..)));
    Ok(if failed { Exit::Failed } else { Exit::Ok })
}

/// A line per execution to rerun that carries GitOps tracking labels, naming the ones its rerun does not copy.
fn not_copied(originals: &[CrewExecution], qualified: bool) -> String {
    let mut lines = String::new();
    for cx in originals {
        let dropped = tracking_labels(cx);
        if dropped.is_empty() {
            continue;
        }
        let who = match (qualified, cx.namespace()) {
            (true, Some(ns)) => format!("{ns}/{}", cx.name_any()),
            _ => cx.name_any(),
        };
        lines.push_str(&format!(
            "rerun of {who}: GitOps tracking labels not copied: {}\n",
            dropped.join(", ")
        ));
    }
    lines
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One request; its outcome (a line for stdout when something was made: the rerun's name).
pub(crate) async fn act(
    cluster: &Cluster,
    op: Operation,
    cx: CrewExecution,
    rerun: &Rerun<'_>,
    qualified: bool,
) -> Outcome {
    let ns = cx.namespace().unwrap_or_default();
    let name = cx.name_any();
    let who = if qualified {
        format!("{ns}/{name}")
    } else {
        name.clone()
    };
    let api: Api<CrewExecution> = cluster.api_in(&ns);
    let uid = cx.uid().unwrap_or_default();
    let (verb, result) = match op {
        Operation::Delete => (
            "delete",
            api.delete(&name, &delete_params(&uid))
                .await
                .map(|_| String::new()),
        ),
        Operation::Rerun => (
            "create",
            api.create(&PostParams::default(), &rerun_of(&cx, rerun))
                .await
                .map(|made| {
                    let made = made.name_any();
                    let made = if qualified {
                        format!("{ns}/{made}")
                    } else {
                        made
                    };
                    match rerun.from_step {
                        Some(step) => format!(
                            "crewexecution.crew.dev/{made} created (rerun of {name} from step {step})"
                        ),
                        None => format!("crewexecution.crew.dev/{made} created (rerun of {name})"),
                    }
                }),
        ),
        _ => {
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            let patch = op.guarded_patch(&uid).unwrap_or_default();
            (
                "patch",
                api.patch(&name, &params, &Patch::Merge(&patch))
                    .await
                    .map(|_| String::new()),
            )
        }
    };
    match result {
        Ok(line) => Outcome::Changed(line),
        Err(e) if op == Operation::Delete && error::status_code(&e) == Some(404) => {
            Outcome::Unchanged
        }
        Err(kube::Error::Api(status)) if replaced(&status) => Outcome::Failed(
            who,
            format!(
                "Conflict: not {}: an execution of this name was created since it was listed (another UID); \
                 list again to act on it",
                op.done()
            ),
        ),
        Err(e) => {
            let reason = match &e {
                kube::Error::Api(status) if !status.reason.is_empty() => status.reason.clone(),
                _ => "Error".into(),
            };
            let message = error::api(&Request::new(verb, EXECUTIONS, Some(&ns)).named(&name), e);
            Outcome::Failed(who, format!("{reason}: {message}"))
        }
    }
}

/// A background delete of the object with UID `uid` only (none: of whatever has the name, for an object read
/// without one).
fn delete_params(uid: &str) -> DeleteParams {
    DeleteParams {
        preconditions: (!uid.is_empty()).then(|| Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::background()
    }
}

/// Whether the API refused a write because the object of that name is not the one listed: a UID precondition
/// that failed (409), or a patch whose `metadata.uid` differs from the object's (the API server refuses the
/// change of an immutable field, 422 on `metadata.uid`).
fn replaced(status: &kube::core::Status) -> bool {
    let on_uid = status
        .details
        .as_ref()
        .is_some_and(|d| d.causes.iter().any(|c| c.field == "metadata.uid"));
    (status.code == 409 && status.message.contains("UID")) || (status.code == 422 && on_uid)
}

pub async fn rerun(cluster: &Cluster, args: &RerunArgs) -> Result<Exit, CliError> {
    let rerun = Rerun {
        name: args.name.as_deref(),
        from_step: args.from_step.as_deref(),
    };
    run(cluster, Operation::Rerun, &args.bulk, &rerun).await
}

/// `retry`: a Failed or Cancelled execution runs again from the first step that did not succeed.
pub async fn retry(cluster: &Cluster, args: &RetryArgs) -> Result<Exit, CliError> {
    let cx = cluster.execution(&args.name).await?;
    let status = cx.status.clone().unwrap_or_default();
    if !matches!(status.phase, Some(Phase::Failed | Phase::Cancelled)) {
        return Err(CliError::Usage(format!(
            "execution \"{}\" is {}: only a Failed or Cancelled one is retried (kubectl crew rerun runs any again)",
            args.name,
            crate::cluster::phase_name(&cx)
        )));
    }
    let Some(step) = status
        .steps
        .iter()
        .find(|s| s.phase != crew_api::StepPhase::Succeeded)
    else {
        return Err(CliError::Usage(format!(
            "execution \"{}\" has no step that did not succeed",
            args.name
        )));
    };
    let rerun = Rerun {
        name: args.new_name.as_deref(),
        from_step: Some(&step.name),
    };
    let bulk = BulkArgs {
        names: vec![args.name.clone()],
        filter: Default::default(),
        all: false,
        dry_run: false,
        yes: true,
        parallel: 1,
    };
    run(cluster, Operation::Rerun, &bulk, &rerun).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    #[test]
    fn writes_name_the_listed_object() {
        let params = delete_params("u-1");
        assert_eq!(
            params.preconditions.and_then(|p| p.uid).as_deref(),
            Some("u-1")
        );
        assert!(matches!(
            params.propagation_policy,
            Some(kube::api::PropagationPolicy::Background)
        ));
        assert!(delete_params("").preconditions.is_none());
        assert_eq!(
            Operation::Cancel.guarded_patch("u-1"),
            Some(serde_json::json!({"metadata": {"uid": "u-1"}, "spec": {"cancel": true}}))
        );
        assert_eq!(Operation::Delete.guarded_patch("u-1"), None);
    }

    #[test]
    fn a_replaced_object_is_told_from_other_refusals() {
        let precondition = Status::failure(
            "Operation cannot be fulfilled on crewexecutions.crew.dev \"a\": Precondition failed: UID in \
             precondition: u-1, UID in object meta: u-2",
            "Conflict",
        )
        .with_code(409);
        assert!(replaced(&precondition));
        let mut immutable =
            Status::failure("metadata.uid: field is immutable", "Invalid").with_code(422);
        assert!(!replaced(&immutable));
        immutable.details = serde_json::from_value(serde_json::json!({
            "causes": [{"reason": "FieldValueInvalid", "message": "field is immutable", "field": "metadata.uid"}]
        }))
        .unwrap();
        assert!(replaced(&immutable));
        assert!(!replaced(
            &Status::failure("forbidden", "Forbidden").with_code(403)
        ));
    }
}
