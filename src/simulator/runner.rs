//! The per-pod tasks: play one pod's lifecycle (Running, then terminated) or force-delete it, through the
//! API with bounded concurrency and a few retries.

use super::plan::{Outcome, Plan};
use super::pod::SimPod;
use super::status::{ContainerRef, Termination, running_patch, terminated_patch};
use super::view::PodId;
use jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Tries per API call before giving up.
const MAX_TRIES: u32 = 5;
/// Wait before the first retry; doubles each time.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);

/// Counters for the summary log.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Pods marked Running.
    pub started: AtomicU64,
    /// Simulated pods seen Succeeded (counted from the watch: a task may be cancelled by the event of its
    /// own last patch before it hears the response).
    pub succeeded: AtomicU64,
    /// Simulated pods seen Failed.
    pub failed: AtomicU64,
    /// Pods left Running forever.
    pub hanging: AtomicU64,
    /// Simulated pods deleted before they finished (deadline, cancellation, GC).
    pub deleted: AtomicU64,
    /// Forced deletes done.
    pub force_deleted: AtomicU64,
    /// Tasks that gave up after API errors.
    pub gave_up: AtomicU64,
}

impl Stats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters, in field order.
    pub fn snapshot(&self) -> [u64; 7] {
        [
            &self.started,
            &self.succeeded,
            &self.failed,
            &self.hanging,
            &self.deleted,
            &self.force_deleted,
            &self.gave_up,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

/// What every task shares.
pub(crate) struct Shared {
    pub client: kube::Client,
    /// Bounds the API calls in flight that mark pods Running.
    pub start_permits: Semaphore,
    /// Bounds the API calls in flight that terminate or delete pods.
    pub end_permits: Semaphore,
    /// Pending -> Running delay.
    pub start_delay: Duration,
    pub stats: Stats,
}

/// How a task ended; decides whether the tracker keeps the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskOutcome {
    /// The pod was marked terminated.
    Finished,
    /// The pod runs forever (`sim.crew.dev/hang`).
    Hanging,
    /// The pod was force-deleted.
    Deleted,
    /// The pod disappeared (or was replaced) under us.
    Gone,
    /// An API call kept failing; a later event of the pod will try again.
    GaveUp,
}

/// One pod to run.
#[derive(Debug, Clone)]
pub(crate) struct Work {
    pub id: PodId,
    pub containers: Vec<ContainerRef>,
    pub init_containers: Vec<ContainerRef>,
    pub plan: Plan,
    /// `startTime` of a pod already `Running`.
    pub running_since: Option<Timestamp>,
}

enum CallError {
    /// 404, or 409 on a UID precondition: the pod we meant is no more.
    Gone,
    /// Not retryable, or still failing after [`MAX_TRIES`].
    Failed(kube::Error),
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// Which pool of API permits a call draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Start,
    End,
}

/// Runs `call` with an API permit, retrying transient errors with exponential backoff.
async fn with_retries<T, F, Fut>(
    shared: &Shared,
    lane: Lane,
    what: &str,
    id: &PodId,
    mut call: F,
) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut delay = FIRST_RETRY_DELAY;
    let mut tries = 0;
    loop {
        tries += 1;
        let result = {
            // The semaphore is never closed; without a permit we would merely exceed the bound.
            let permits = match lane {
                Lane::Start => &shared.start_permits,
                Lane::End => &shared.end_permits,
            };
            let _permit = permits.acquire().await.ok();
            call().await
        };
        match result {
            Ok(v) => return Ok(v),
            Err(e) if matches!(status_code(&e), Some(404 | 409)) => {
                debug!(pod = %id, what, error = %e, "pod gone");
                return Err(CallError::Gone);
            }
            Err(e) if tries < MAX_TRIES && retryable(&e) => {
                debug!(pod = %id, what, tries, error = %e, "retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(CallError::Failed(e)),
        }
    }
}

fn give_up(shared: &Shared, id: &PodId, what: &str, e: &kube::Error) -> TaskOutcome {
    warn!(pod = %id, what, error = %e, "giving up on pod for now");
    Stats::bump(&shared.stats.gave_up);
    TaskOutcome::GaveUp
}

async fn patch_status(
    shared: &Shared,
    lane: Lane,
    id: &PodId,
    what: &str,
    patch: serde_json::Value,
) -> Result<(), TaskOutcome> {
    let api: Api<SimPod> = Api::namespaced(shared.client.clone(), &id.namespace);
    let patch = Patch::Merge(patch);
    let params = PatchParams::default();
    match with_retries(shared, lane, what, id, || {
        api.patch_status(&id.name, &params, &patch)
    })
    .await
    {
        Ok(_) => Ok(()),
        Err(CallError::Gone) => Err(TaskOutcome::Gone),
        Err(CallError::Failed(e)) => Err(give_up(shared, id, what, &e)),
    }
}

/// Plays the pod: `Running` after the start delay (unless it already is), then terminated after the plan's
/// duration, counted from its start.
pub(crate) async fn simulate(shared: &Shared, work: Work) -> TaskOutcome {
    let id = &work.id;
    let (started, deadline) = match work.running_since {
        Some(since) => {
            // Already running (simulator restart): finish relative to its recorded start.
            let elapsed = since
                .duration_until(Timestamp::now())
                .try_into()
                .unwrap_or(Duration::ZERO);
            let remaining = work.plan.duration.saturating_sub(elapsed);
            debug!(pod = %id, ?remaining, "adopting running pod");
            (since, Instant::now() + remaining)
        }
        None => {
            if !shared.start_delay.is_zero() {
                tokio::time::sleep(shared.start_delay).await;
            }
            let now = Timestamp::now();
            let patch = running_patch(&work.containers, &work.init_containers, now);
            if let Err(outcome) = patch_status(shared, Lane::Start, id, "mark running", patch).await
            {
                return outcome;
            }
            Stats::bump(&shared.stats.started);
            debug!(pod = %id, "running");
            (now, Instant::now() + work.plan.duration)
        }
    };
    let (exit_code, message) = match &work.plan.outcome {
        Outcome::Hang => {
            Stats::bump(&shared.stats.hanging);
            debug!(pod = %id, "hanging");
            return TaskOutcome::Hanging;
        }
        Outcome::Exit { code, message } => (*code, message.as_deref()),
    };
    tokio::time::sleep_until(deadline).await;
    let end = Termination {
        exit_code,
        message,
        finished: Timestamp::now(),
    };
    let patch = terminated_patch(&work.containers, &work.init_containers, started, &end);
    if let Err(outcome) = patch_status(shared, Lane::End, id, "mark terminated", patch).await {
        return outcome;
    }
    debug!(pod = %id, exit_code, "terminated");
    TaskOutcome::Finished
}

/// Deletes the pod with grace period 0 (only this UID): there is no kubelet to confirm a graceful delete.
pub(crate) async fn force_delete(shared: &Shared, id: PodId) -> TaskOutcome {
    let api: Api<SimPod> = Api::namespaced(shared.client.clone(), &id.namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(id.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match with_retries(shared, Lane::End, "force delete", &id, || {
        api.delete(&id.name, &params)
    })
    .await
    {
        Ok(_) => {
            Stats::bump(&shared.stats.force_deleted);
            debug!(pod = %id, "force-deleted");
            TaskOutcome::Deleted
        }
        Err(CallError::Gone) => TaskOutcome::Gone,
        Err(CallError::Failed(e)) => give_up(shared, &id, "force delete", &e),
    }
}
