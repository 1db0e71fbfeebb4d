//! `list` (and `list -w`).

use crate::args::{ListArgs, ListFormat};
use crate::clock::now;
use crate::cluster::{Cluster, normalized_phases, phase_name};
use crate::error::{CliError, Exit};
use crate::output::{print, stdout_is_terminal};
use crate::view::list::{self, Layout};
use crate::view::style::Style;
use crate::view::summary::Summary;
use crate::view::table::line;
use crew_api::CrewExecution;
use futures::StreamExt;
use kube::ResourceExt;
use kube::runtime::watcher;

pub async fn run(cluster: &Cluster, args: &ListArgs) -> Result<Exit, CliError> {
    let whole = matches!(args.output, Some(ListFormat::Json | ListFormat::Yaml));
    let items = if whole {
        cluster.executions_whole(&args.filter).await?
    } else {
        cluster.executions(&args.filter).await?
    };
    let now = now();
    let layout = Layout {
        namespaces: cluster.namespace.is_none(),
        wide: args.output == Some(ListFormat::Wide),
    };
    let style = Style::detect(stdout_is_terminal());
    match args.output {
        Some(ListFormat::Json) => print(&format!("{}\n", to_json(&items)?))?,
        Some(ListFormat::Yaml) => print(&to_yaml(&items)?)?,
        Some(ListFormat::Name) => {
            let names: String = items
                .iter()
                .map(|cx| format!("crewexecution.crew.dev/{}\n", cx.name_any()))
                .collect();
            print(&names)?
        }
        None | Some(ListFormat::Wide) => {
            let mut summaries: Vec<Summary> = items.iter().map(|cx| Summary::of(cx, now)).collect();
            list::sort(&mut summaries, args.sort_by);
            if summaries.is_empty() && !args.watch {
                let place = match &cluster.namespace {
                    Some(ns) => format!("in namespace {ns}"),
                    None => "in any namespace".into(),
                };
                crate::output::note(&format!("No executions found {place}.\n"));
            } else {
                print(&list::render(
                    &summaries,
                    layout,
                    !args.no_headers,
                    now,
                    style,
                ))?;
            }
            if args.watch {
                let shown: std::collections::HashMap<String, String> = items
                    .iter()
                    .map(|cx| (key(cx), cx.resource_version().unwrap_or_default()))
                    .collect();
                return follow(cluster, args, layout, &summaries, shown, style).await;
            }
        }
    }
    Ok(Exit::Ok)
}

fn key(cx: &CrewExecution) -> String {
    format!("{}/{}", cx.namespace().unwrap_or_default(), cx.name_any())
}

/// `-w`: a row for every change after the list, aligned to the first table's columns. `listed` holds the
/// resourceVersion of each row shown: the watch's own initial list shows only what changed since.
async fn follow(
    cluster: &Cluster,
    args: &ListArgs,
    layout: Layout,
    rows: &[Summary],
    listed: std::collections::HashMap<String, String>,
    style: Style,
) -> Result<Exit, CliError> {
    let mut table = crate::view::table::Table::new(&list::headers(layout));
    for s in rows {
        table.row(list::cells(s, layout, now()));
    }
    let widths = table.widths(!args.no_headers);
    let mut config = watcher::Config::default();
    if let Some(selector) = &args.filter.selector {
        config = config.labels(selector);
    }
    if let Some(queue) = &args.filter.queue {
        config = config.fields(&format!("spec.queue={queue}"));
    }
    let phases = normalized_phases(&args.filter.phase)?;
    let mut events = watcher(cluster.api::<CrewExecution>(), config).boxed();
    while let Some(event) = events.next().await {
        let cx = match event {
            Ok(watcher::Event::InitApply(cx))
                if listed.get(&key(&cx)) != cx.resource_version().as_ref() =>
            {
                cx
            }
            Ok(watcher::Event::Apply(cx) | watcher::Event::Delete(cx)) => cx,
            Ok(_) => continue,
            Err(e) => {
                crate::output::note(&format!("watch: {e}; retrying\n"));
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        if !phases.is_empty() && !phases.contains(&phase_name(&cx)) {
            continue;
        }
        let cells = list::cells(&Summary::of(&cx, now()), layout, now());
        print(&line(&cells, &widths, 0, style))?;
    }
    Ok(Exit::Ok)
}

/// A `v1 List`, as `kubectl get -o json` prints one (serialized straight from the items, no copy).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListObject<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: serde_json::Value,
    items: &'a [CrewExecution],
}

pub fn list_object(items: &[CrewExecution]) -> ListObject<'_> {
    ListObject {
        api_version: "v1",
        kind: "List",
        metadata: serde_json::json!({"resourceVersion": ""}),
        items,
    }
}

fn to_json(items: &[CrewExecution]) -> Result<String, CliError> {
    serde_json::to_string_pretty(&list_object(items))
        .map_err(|e| CliError::Config(format!("cannot print JSON: {e}")))
}

fn to_yaml(items: &[CrewExecution]) -> Result<String, CliError> {
    serde_saphyr::to_string(&list_object(items))
        .map_err(|e| CliError::Config(format!("cannot print YAML: {e}")))
}
