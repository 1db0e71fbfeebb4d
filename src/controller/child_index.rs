//! In-memory index of the children the operator watches: Job summaries by execution, worker outcomes by Job.
//!
//! Fed from the watch streams (a re-list is buffered and swapped in whole at its end, so reconciles never see a
//! half-listed view); read by reconciles. Keeps small summaries, not whole objects, so memory stays flat at scale.

use super::observe::{JobRecord, pod_outcome, summarise_job};
use crate::build::labels;
use crate::lifecycle::{ObservedJob, WorkerOutcome};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::watcher::Event;
use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

/// (namespace, name) of a child, or (namespace, execution label) of an execution.
type Key = (String, String);

#[derive(Default)]
struct Jobs {
    by_execution: HashMap<Key, BTreeMap<String, JobRecord>>,
    relist: Option<HashMap<Key, BTreeMap<String, JobRecord>>>,
    synced: bool,
}

#[derive(Default)]
struct Outcomes {
    by_job: HashMap<Key, WorkerOutcome>,
    relist: Option<HashMap<Key, WorkerOutcome>>,
    synced: bool,
}

/// The index. Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct ChildIndex {
    jobs: RwLock<Jobs>,
    outcomes: RwLock<Outcomes>,
}

fn execution_key(job: &Job) -> Option<Key> {
    Some((
        job.namespace()?,
        job.labels().get(labels::EXECUTION)?.clone(),
    ))
}

impl ChildIndex {
    /// Whether both watches have completed their first list.
    pub fn synced(&self) -> bool {
        self.jobs.read().is_ok_and(|j| j.synced) && self.outcomes.read().is_ok_and(|o| o.synced)
    }

    /// Applies one Job watch event.
    pub fn apply_job_event(&self, event: &Event<Job>) {
        let Ok(mut jobs) = self.jobs.write() else {
            return;
        };
        match event {
            Event::Init => jobs.relist = Some(HashMap::new()),
            Event::InitApply(job) => {
                if let (Some(relist), Some(key), Some(record)) =
                    (jobs.relist.as_mut(), execution_key(job), summarise_job(job))
                {
                    relist
                        .entry(key)
                        .or_default()
                        .insert(job.name_any(), record);
                }
            }
            Event::InitDone => {
                if let Some(relist) = jobs.relist.take() {
                    jobs.by_execution = relist;
                }
                jobs.synced = true;
            }
            Event::Apply(job) => {
                if let (Some(key), Some(record)) = (execution_key(job), summarise_job(job)) {
                    jobs.by_execution
                        .entry(key)
                        .or_default()
                        .insert(job.name_any(), record);
                }
            }
            Event::Delete(job) => {
                if let Some(key) = execution_key(job)
                    && let Some(children) = jobs.by_execution.get_mut(&key)
                {
                    children.remove(&job.name_any());
                    if children.is_empty() {
                        jobs.by_execution.remove(&key);
                    }
                }
                if let Some(ns) = job.namespace() {
                    self.forget_outcome(&ns, &job.name_any());
                }
            }
        }
    }

    /// Applies one pod watch event (only terminated worker containers are kept).
    pub fn apply_pod_event(&self, event: &Event<Pod>) {
        let Ok(mut outcomes) = self.outcomes.write() else {
            return;
        };
        let keyed = |pod: &Pod| {
            Some(pod.namespace()?)
                .zip(pod_outcome(pod))
                .map(|(ns, (job, o))| ((ns, job), o))
        };
        match event {
            Event::Init => outcomes.relist = Some(HashMap::new()),
            Event::InitApply(pod) => {
                if let (Some(relist), Some((key, outcome))) = (outcomes.relist.as_mut(), keyed(pod))
                {
                    relist.insert(key, outcome);
                }
            }
            Event::InitDone => {
                if let Some(relist) = outcomes.relist.take() {
                    outcomes.by_job = relist;
                }
                outcomes.synced = true;
            }
            Event::Apply(pod) => {
                if let Some((key, outcome)) = keyed(pod) {
                    outcomes.by_job.insert(key, outcome);
                }
            }
            // Keep the outcome when the pod goes: the Job may be read later. It is dropped with the Job.
            Event::Delete(_) => {}
        }
    }

    /// Jobs labelled for the execution `name` in `namespace`, with `owned` set for those controlled by `uid`, and
    /// the worker outcome of each finished one.
    pub fn jobs_of(&self, namespace: &str, name: &str, uid: &str) -> Vec<ObservedJob> {
        let key = (
            namespace.to_string(),
            crate::lifecycle::names::label_value(name),
        );
        let Ok(jobs) = self.jobs.read() else {
            return Vec::new();
        };
        let Some(children) = jobs.by_execution.get(&key) else {
            return Vec::new();
        };
        let outcomes = self.outcomes.read().ok();
        children
            .values()
            .map(|record| {
                let mut job = record.summary.clone();
                job.owned = record.owner_uid.as_deref() == Some(uid);
                job.worker = outcomes.as_ref().and_then(|o| {
                    o.by_job
                        .get(&(namespace.to_string(), job.name.clone()))
                        .cloned()
                });
                job
            })
            .collect()
    }

    /// Drops the worker outcomes of Jobs that no longer exist (called after a Job is deleted).
    pub fn forget_outcome(&self, namespace: &str, job: &str) {
        if let Ok(mut outcomes) = self.outcomes.write() {
            outcomes
                .by_job
                .remove(&(namespace.to_string(), job.to_string()));
        }
    }

    /// Number of Jobs indexed (for metrics and memory checks).
    pub fn job_count(&self) -> usize {
        self.jobs
            .read()
            .map_or(0, |j| j.by_execution.values().map(BTreeMap::len).sum())
    }
}
