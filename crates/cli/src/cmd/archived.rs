//! The `--archived` forms of `list`, `describe`, `history`, `result` and `stats`: the same views, read from the
//! operator's archive (see [`crate::archive`]) instead of the cluster.

use crate::archive::{Archive, escape};
use crate::args::{ListArgs, ListFormat, ResultArgs, ResultFormat, StatsArgs, StatsFormat, Target};
use crate::clock::now;
use crate::error::{CliError, Exit};
use crate::output::{note, print, stdout_is_terminal};
use crate::view::describe::{Described, render};
use crate::view::list::{self, Layout};
use crate::view::style::Style;
use crew_api::CrewExecution;
use crew_api::archive::{Page, Stats};

fn executions_path(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("/v1/namespaces/{}/executions", escape(ns)),
        None => "/v1/executions".into(),
    }
}

/// `list --archived`: every page, newest first.
pub async fn list(
    target: &Target,
    namespace: Option<String>,
    args: &ListArgs,
) -> Result<Exit, CliError> {
    let archive = Archive::connect(target).await?;
    let mut query = vec![format!("limit={}", target.chunk_size.min(500))];
    if let Some(selector) = &args.filter.selector {
        query.push(format!("labelSelector={}", escape(selector)));
    }
    if let [phase] = args.filter.phase.as_slice() {
        query.push(format!("phase={}", escape(phase)));
    }
    if let Some(queue) = &args.filter.queue {
        query.push(format!("queue={}", escape(queue)));
    }
    if let Some(step) = &args.failed_step {
        query.push(format!("failedStep={}", escape(step)));
    }
    if let Some(since) = args.since {
        query.push(format!("since={}s", since.as_secs()));
    }
    let base = format!(
        "{}?{}",
        executions_path(namespace.as_deref()),
        query.join("&")
    );
    let mut items = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(token) => format!("{base}&continue={}", escape(token)),
            None => base.clone(),
        };
        let page: Page = archive.get_json(&path).await?;
        items.extend(page.items);
        match page.next {
            Some(token) => next = Some(token),
            None => break,
        }
    }
    let phases = &args.filter.phase;
    items.retain(|s| phases.len() < 2 || phases.iter().any(|p| p.eq_ignore_ascii_case(&s.phase)));
    match args.output {
        Some(ListFormat::Json) => print(&format!("{}\n", to_json(&items)?))?,
        Some(ListFormat::Yaml) => print(
            &serde_saphyr::to_string(&items)
                .map_err(|e| CliError::Config(format!("cannot print YAML: {e}")))?,
        )?,
        Some(ListFormat::Name) => print(
            &items
                .iter()
                .map(|s| format!("crewexecution.crew.dev/{}\n", s.name))
                .collect::<String>(),
        )?,
        None | Some(ListFormat::Wide) => {
            if items.is_empty() {
                note("No archived executions found.\n");
                return Ok(Exit::Ok);
            }
            let now = now();
            let mut rows: Vec<_> = items
                .iter()
                .map(crate::view::summary::Summary::of_archived)
                .collect();
            if args.sort_by.is_some() {
                list::sort(&mut rows, args.sort_by);
            }
            let layout = Layout {
                namespaces: namespace.is_none(),
                wide: args.output == Some(ListFormat::Wide),
            };
            print(&list::render(
                &rows,
                layout,
                !args.no_headers,
                now,
                Style::detect(stdout_is_terminal()),
            ))?;
        }
    }
    Ok(Exit::Ok)
}

fn to_json(value: &impl serde::Serialize) -> Result<String, CliError> {
    serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Config(format!("cannot print JSON: {e}")))
}

/// The archived object of `name` in `namespace`.
async fn object(archive: &Archive, namespace: &str, name: &str) -> Result<CrewExecution, CliError> {
    archive
        .get_json(&format!(
            "{}/{}",
            executions_path(Some(namespace)),
            escape(name)
        ))
        .await
}

