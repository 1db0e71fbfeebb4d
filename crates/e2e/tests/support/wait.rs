//! Waiting on the cluster by watching it: one object followed with `watch_object` (what
//! `kube::runtime::wait::await_condition` is built on), or a list followed with a `watcher` into a reflector store,
//! until a named condition holds, under a time limit. A wait that runs out of time fails with what it waited for
//! and the last state it saw. [`wait_until`] is the fallback for what no watch can follow.

use super::observed::Observed;
use futures::StreamExt;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::{self, Event, watch_object, watcher};
use kube::{Api, Resource, ResourceExt};
use std::fmt;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many objects of a list a timeout message shows.
const LIST_SHOWN: usize = 40;

/// A condition and the words that say what it waits for (a timeout message quotes them). The test is
/// `FnMut(Option<&K>) -> bool` for one object (`None`: it does not exist) or `FnMut(&[Arc<K>]) -> bool` for a
/// list; the named conditions are in [`super::conditions`].
pub struct Named<F> {
    /// What the wait is for, e.g. "phase Succeeded".
    pub what: String,
    /// Whether the state seen holds what is waited for.
    pub test: F,
}

/// A condition on one object that may not exist (`None`).
pub fn when<K, F>(what: impl Into<String>, test: F) -> Named<F>
where
    F: FnMut(Option<&K>) -> bool,
{
    Named {
        what: what.into(),
        test,
    }
}

/// A condition on one object that holds only while it exists.
pub fn when_object<K, F>(
    what: impl Into<String>,
    mut test: F,
) -> Named<impl FnMut(Option<&K>) -> bool>
where
    F: FnMut(&K) -> bool,
{
    when(what, move |object: Option<&K>| {
        object.is_some_and(&mut test)
    })
}

/// A condition on all the objects a list watch currently sees (called once the list is complete, then after every
/// change).
pub fn when_list<K, F>(what: impl Into<String>, test: F) -> Named<F>
where
    F: FnMut(&[Arc<K>]) -> bool,
{
    Named {
        what: what.into(),
        test,
    }
}

impl<F> Named<F> {
    /// Holds when `self` or `other` does.
    pub fn or<K, G>(self, mut other: Named<G>) -> Named<impl FnMut(Option<&K>) -> bool>
    where
        F: FnMut(Option<&K>) -> bool,
        G: FnMut(Option<&K>) -> bool,
    {
        let mut test = self.test;
        when(
            format!("{} or {}", self.what, other.what),
            move |object: Option<&K>| test(object) || (other.test)(object),
        )
    }

    /// Holds for an existing object for which `self` does not.
    pub fn not<K>(self) -> Named<impl FnMut(Option<&K>) -> bool>
    where
        F: FnMut(Option<&K>) -> bool,
    {
        let mut test = self.test;
        when(format!("not {}", self.what), move |object: Option<&K>| {
            object.is_some() && !test(object)
        })
    }
}

/// A wait that ran out of time: what it waited for and what it saw last.
#[derive(Debug)]
pub struct TimedOut {
    /// What was waited for, on which object or list.
    pub what: String,
    /// The time limit.
    pub limit: Duration,
    /// The last state seen, as [`Observed`] shows it.
    pub last: String,
    /// The watch's last error, if it had one.
    pub error: Option<String>,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for {}\nlast seen: {}",
            self.limit, self.what, self.last
        )?;
        if let Some(error) = &self.error {
            write!(f, "\nlast watch error: {error}")?;
        }
        Ok(())
    }
}

/// Where `api` points, for messages: "Kind namespace/" or "Kind ".
fn place<K: Resource<DynamicType = ()>>(api: &Api<K>) -> String {
    match api.namespace() {
        Some(ns) => format!("{} {ns}/", K::kind(&())),
        None => format!("{} ", K::kind(&())),
    }
}

