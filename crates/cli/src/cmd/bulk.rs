//! `cancel`, `suspend`, `resume`, `rerun` and `delete` over names, a selector, phases or `--all`.
//!
//! `cancel`, `suspend` and `resume` send a JSON merge patch of `spec.cancel` / `spec.suspend` alone, with field
//! manager `kubectl-crew`; nothing else in the spec is touched.

use crate::args::{BulkArgs, RerunArgs};
use crate::cluster::{Cluster, EXECUTIONS};
use crate::error::{self, CliError, Exit, Request};
use crate::output::{can_ask, confirm, note, print};
use crate::view::bulk::{Change, Operation, Outcome, change, dry_run_line, summary};
use crew_api::CrewExecution;
use crew_core::lifecycle::names::{generate_name, label_value};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Api, ResourceExt};
use std::collections::BTreeMap;

/// Field manager of every change this tool makes.
pub const FIELD_MANAGER: &str = "kubectl-crew";
/// Label on a rerun, naming the execution it was made from.
pub const RERUN_OF: &str = "crew.dev/rerun-of";
/// More targets than this on a terminal ask first (unless `--yes`).
pub const ASK_ABOVE: usize = 10;
/// Labels a rerun does not copy: GitOps tools track their objects by them and would prune or adopt the copy.
const NOT_COPIED: [&str; 3] = [
    "app.kubernetes.io/instance",
    "kustomize.toolkit.fluxcd.io/name",
    "helm.toolkit.fluxcd.io/name",
];

/// The executions a bulk command acts on.
async fn targets(
    cluster: &Cluster,
    args: &BulkArgs,
    whole: bool,
) -> Result<Vec<CrewExecution>, CliError> {
    let filtered = args.filter.selector.is_some()
        || !args.filter.phase.is_empty()
        || args.filter.queue.is_some();
    match (args.names.is_empty(), filtered || args.all) {
        (false, true) => Err(CliError::Usage(
            "give names, or a filter (-l, --phase, --queue) or --all, not both".into(),
        )),
        (true, false) => Err(CliError::Usage(
            "say which executions: names, -l SELECTOR, --phase, --queue, or --all (with -n or -A)"
                .into(),
        )),
        (true, true) if whole => cluster.executions_whole(&args.filter).await,
        (true, true) => cluster.executions(&args.filter).await,
        (false, false) => {
            let mut found = Vec::new();
            for name in &args.names {
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
    rerun_name: Option<&str>,
) -> Result<Exit, CliError> {
    // A rerun copies the whole spec; the other operations decide from the slim form.
    let targets = targets(cluster, args, op == Operation::Rerun).await?;
    let qualified = cluster.namespace.is_none();
    if rerun_name.is_some() && targets.len() != 1 {
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
    let mut changes = futures::stream::iter(todo)
        .map(|cx| act(cluster, op, cx, rerun_name, qualified))
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
    note(&summary(op, &outcomes));
    let failed = outcomes.iter().any(|o| matches!(o, Outcome::Failed(..)));
    Ok(if failed { Exit::Failed } else { Exit::Ok })
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One request; its outcome (a line for stdout when something was made: the rerun's name).
async fn act(
    cluster: &Cluster,
    op: Operation,
    cx: CrewExecution,
    rerun_name: Option<&str>,
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
    let (verb, result) = match op {
        Operation::Delete => (
            "delete",
            api.delete(&name, &DeleteParams::background())
                .await
                .map(|_| String::new()),
        ),
        Operation::Rerun => (
            "create",
            api.create(&PostParams::default(), &rerun_of(&cx, rerun_name))
                .await
                .map(|made| {
                    let made = made.name_any();
                    let made = if qualified {
                        format!("{ns}/{made}")
                    } else {
                        made
                    };
                    format!("crewexecution.crew.dev/{made} created (rerun of {name})")
                }),
        ),
        _ => {
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            let patch = op.patch().unwrap_or_default();
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

/// A new execution with `cx`'s spec (not cancelled, not suspended) and labels, named `name` or generated from
/// `cx`'s name (`<name>-` and 5 random characters, the name cut to keep the result within 63), labelled
/// [`RERUN_OF`] (the name, hashed past 63 characters like every label value naming an execution).
pub fn rerun_of(cx: &CrewExecution, name: Option<&str>) -> CrewExecution {
    let original = cx.name_any();
    let mut labels: BTreeMap<String, String> = cx
        .labels()
        .iter()
        .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(RERUN_OF.into(), label_value(&original));
    let mut spec = cx.spec.clone();
    spec.cancel = false;
    spec.suspend = false;
    let mut rerun = CrewExecution::new("", spec);
    rerun.metadata = ObjectMeta {
        name: name.map(str::to_string),
        generate_name: name.is_none().then(|| generate_name(&original)),
        namespace: cx.namespace(),
        labels: Some(labels),
        ..Default::default()
    };
    rerun
}

pub async fn rerun(cluster: &Cluster, args: &RerunArgs) -> Result<Exit, CliError> {
    run(cluster, Operation::Rerun, &args.bulk, args.name.as_deref()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn execution(name: &str) -> CrewExecution {
        let mut cx = CrewExecution::new(name, Default::default());
        cx.metadata.namespace = Some("team-a".into());
        cx
    }

    #[test]
    fn a_rerun_of_a_short_name_is_generated_from_it() {
        let rerun = rerun_of(&execution("nightly"), None);
        assert_eq!(rerun.metadata.generate_name.as_deref(), Some("nightly-"));
        assert_eq!(rerun.labels()[RERUN_OF], "nightly");
        let named = rerun_of(&execution("nightly"), Some("again"));
        assert_eq!(named.metadata.name.as_deref(), Some("again"));
        assert_eq!(named.metadata.generate_name, None);
    }

    #[test]
    fn a_rerun_of_the_longest_name_gets_a_valid_name_and_label() {
        let original = format!("{}.{}", "a".repeat(56), "b".repeat(196));
        assert_eq!(original.len(), 253);
        let rerun = rerun_of(&execution(&original), None);
        let prefix = rerun.metadata.generate_name.clone().unwrap_or_default();
        // The API server appends 5 characters and cuts a longer prefix itself, losing the separator.
        assert_eq!(prefix, format!("{}-", "a".repeat(56)));
        assert!(prefix.len() + 5 <= 63, "{prefix}");
        let label = &rerun.labels()[RERUN_OF];
        assert_eq!(label, &label_value(&original));
        assert!(label.len() <= 63, "{label}");
    }
}
