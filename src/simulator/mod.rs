//! A pod simulator that plays the kubelet (KWOK-style) for the worker pods of our Jobs, so that a control
//! plane without nodes still turns pod outcomes into Job status.
//!
//! One watch on the pods matching a label selector drives everything: each active pod gets a tokio task that
//! patches `pods/status` to `Running` after [`SimulatorConfig::start_delay`], then to `Succeeded`/`Failed`
//! after its duration; pods being deleted are force-deleted (grace period 0). API calls are bounded
//! ([`MAX_CONCURRENT_REQUESTS`]) and retried with a short backoff; pods are decoded into the slim
//! [`pod::SimPod`]. Per-pod behaviour comes from annotations (see [`plan`]):
//!
//! | annotation                   | value                                  | effect                                          |
//! |------------------------------|----------------------------------------|-------------------------------------------------|
//! | `sim.crew.dev/duration`      | `2s`, `250ms`, `1m30s`, `0`            | time from Running to terminated                 |
//! | `sim.crew.dev/exit-code`     | integer, `1`                           | 0 = Succeeded, else Failed                      |
//! | `sim.crew.dev/message`       | any text                               | termination message (capped at 4096 bytes)      |
//! | `sim.crew.dev/fail-attempts` | `N`                                    | attempts `<= N` (label `crew.dev/attempt`) fail |
//! | `sim.crew.dev/hang`          | `true` / `false`                       | Running forever                                 |
//!
//! Idempotent across restarts: a pod already `Running` finishes `duration` after its `startTime`; a
//! finished pod is left alone. Not simulated: container restarts (`restartPolicy: OnFailure`/`Always` pods
//! still end `Failed` on a non-zero exit code), probes, resources, node binding.

pub mod duration;
pub mod plan;
pub mod pod;
mod runner;
pub mod status;
#[cfg(test)]
mod tests;
mod tracker;
pub mod view;

pub use duration::{DurationParseError, parse_duration};

use futures::StreamExt;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use pod::SimPod;
use runner::{Shared, Stats};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::{info, warn};
use tracker::Tracker;

/// API calls in flight at most: half for starting pods, half for finishing or deleting them, so that a
/// burst of new pods does not hold up the completions behind it.
pub const MAX_CONCURRENT_REQUESTS: usize = 32;
/// Interval of the summary log (only written when something changed).
const SUMMARY_EVERY: Duration = Duration::from_secs(10);
/// Tries of the start-up probe before giving up on transient errors.
const PROBE_TRIES: u32 = 10;

/// What to simulate and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatorConfig {
    /// Namespace to watch; `None` = all namespaces.
    pub namespace: Option<String>,
    /// Label selector of the pods to simulate.
    pub label_selector: String,
    /// Time from Running to terminated, unless `sim.crew.dev/duration` says otherwise.
    pub default_duration: Duration,
    /// Exit code, unless `sim.crew.dev/exit-code` (or `fail-attempts`) says otherwise.
    pub default_exit_code: i32,
    /// Time from first seeing a pod to marking it Running.
    pub start_delay: Duration,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            namespace: None,
            label_selector: "crew.dev/execution".to_string(),
            default_duration: Duration::from_secs(1),
            default_exit_code: 0,
            start_delay: Duration::ZERO,
        }
    }
}

/// Why the simulator could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulatorError {
    /// Listing the selected pods failed at start-up: unreachable API server, missing RBAC permissions or an
    /// invalid label selector.
    #[error("cannot list pods matching {selector:?}{scope}: {source}")]
    Probe {
        /// The label selector.
        selector: String,
        /// ` in namespace X`, or empty.
        scope: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Fails fast on a bad selector or missing permissions; waits out a few transient errors.
async fn probe(api: &Api<SimPod>, config: &SimulatorConfig) -> Result<(), SimulatorError> {
    let params = ListParams::default()
        .labels(&config.label_selector)
        .limit(1);
    let mut delay = Duration::from_millis(200);
    let mut tries = 0;
    loop {
        tries += 1;
        match api.list_metadata(&params).await {
            Ok(_) => return Ok(()),
            Err(e) if tries < PROBE_TRIES && transient(&e) => {
                warn!(error = %e, "API server not ready; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(source) => {
                return Err(SimulatorError::Probe {
                    selector: config.label_selector.clone(),
                    scope: config
                        .namespace
                        .as_ref()
                        .map(|ns| format!(" in namespace {ns}"))
                        .unwrap_or_default(),
                    source,
                });
            }
        }
    }
}

fn log_summary(stats: &Stats, tracked: usize) {
    let [
        started,
        succeeded,
        failed,
        hanging,
        deleted,
        force_deleted,
        gave_up,
    ] = stats.snapshot();
    info!(
        tracked,
        started,
        succeeded,
        failed,
        hanging,
        deleted,
        force_deleted,
        gave_up,
        "pod simulator summary"
    );
}

/// Simulates the selected pods until the watch stream ends (it does not with the default backoff: abort or
/// drop the task to stop; every pod task is aborted with it).
pub async fn run(client: Client, config: SimulatorConfig) -> Result<(), SimulatorError> {
    let api: Api<SimPod> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    if config.label_selector.trim().is_empty() {
        warn!("empty label selector: simulating every pod");
    }
    probe(&api, &config).await?;
    info!(
        namespace = config.namespace.as_deref().unwrap_or("<all>"),
        selector = %config.label_selector,
        default_duration = ?config.default_duration,
        default_exit_code = config.default_exit_code,
        start_delay = ?config.start_delay,
        "pod simulator started"
    );

    let shared = Arc::new(Shared {
        client,
        start_permits: Semaphore::new(MAX_CONCURRENT_REQUESTS / 2),
        end_permits: Semaphore::new(MAX_CONCURRENT_REQUESTS - MAX_CONCURRENT_REQUESTS / 2),
        start_delay: config.start_delay,
        stats: Stats::default(),
    });
    let defaults = plan::Defaults {
        duration: config.default_duration,
        exit_code: config.default_exit_code,
    };
    let mut tracker = Tracker::new(Arc::clone(&shared), defaults);
    let events = watcher(
        api,
        watcher::Config::default().labels(&config.label_selector),
    )
    .default_backoff();
    let mut events = std::pin::pin!(events);
    let mut ticker = tokio::time::interval(SUMMARY_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_summary = None;

    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => tracker.handle(event),
                Some(Err(e)) => warn!(error = %e, "pod watch failed; retrying with backoff"),
                None => break,
            },
            Some(done) = tracker.tasks.join_next_with_id(), if !tracker.tasks.is_empty() => {
                tracker.task_done(done);
            }
            _ = ticker.tick() => {
                let now = (shared.stats.snapshot(), tracker.tracked());
                if last_summary.is_some_and(|last| last != now) {
                    log_summary(&shared.stats, tracker.tracked());
                }
                last_summary = Some(now);
            }
        }
    }
    log_summary(&shared.stats, tracker.tracked());
    info!("pod watch ended; pod simulator stopped");
    Ok(())
}
