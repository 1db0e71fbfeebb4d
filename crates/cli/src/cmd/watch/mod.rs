//! `watch`: live progress until every watched execution has finished.

mod tracker;

use crate::args::{Filter, WatchArgs};
use crate::clock::now;
use crate::cluster::Cluster;
use crate::error::{CliError, Exit};
use crate::output::{note, print, stdout_is_terminal};
use crate::view::summary::Summary;
use crate::view::watch::{bar_message, changed, plain_line, tally, verdict};
use crew_api::CrewExecution;
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kube::runtime::watcher;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tracker::{Key, Tracker, Update, key_of};

/// How progress is shown.
enum Display {
    /// One bar per execution (stdout is a terminal).
    Bars {
        multi: MultiProgress,
        bars: BTreeMap<Key, ProgressBar>,
        width: usize,
    },
    /// One line per transition.
    Lines,
}

impl Display {
    fn show(
        &mut self,
        s: &Summary,
        before: Option<&Summary>,
        qualified: bool,
    ) -> Result<(), CliError> {
        match self {
            Display::Lines => {
                if changed(before, s) {
                    print(&format!("{}\n", plain_line(s, now(), qualified)))?;
                }
            }
            Display::Bars { multi, bars, width } => {
                let key = format!("{}/{}", s.namespace, s.name);
                let label = if qualified {
                    key.clone()
                } else {
                    s.name.clone()
                };
                let bar = bars.entry(key).or_insert_with(|| {
                    let style = ProgressStyle::with_template("{prefix}  {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar());
                    let bar = multi.add(ProgressBar::new(u64::from(s.total)));
                    bar.set_style(style);
                    bar
                });
                bar.set_prefix(format!(
                    "{label:<width$}  {} {}/{}",
                    crate::view::bar::bar(s.percent, 100, 20),
                    s.completed,
                    s.total,
                    width = *width
                ));
                bar.set_message(bar_message(s));
                if s.is_terminal() && !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
        Ok(())
    }
}

pub async fn run(cluster: &Cluster, args: &WatchArgs) -> Result<Exit, CliError> {
    if !args.names.is_empty() && cluster.namespace.is_none() {
        return Err(CliError::Usage(
            "names need one namespace: use -n instead of -A".into(),
        ));
    }
    let names: BTreeSet<String> = args.names.iter().cloned().collect();
    // Read once first: a name that does not exist, a cluster that cannot be reached or a Forbidden is an error
    // now, not a watch that waits forever.
    let mut current: BTreeMap<Key, Summary> = BTreeMap::new();
    if names.is_empty() {
        let filter = Filter {
            selector: args.selector.clone(),
            ..Default::default()
        };
        for cx in cluster.executions(&filter).await? {
            current.insert(key_of(&cx), Summary::of(&cx, now()));
        }
        if current.is_empty() {
            return Err(CliError::Usage(
                "no executions match: nothing to watch".into(),
            ));
        }
    } else {
        for name in &names {
            let cx = cluster.execution(name).await?;
            current.insert(key_of(&cx), Summary::of(&cx, now()));
        }
    }
    let qualified = cluster.namespace.is_none();
    let mut display = if stdout_is_terminal() {
        let width = current
            .values()
            .map(|s| {
                if qualified {
                    s.namespace.len() + 1 + s.name.len()
                } else {
                    s.name.len()
                }
            })
            .max()
            .unwrap_or(10);
        Display::Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            bars: BTreeMap::new(),
            width,
        }
    } else {
        Display::Lines
    };
    for s in current.values() {
        display.show(s, None, qualified)?;
    }
    let mut tracker = Tracker::new(names.clone(), current);
    let watching = watch_until_done(cluster, args, &names, &mut tracker, &mut display, qualified);
    let outcome = match args.timeout {
        Some(limit) => tokio::time::timeout(limit, watching).await.ok(),
        None => Some(watching.await),
    };
    if let Display::Bars { bars, .. } = &display {
        for bar in bars.values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
    match outcome {
        None => {
            let open = tracker
                .current
                .values()
                .filter(|s| !s.is_terminal())
                .count();
            note(&format!(
                "timed out after {}: {open} execution(s) not finished\n",
                crate::view::time::exact(args.timeout.map(|d| d.as_secs() as i64).unwrap_or(0))
            ));
            Ok(Exit::TimedOut)
        }
        Some(Err(e)) => Err(e),
        Some(Ok(deleted)) => {
            let finished: Vec<Summary> = tracker.current.into_values().collect();
            note(&format!("{}\n", tally(&finished, deleted)));
            Ok(verdict(&finished, deleted))
        }
    }
}

/// Follows the watch until every watched execution is terminal; returns how many were deleted meanwhile.
async fn watch_until_done(
    cluster: &Cluster,
    args: &WatchArgs,
    names: &BTreeSet<String>,
    tracker: &mut Tracker,
    display: &mut Display,
    qualified: bool,
) -> Result<usize, CliError> {
    if tracker.all_done() {
        return Ok(0);
    }
    let mut config = watcher::Config::default();
    if let Some(selector) = &args.selector {
        config = config.labels(selector);
    }
    if let [name] = names.iter().collect::<Vec<_>>().as_slice() {
        config = config.fields(&format!("metadata.name={name}"));
    }
    let mut events = watcher(cluster.api::<CrewExecution>(), config).boxed();
    // Running durations move every second even when nothing is written.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = tick.tick() => {
                if matches!(display, Display::Bars { .. }) {
                    for s in tracker.current.values_mut().filter(|s| !s.is_terminal()) {
                        if let Some(start) = s.started {
                            s.duration = Some(crate::view::time::seconds_between(start, now()));
                        }
                    }
                    let shown: Vec<Summary> = tracker.current.values().cloned().collect();
                    for s in &shown {
                        display.show(s, Some(s), qualified)?;
                    }
                }
                continue;
            }
        };
        let Some(event) = event else { break };
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                note(&format!("watch: {e}; retrying\n"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for update in tracker.on_event(event, now()) {
            match update {
                Update::Changed { now, before } => {
                    display.show(&now, before.as_deref(), qualified)?
                }
                Update::Deleted(key) => note(&format!("{key} was deleted before it finished\n")),
            }
        }
        if tracker.all_done() {
            break;
        }
    }
    Ok(tracker.deleted)
}