/// Follows object `name` until `until` holds for it (or for its absence); returns it as then seen (`None`: absent).
/// Unlike `await_condition`, a watch error (an API server restart) does not end the wait: the watch resumes after
/// a backoff, and the error is reported if the time runs out.
pub async fn try_wait_object<K, F>(
    api: Api<K>,
    name: &str,
    limit: Duration,
    until: Named<F>,
) -> Result<Option<K>, TimedOut>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + fmt::Debug
        + Send
        + Observed
        + 'static,
    F: FnMut(Option<&K>) -> bool,
{
    let Named { what, mut test } = until;
    let what = format!("{}{name}: {what}", place(&api));
    // None: nothing seen yet; Some(None): seen absent.
    let mut last: Option<Option<K>> = None;
    let mut error = None;
    let met = tokio::time::timeout(limit, async {
        let mut updates = pin!(watch_object(api, name).default_backoff());
        while let Some(update) = updates.next().await {
            match update {
                Ok(object) => {
                    let holds = test(object.as_ref());
                    last = Some(object);
                    if holds {
                        return true;
                    }
                }
                Err(e) => error = Some(e.to_string()),
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    match last {
        Some(object) if met => Ok(object),
        last => Err(TimedOut {
            what,
            limit,
            last: match last {
                None => "nothing (the watch never answered)".into(),
                Some(None) => "absent".into(),
                Some(Some(object)) => object.summary(),
            },
            error,
        }),
    }
}

/// [`try_wait_object`] for an object that must exist when `until` holds; panics on a timeout.
pub async fn wait_object<K, F>(api: Api<K>, name: &str, limit: Duration, until: Named<F>) -> K
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + fmt::Debug
        + Send
        + Observed
        + 'static,
    F: FnMut(Option<&K>) -> bool,
{
    let place = format!("{}{name}", place(&api));
    match try_wait_object(api, name, limit, until).await {
        Ok(Some(object)) => object,
        Ok(None) => panic!("{place}: the condition held while it does not exist"),
        Err(timed_out) => panic!("{timed_out}"),
    }
}

/// Waits until object `name` does not exist; panics on a timeout.
pub async fn wait_deleted<K>(api: Api<K>, name: &str, limit: Duration)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + fmt::Debug
        + Send
        + Observed
        + 'static,
{
    if let Err(timed_out) = try_wait_object(api, name, limit, super::conditions::deleted()).await {
        panic!("{timed_out}");
    }
}

/// Follows the objects of `api` that `config` selects until `until` holds for them all; returns them as then
/// seen, by name. A watch error does not end the wait (see [`try_wait_object`]).
pub async fn try_wait_list<K, F>(
    api: Api<K>,
    config: watcher::Config,
    limit: Duration,
    until: Named<F>,
) -> Result<Vec<K>, TimedOut>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + fmt::Debug
        + Send
        + Sync
        + Observed
        + 'static,
    F: FnMut(&[Arc<K>]) -> bool,
{
    let Named { what, mut test } = until;
    let selected = [
        config
            .label_selector
            .as_deref()
            .map(|l| format!("labels {l}")),
        config
            .field_selector
            .as_deref()
            .map(|f| format!("fields {f}")),
    ];
    let selected: Vec<String> = selected.into_iter().flatten().collect();
    let what = format!(
        "{}*{}: {what}",
        place(&api),
        if selected.is_empty() {
            String::new()
        } else {
            format!(" ({})", selected.join(", "))
        }
    );
    let mut writer = Writer::<K>::default();
    let store = writer.as_reader();
    let mut listed = false;
    let mut error = None;
    let met = tokio::time::timeout(limit, async {
        let mut events = pin!(watcher(api, config).default_backoff());
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    error = Some(e.to_string());
                    continue;
                }
            };
            writer.apply_watcher_event(&event);
            match event {
                // A (re)list in progress: the store changes at its end.
                Event::Init | Event::InitApply(_) => continue,
                Event::InitDone => listed = true,
                Event::Apply(_) | Event::Delete(_) => {}
            }
            if test(&store.state()) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    let mut state = store.state();
    state.sort_by_key(|o| o.name_any());
    if met {
        return Ok(state.into_iter().map(Arc::unwrap_or_clone).collect());
    }
    let last = if !listed {
        "nothing (the list never completed)".to_string()
    } else if state.is_empty() {
        "no objects".to_string()
    } else {
        let mut lines: Vec<String> = state.iter().take(LIST_SHOWN).map(|o| o.line()).collect();
        if state.len() > LIST_SHOWN {
            lines.push(format!("... and {} more", state.len() - LIST_SHOWN));
        }
        format!("{} object(s)\n  {}", state.len(), lines.join("\n  "))
    };
    Err(TimedOut {
        what,
        limit,
        last,
        error,
    })
}

/// [`try_wait_list`] that panics on a timeout.
pub async fn wait_list<K, F>(
    api: Api<K>,
    config: watcher::Config,
    limit: Duration,
    until: Named<F>,
) -> Vec<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + fmt::Debug
        + Send
        + Sync
        + Observed
        + 'static,
    F: FnMut(&[Arc<K>]) -> bool,
{
    try_wait_list(api, config, limit, until)
        .await
        .unwrap_or_else(|timed_out| panic!("{timed_out}"))
}

/// The fallback for what no watch can follow (an HTTP endpoint, a metric, an operator's in-memory caches, a
/// process): asks `check` every 100 ms until it holds; panics after `limit`, naming `what`. A condition on
/// Kubernetes objects waits with [`wait_object`] or [`wait_list`] instead.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