/// The archived result of `step` of `name`, checked against the SHA-256 the archive recorded for it.
pub(crate) async fn archived_result(
    archive: &Archive,
    namespace: &str,
    name: &str,
    step: &str,
) -> Result<crate::archive::Answer, CliError> {
    let path = format!(
        "{}/{}/results/{}",
        executions_path(Some(namespace)),
        escape(name),
        escape(step)
    );
    let answer = archive.get(&path).await?;
    let digest = crew_core::lifecycle::results::sha256_hex(&answer.body);
    if answer
        .sha256
        .as_deref()
        .is_some_and(|recorded| recorded != digest)
    {
        return Err(CliError::Usage(format!(
            "the archived result of step \"{step}\" does not match its recorded SHA-256"
        )));
    }
    Ok(answer)
}

/// `describe --archived`: the run as it was when it finished (its Events and Jobs are not archived).
pub async fn describe(target: &Target, namespace: &str, name: &str) -> Result<Exit, CliError> {
    let archive = Archive::connect(target).await?;
    let cx = object(&archive, namespace, name).await?;
    note("(from the archive: Events, Jobs and deliveries are not kept there)\n");
    let described = Described {
        cx: &cx,
        events: Vec::new(),
        jobs: Vec::new(),
        waiting: None,
        deliveries: Vec::new(),
    };
    print(&render(
        &described,
        now(),
        Style::detect(stdout_is_terminal()),
    ))?;
    Ok(Exit::Ok)
}

/// `history --archived`.
pub async fn history(target: &Target, namespace: &str, name: &str) -> Result<Exit, CliError> {
    let archive = Archive::connect(target).await?;
    let cx = object(&archive, namespace, name).await?;
    print(&crate::view::history::render(
        &cx,
        Style::detect(stdout_is_terminal()),
    ))?;
    Ok(Exit::Ok)
}

/// `result --archived`: the step's full result as archived (checked against its SHA-256).
pub async fn result(target: &Target, namespace: &str, args: &ResultArgs) -> Result<Exit, CliError> {
    let archive = Archive::connect(target).await?;
    let step = match &args.step {
        Some(step) => step.clone(),
        None => {
            let cx = object(&archive, namespace, &args.name).await?;
            let status = cx.status.unwrap_or_default();
            status
                .steps
                .iter()
                .rev()
                .find(|s| s.result_ref.is_some())
                .map(|s| s.name.clone())
                .ok_or_else(|| {
                    CliError::Usage(format!("archived \"{}\" has no posted result", args.name))
                })?
        }
    };
    let answer = archived_result(&archive, namespace, &args.name, &step).await?;
    let digest = crew_core::lifecycle::results::sha256_hex(&answer.body);
    let text = String::from_utf8_lossy(&answer.body).into_owned();
    match args.output {
        ResultFormat::Raw => {
            print(&text)?;
            if !text.ends_with('\n') && stdout_is_terminal() {
                print("\n")?;
            }
        }
        ResultFormat::Json => {
            let value = (answer.content_type.starts_with("application/json"))
                .then(|| serde_json::from_str(&text).ok())
                .flatten()
                .unwrap_or_else(|| serde_json::Value::String(text.clone()));
            let document = serde_json::json!({
                "execution": args.name,
                "step": step,
                "source": "archive",
                "contentType": answer.content_type,
                "size": answer.body.len(),
                "sha256": digest,
                "result": value,
            });
            print(&format!("{}\n", to_json(&document)?))?;
        }
    }
    Ok(Exit::Ok)
}

/// `stats --archived`: the archive's rollups since `--since` (default 30 days).
pub async fn stats(
    target: &Target,
    namespace: Option<String>,
    args: &StatsArgs,
) -> Result<Exit, CliError> {
    let archive = Archive::connect(target).await?;
    let since = args.since.map_or(30 * 86_400, |d| d.as_secs());
    let path = match &namespace {
        Some(ns) => format!("/v1/namespaces/{}/stats?since={since}s", escape(ns)),
        None => format!("/v1/stats?since={since}s"),
    };
    let stats: Stats = archive.get_json(&path).await?;
    match args.output {
        Some(StatsFormat::Json) => print(&format!("{}\n", to_json(&stats)?))?,
        None => print(&crate::view::archive_stats::render(
            &stats,
            namespace.as_deref().unwrap_or("*"),
            since,
            Style::detect(stdout_is_terminal()),
        ))?,
    }
    Ok(Exit::Ok)
}
