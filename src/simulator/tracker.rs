//! Turns watch events into per-pod tasks: starts a lifecycle task for each new active pod, a forced delete
//! for each pod being deleted, and cancels tasks of pods that finished, vanished or were replaced.

use super::plan::{Defaults, plan_for};
use super::pod::SimPod;
use super::runner::{Shared, Stats, TaskOutcome, Work, force_delete, simulate};
use super::view::{PodId, Stage, containers, stage};
use kube::runtime::watcher::Event;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use tokio::task::{AbortHandle, Id, JoinError, JoinSet};
use tracing::{debug, info, warn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A lifecycle task runs (or ran to the end: finished or hanging).
    Simulating,
    /// A forced delete runs.
    Deleting,
}

#[derive(Debug)]
struct Tracked {
    uid: String,
    /// The task's id, to match its end to this entry.
    task_id: Id,
    state: State,
    /// `None` once the task ended.
    task: Option<AbortHandle>,
}

impl Tracked {
    fn cancel(&self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The simulator's memory: one entry per pod it acts on, keyed `namespace/name`.
pub(crate) struct Tracker {
    shared: Arc<Shared>,
    defaults: Defaults,
    pods: HashMap<String, Tracked>,
    /// The per-pod tasks; dropping the tracker aborts them all.
    pub tasks: JoinSet<TaskOutcome>,
    /// Key of the pod each task in `tasks` works on.
    task_keys: HashMap<Id, String>,
    /// Keys seen since the last `Init` (a relist), while it is in progress.
    relisted: Option<HashSet<String>>,
    lists: u64,
}

impl Tracker {
    pub fn new(shared: Arc<Shared>, defaults: Defaults) -> Self {
        Self {
            shared,
            defaults,
            pods: HashMap::new(),
            tasks: JoinSet::new(),
            task_keys: HashMap::new(),
            relisted: None,
            lists: 0,
        }
    }

    /// Pods with an entry.
    pub fn tracked(&self) -> usize {
        self.pods.len()
    }

    pub fn handle(&mut self, event: Event<SimPod>) {
        match event {
            Event::Init => self.relisted = Some(HashSet::new()),
            Event::InitApply(pod) => {
                if let (Some(seen), Some(id)) = (&mut self.relisted, PodId::of(&pod)) {
                    seen.insert(id.key());
                }
                self.apply(&pod);
            }
            Event::InitDone => {
                let seen = self.relisted.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .pods
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                for key in &gone {
                    self.forget(key);
                }
                self.lists += 1;
                let verb = if self.lists == 1 {
                    "listed"
                } else {
                    "relisted"
                };
                info!(
                    pods = seen.len(),
                    forgotten = gone.len(),
                    "{verb} matching pods"
                );
            }
            Event::Apply(pod) => self.apply(&pod),
            Event::Delete(pod) => {
                if let Some(id) = PodId::of(&pod) {
                    let key = id.key();
                    if let Some(t) = self.pods.get(&key)
                        && t.uid == id.uid
                    {
                        debug!(pod = %id, "deleted before it finished");
                        Stats::bump(&self.shared.stats.deleted);
                        if t.state == State::Deleting {
                            // Let the forced delete run out (it will find the pod gone).
                            self.pods.remove(&key);
                        } else {
                            self.forget(&key);
                        }
                    }
                }
            }
        }
    }

    fn forget(&mut self, key: &str) {
        if let Some(t) = self.pods.remove(key) {
            t.cancel();
        }
    }

    fn apply(&mut self, pod: &SimPod) {
        let Some(id) = PodId::of(pod) else {
            return;
        };
        let key = id.key();
        if let Some(t) = self.pods.get(&key)
            && t.uid != id.uid
        {
            debug!(pod = %id, "replaced by a new pod of the same name");
            self.forget(&key);
        }
        let current = self.pods.get(&key).map(|t| t.state);
        match stage(pod) {
            Stage::Finished { succeeded } => {
                if current.is_some() {
                    let counter = if succeeded {
                        &self.shared.stats.succeeded
                    } else {
                        &self.shared.stats.failed
                    };
                    Stats::bump(counter);
                    debug!(pod = %id, succeeded, "finished");
                    self.forget(&key);
                }
            }
            Stage::Deleting => {
                if current != Some(State::Deleting) {
                    self.forget(&key);
                    debug!(pod = %id, "being deleted; forcing it");
                    let shared = Arc::clone(&self.shared);
                    let uid = id.uid.clone();
                    self.spawn(key, uid, State::Deleting, async move {
                        force_delete(&shared, id).await
                    });
                }
            }
            Stage::Active { running_since } => {
                if current.is_some() {
                    return;
                }
                let empty = BTreeMap::new();
                let meta = &pod.metadata;
                let (plan, warnings) = plan_for(
                    meta.annotations.as_ref().unwrap_or(&empty),
                    meta.labels.as_ref().unwrap_or(&empty),
                    &self.defaults,
                );
                for warning in warnings {
                    warn!(pod = %id, "{warning}");
                }
                let (containers, init_containers) = containers(pod);
                debug!(pod = %id, ?plan, adopted = running_since.is_some(), "simulating");
                let uid = id.uid.clone();
                let work = Work {
                    id,
                    containers,
                    init_containers,
                    plan,
                    running_since,
                };
                let shared = Arc::clone(&self.shared);
                self.spawn(key, uid, State::Simulating, async move {
                    simulate(&shared, work).await
                });
            }
        }
    }

    fn spawn<F>(&mut self, key: String, uid: String, state: State, task: F)
    where
        F: Future<Output = TaskOutcome> + Send + 'static,
    {
        let abort = self.tasks.spawn(task);
        let task_id = abort.id();
        self.task_keys.insert(task_id, key.clone());
        self.pods.insert(
            key,
            Tracked {
                uid,
                task_id,
                state,
                task: Some(abort),
            },
        );
    }

    /// A task ended (from [`JoinSet::join_next_with_id`]).
    pub fn task_done(&mut self, result: Result<(Id, TaskOutcome), JoinError>) {
        let (task_id, outcome) = match result {
            Ok((task_id, outcome)) => (task_id, outcome),
            Err(e) => {
                if !e.is_cancelled() {
                    warn!(error = %e, "pod task failed; the pod is retried at its next event");
                }
                // A cancelled task's entry is already gone or replaced; a failed one's is dropped.
                (e.id(), TaskOutcome::GaveUp)
            }
        };
        let Some(key) = self.task_keys.remove(&task_id) else {
            return;
        };
        let Some(t) = self.pods.get_mut(&key) else {
            return;
        };
        if t.task_id != task_id {
            return;
        }
        match outcome {
            // Keep the entry so that stale events of the pod do not start it again.
            TaskOutcome::Finished | TaskOutcome::Hanging => t.task = None,
            // Forget it: a later event (if any) starts afresh.
            TaskOutcome::Deleted | TaskOutcome::Gone | TaskOutcome::GaveUp => {
                self.pods.remove(&key);
            }
        }
    }
}
