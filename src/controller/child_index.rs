//! In-memory index of the children the operator watches: Job summaries by execution, worker outcomes by Job.
//!
//! Fed from the watch streams (a re-list is buffered and swapped in whole at its end, so reconciles never see a
//! half-listed view); read by reconciles. Keeps small summaries, not whole objects, so memory stays flat at scale.

use crew_core::build::labels;
use crew_core::lifecycle::ObservedJob;
use crew_core::lifecycle::job_summary::{JobRecord, controller_of, summarise_job};
use crew_core::lifecycle::pod_report::{PodReport, pod_report};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::watcher::Event;
use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

/// (namespace, name) of a child, or (namespace, execution label) of an execution.
type Key = (String, String);

/// One execution's Jobs, sorted by name. A vector sized exactly to its contents: most executions have one to a
/// few Jobs, and a `BTreeMap` node holds room for eleven (2.2 KiB per execution, most of the index at N = 10 000).
#[derive(Default)]
struct JobList(Vec<JobRecord>);

impl JobList {
    fn get(&self, name: &str) -> Option<&JobRecord> {
        self.position(name).ok().map(|at| &self.0[at])
    }

    fn insert(&mut self, record: JobRecord) {
        match self.position(&record.summary.name) {
            Ok(at) => self.0[at] = record,
            Err(at) => {
                self.0.reserve_exact(1);
                self.0.insert(at, record);
            }
        }
    }

    fn remove(&mut self, name: &str) {
        if let Ok(at) = self.position(name) {
            self.0.remove(at);
            self.0.shrink_to_fit();
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut JobRecord> {
        self.position(name).ok().map(|at| &mut self.0[at])
    }

    fn iter(&self) -> std::slice::Iter<'_, JobRecord> {
        self.0.iter()
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0
            .binary_search_by(|record| record.summary.name.as_str().cmp(name))
    }
}

#[derive(Default)]
struct Jobs {
    by_execution: HashMap<Key, JobList>,
    relist: Option<HashMap<Key, JobList>>,
    synced: bool,
}

#[derive(Default)]
struct Outcomes {
    by_job: HashMap<Key, PodReport>,
    relist: Option<HashMap<Key, PodReport>>,
    synced: bool,
}

impl Outcomes {
    /// Drops the outcome of the Job `job` (`job_uid`) in `namespace`, under either key it may have.
    fn remove(&mut self, namespace: &str, job: &str, job_uid: Option<&str>) {
        for key in std::iter::once(job).chain(job_uid) {
            self.by_job
                .remove(&(namespace.to_string(), key.to_string()));
        }
    }
}

/// A live worker pod: what its labels and its controller say (for the progress endpoint, which so maps a token's
/// pod to its step attempt without reading the pod or its Job).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerPod {
    /// The pod's UID.
    pub uid: String,
    /// The Job that made it (`job-name`).
    pub job: String,
    /// That Job's UID (`batch.kubernetes.io/controller-uid`).
    pub job_uid: Option<String>,
    /// Its execution's label value.
    pub execution_label: String,
}

#[derive(Default)]
struct WorkerPods {
    by_pod: HashMap<Key, WorkerPod>,
    relist: Option<HashMap<Key, WorkerPod>>,
}

/// The step attempt a live worker pod runs, as the Job and pod indexes know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerAttempt {
    /// The execution's name (the Job's controller).
    pub execution: String,
    /// The execution's UID.
    pub execution_uid: String,
    /// The Job's name.
    pub job: String,
    /// The step.
    pub step: String,
    /// The attempt.
    pub attempt: u32,
}

/// The index. Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct ChildIndex {
    jobs: RwLock<Jobs>,
    outcomes: RwLock<Outcomes>,
    workers: RwLock<WorkerPods>,
}

fn worker_pod(pod: &Pod) -> Option<(Key, WorkerPod)> {
    let labels = pod.labels();
    Some((
        (pod.namespace()?, pod.name_any()),
        WorkerPod {
            uid: pod.uid()?,
            job: labels.get("job-name")?.clone(),
            job_uid: labels.get("batch.kubernetes.io/controller-uid").cloned(),
            execution_label: labels.get(labels::EXECUTION)?.clone(),
        },
    ))
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
                if let (Some(key), Some(mut record)) = (execution_key(job), summarise_job(job)) {
                    carry_seen_finished(jobs.by_execution.get(&key), &mut record);
                    if let Some(relist) = jobs.relist.as_mut() {
                        relist.entry(key).or_default().insert(record);
                    }
                }
            }
            Event::InitDone => {
                if let Some(relist) = jobs.relist.take() {
                    jobs.by_execution = relist;
                }
                jobs.synced = true;
            }
            Event::Apply(job) => {
                if let (Some(key), Some(mut record)) = (execution_key(job), summarise_job(job)) {
                    let children = jobs.by_execution.entry(key).or_default();
                    carry_seen_finished(Some(children), &mut record);
                    children.insert(record);
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
                    self.forget_outcome(&ns, &job.name_any(), job.uid().as_deref());
                }
            }
        }
    }

    /// Applies one pod watch event. Returns the execution (namespace, name) to reconcile when the event changed
    /// why its worker cannot start (the pod became blocked, or was and is no longer): nothing else about a pod
    /// needs a reconcile before its Job reports.
    pub fn apply_pod_event(&self, event: &Event<Pod>) -> Option<(String, String)> {
        self.apply_worker_pod(event);
        if let Event::Delete(pod) = event {
            self.forget_outcome_of_a_gone_job(pod);
        }
        let blocking_changed = self.apply_pod_report(event)?;
        let (namespace, job) = blocking_changed;
        let Event::Apply(pod) = event else {
            return None;
        };
        let execution = pod.labels().get(labels::EXECUTION)?;
        let jobs = self.jobs.read().ok()?;
        let owner = jobs
            .by_execution
            .get(&(namespace.clone(), execution.clone()))?
            .get(&job)?
            .owner_name
            .clone()?;
        Some((namespace, owner))
    }

    /// Applies one pod watch event to the reports; returns the pod's (namespace, Job name) when the reason its
    /// worker cannot start changed.
    fn apply_pod_report(&self, event: &Event<Pod>) -> Option<(String, String)> {
        let Ok(mut outcomes) = self.outcomes.write() else {
            return None;
        };
        // Keyed by the Job's UID where the pod names it (a Job created again under the same name is another
        // Job), else by the Job's name.
        let keyed = |pod: &Pod| {
            Some(pod.namespace()?)
                .zip(pod_report(pod))
                .map(|(ns, (job, o))| ((ns, o.job_uid.clone().unwrap_or(job)), o))
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
                let (key, report) = keyed(pod)?;
                let known = outcomes.by_job.get(&key);
                // A termination is final: a later report without one (another pod of the Job) does not undo it.
                if report.outcome.is_none() && known.is_some_and(|k| k.outcome.is_some()) {
                    return None;
                }
                let reason = |r: Option<&PodReport>| {
                    r.and_then(|r| r.blocked.as_ref()).map(|b| b.reason.clone())
                };
                let changed = reason(known) != reason(Some(&report));
                outcomes.by_job.insert(key, report);
                if changed {
                    return Some((pod.namespace()?, pod.labels().get("job-name")?.clone()));
                }
            }
            // Keep the outcome when the pod goes: the Job may be read later. It is dropped with the Job.
            Event::Delete(_) => {}
        }
        None
    }

    /// Applies one pod watch event to the live worker pods.
    fn apply_worker_pod(&self, event: &Event<Pod>) {
        let Ok(mut workers) = self.workers.write() else {
            return;
        };
        match event {
            Event::Init => workers.relist = Some(HashMap::new()),
            Event::InitApply(pod) => {
                if let (Some(relist), Some((key, worker))) =
                    (workers.relist.as_mut(), worker_pod(pod))
                {
                    relist.insert(key, worker);
                }
            }
            Event::InitDone => {
                if let Some(relist) = workers.relist.take() {
                    workers.by_pod = relist;
                }
            }
            Event::Apply(pod) => {
                if let Some((key, worker)) = worker_pod(pod) {
                    workers.by_pod.insert(key, worker);
                }
            }
            Event::Delete(pod) => {
                if let Some((key, _)) = worker_pod(pod) {
                    workers.by_pod.remove(&key);
                }
            }
        }
    }

    /// A pod gone whose Job is gone too: its outcome is no longer read by anyone. (A Job deleted while its pod ran
    /// lost its outcome with its own Delete event, but the pod's later events, terminating, brought it back.)
    fn forget_outcome_of_a_gone_job(&self, pod: &Pod) {
        let Some((key, worker)) = worker_pod(pod) else {
            return;
        };
        let job_exists = self.jobs.read().is_ok_and(|jobs| {
            jobs.by_execution
                .get(&(key.0.clone(), worker.execution_label.clone()))
                .and_then(|children| children.get(&worker.job))
                .is_some_and(|record| worker.job_uid.is_none() || record.uid == worker.job_uid)
        });
        if !job_exists {
            self.forget_outcome(&key.0, &worker.job, worker.job_uid.as_deref());
        }
    }

    /// The step attempt pod `name` (UID `uid`) of `namespace` runs, if it is a live worker pod whose Job is indexed
    /// and controlled by an execution (with the step and attempt labels of the Job).
    pub fn worker_of(&self, namespace: &str, name: &str, uid: &str) -> Option<WorkerAttempt> {
        let worker = self
            .workers
            .read()
            .ok()?
            .by_pod
            .get(&(namespace.to_string(), name.to_string()))
            .filter(|worker| worker.uid == uid)?
            .clone();
        let jobs = self.jobs.read().ok()?;
        let record = jobs
            .by_execution
            .get(&(namespace.to_string(), worker.execution_label))?
            .get(&worker.job)
            .filter(|record| worker.job_uid.is_none() || record.uid == worker.job_uid)?;
        Some(WorkerAttempt {
            execution: record.owner_name.clone()?,
            execution_uid: record.owner_uid.clone()?,
            job: worker.job,
            step: record.summary.step.clone(),
            attempt: record.summary.attempt,
        })
    }

    /// The UID of the Job `job` of the execution `name` in `namespace`, as indexed.
    pub fn job_uid(&self, namespace: &str, name: &str, job: &str) -> Option<String> {
        self.jobs
            .read()
            .ok()?
            .by_execution
            .get(&key_of_execution(namespace, name))?
            .get(job)?
            .uid
            .clone()
    }

    /// Live worker pods indexed.
    pub fn worker_pod_count(&self) -> usize {
        self.workers.read().map_or(0, |w| w.by_pod.len())
    }

    /// Worker outcomes indexed.
    pub fn outcome_count(&self) -> usize {
        self.outcomes.read().map_or(0, |o| o.by_job.len())
    }

    /// The name of the execution that controls the Job `job` in `namespace` (a pass over the indexed executions:
    /// for rare events only, such as the Job controller's refusals).
    pub fn owner_of_job(&self, namespace: &str, job: &str) -> Option<String> {
        let jobs = self.jobs.read().ok()?;
        jobs.by_execution
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .find_map(|(_, children)| children.get(job)?.owner_name.clone())
    }

    /// The execution (UID) that controls `job`, and whether it owns a Job that runs (active, not being deleted)
    /// now that `job`'s event is applied: such an execution holds a running slot whatever its written phase says
    /// (a status write lost after the Job create, review finding 8).
    pub fn running_owner_of(&self, job: &Job) -> Option<(String, bool)> {
        let owner = controller_of(job)?.uid.clone();
        let key = execution_key(job)?;
        let running = self.jobs.read().is_ok_and(|jobs| {
            jobs.by_execution.get(&key).is_some_and(|children| {
                children.iter().any(|record| {
                    record.owner_uid.as_deref() == Some(owner.as_str()) && record.runs()
                })
            })
        });
        Some((owner, running))
    }

    /// The executions (UIDs) that own a Job that runs.
    pub fn running_owners(&self) -> HashSet<String> {
        self.jobs.read().map_or_else(
            |_| HashSet::new(),
            |jobs| {
                jobs.by_execution
                    .values()
                    .flat_map(JobList::iter)
                    .filter(|record| record.runs())
                    .filter_map(|record| record.owner_uid.clone())
                    .collect()
            },
        )
    }

    /// Jobs labelled for the execution `name` in `namespace`, with `owned` set for those controlled by `uid`, and
    /// the worker outcome of each finished one.
    pub fn jobs_of(&self, namespace: &str, name: &str, uid: &str) -> Vec<ObservedJob> {
        let key = key_of_execution(namespace, name);
        let Ok(jobs) = self.jobs.read() else {
            return Vec::new();
        };
        let Some(children) = jobs.by_execution.get(&key) else {
            return Vec::new();
        };
        let outcomes = self.outcomes.read().ok();
        children
            .iter()
            .map(|record| {
                let mut job = record.summary.clone();
                job.owned = record.owner_uid.as_deref() == Some(uid);
                let report = outcomes.as_ref().and_then(|o| {
                    let by_uid = record.uid.as_ref().and_then(|job_uid| {
                        o.by_job.get(&(namespace.to_string(), job_uid.clone()))
                    });
                    by_uid
                        .or_else(|| o.by_job.get(&(namespace.to_string(), job.name.clone())))
                        .filter(|pod| pod.job_uid.is_none() || pod.job_uid == record.uid)
                });
                if let Some(report) = report {
                    job.pod_seen = true;
                    job.worker = report.outcome.clone();
                    job.pod_started = report.started;
                    job.start_blocked = report.blocked.clone();
                }
                job
            })
            .collect()
    }

    /// Marks the Job `job` of the execution `name` in `namespace` as being deleted, as its watch event will once it
    /// arrives: a reconcile in between (the one the status write itself causes) must not delete it again.
    pub fn mark_deleting(&self, namespace: &str, name: &str, job: &str) {
        if let Ok(mut jobs) = self.jobs.write()
            && let Some(record) = jobs
                .by_execution
                .get_mut(&key_of_execution(namespace, name))
                .and_then(|children| children.get_mut(job))
        {
            record.summary.deleting = true;
        }
    }

    /// Drops the worker outcome of a Job that no longer exists (called after a Job is deleted).
    pub fn forget_outcome(&self, namespace: &str, job: &str, job_uid: Option<&str>) {
        if let Ok(mut outcomes) = self.outcomes.write() {
            outcomes.remove(namespace, job, job_uid);
        }
    }

    /// Drops the worker outcomes of `jobs`, Jobs of the execution `name` in `namespace`: their steps' outcomes are
    /// recorded in its status, which keeps them as written.
    pub fn release_outcomes<'a>(
        &self,
        namespace: &str,
        name: &str,
        jobs: impl Iterator<Item = &'a str>,
    ) {
        let released: Vec<(String, Option<String>)> = {
            let Ok(index) = self.jobs.read() else {
                return;
            };
            let children = index.by_execution.get(&key_of_execution(namespace, name));
            jobs.map(|job| {
                let uid = children
                    .and_then(|list| list.get(job))
                    .and_then(|record| record.uid.clone());
                (job.to_string(), uid)
            })
            .collect()
        };
        if released.is_empty() {
            return;
        }
        if let Ok(mut outcomes) = self.outcomes.write() {
            for (job, uid) in released {
                outcomes.remove(namespace, &job, uid.as_deref());
            }
        }
    }

    /// Number of Jobs indexed (for metrics and memory checks).
    pub fn job_count(&self) -> usize {
        self.jobs.read().map_or(0, |j| {
            j.by_execution.values().map(|list| list.iter().len()).sum()
        })
    }
}

/// Sets when the operator first saw the Job finished: kept from the record it replaces (in `children`, the
/// execution's Jobs as indexed before this event), else now if it is finished now.
fn carry_seen_finished(children: Option<&JobList>, record: &mut JobRecord) {
    if record.summary.state == crew_core::lifecycle::JobState::Active {
        return;
    }
    let before = children
        .and_then(|list| list.get(&record.summary.name))
        .filter(|before| before.uid == record.uid)
        .and_then(|before| before.summary.seen_finished);
    record.summary.seen_finished = Some(before.unwrap_or_else(jiff::Timestamp::now));
}

/// The index key of the execution `name` in `namespace`: its namespace and its label value.
fn key_of_execution(namespace: &str, name: &str) -> Key {
    (
        namespace.to_string(),
        crew_core::lifecycle::names::label_value(name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn job(name: &str, step: &str, attempt: u32) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("ns".to_string()),
                labels: Some(
                    [
                        (labels::EXECUTION, "run"),
                        (labels::STEP, step),
                        (labels::ATTEMPT, &attempt.to_string()),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ),
                owner_references: Some(vec![OwnerReference {
                    controller: Some(true),
                    uid: "uid-1".to_string(),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn names(index: &ChildIndex) -> Vec<(String, bool)> {
        index
            .jobs_of("ns", "run", "uid-1")
            .into_iter()
            .map(|j| (j.name, j.owned))
            .collect()
    }

    #[test]
    fn jobs_are_listed_by_name_replaced_in_place_and_forgotten_when_deleted() {
        let index = ChildIndex::default();
        for name in ["run-s2-1", "run-s1-1", "run-s1-2"] {
            let step = &name[4..6];
            index.apply_job_event(&Event::Apply(job(name, step, 1)));
        }
        index.apply_job_event(&Event::Apply(job("run-s1-1", "s1", 1)));
        assert_eq!(index.job_count(), 3);
        let listed = names(&index);
        assert_eq!(
            listed,
            [("run-s1-1", true), ("run-s1-2", true), ("run-s2-1", true)]
                .map(|(n, o)| (n.to_string(), o))
        );
        assert!(
            index
                .jobs_of("ns", "run", "other-uid")
                .iter()
                .all(|j| !j.owned)
        );
        index.apply_job_event(&Event::Delete(job("run-s1-2", "s1", 2)));
        assert_eq!(names(&index).len(), 2);
        index.apply_job_event(&Event::Delete(job("run-s1-1", "s1", 1)));
        index.apply_job_event(&Event::Delete(job("run-s2-1", "s2", 1)));
        assert_eq!(index.job_count(), 0);
        assert!(names(&index).is_empty());
    }

    #[test]
    fn a_job_the_operator_deleted_shows_as_deleting_until_its_event() {
        let index = ChildIndex::default();
        index.apply_job_event(&Event::Apply(job("run-a-1", "a", 1)));
        index.mark_deleting("ns", "run", "run-a-1");
        index.mark_deleting("ns", "run", "run-missing-1");
        let jobs = index.jobs_of("ns", "run", "uid-1");
        assert_eq!(jobs.len(), 1);
        assert!(jobs[0].deleting);
        index.apply_job_event(&Event::Delete(job("run-a-1", "a", 1)));
        assert_eq!(index.job_count(), 0);
    }

    #[test]
    fn a_relist_replaces_the_index_only_when_it_is_complete() {
        let index = ChildIndex::default();
        index.apply_job_event(&Event::Apply(job("run-s1-1", "s1", 1)));
        index.apply_job_event(&Event::Init);
        index.apply_job_event(&Event::InitApply(job("run-s2-1", "s2", 1)));
        assert_eq!(names(&index), [("run-s1-1".to_string(), true)]);
        index.apply_job_event(&Event::InitDone);
        assert_eq!(names(&index), [("run-s2-1".to_string(), true)]);
    }

    fn finished(mut job: Job, uid: &str) -> Job {
        job.metadata.uid = Some(uid.to_string());
        job.status = serde_json::from_value(serde_json::json!({
            "completionTime": "2026-01-01T00:00:00Z",
            "conditions": [{"type": "Complete", "status": "True"}]
        }))
        .ok();
        job
    }

    fn terminated_pod(job: &str, job_uid: &str, message: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{job}-abcde"), "namespace": "ns",
                "labels": {"job-name": job, "batch.kubernetes.io/controller-uid": job_uid}},
            "status": {"containerStatuses": [{"name": "worker", "image": "w", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": 0, "message": message}}}]}
        }))
        .unwrap_or_default()
    }

    /// Review finding 10: the pod grace counts from when the operator first saw the Job finished (kept across
    /// later events and relists of the same Job), not from the Job controller's timestamp.
    #[test]
    fn the_first_sight_of_a_finished_job_is_kept() {
        let index = ChildIndex::default();
        index.apply_job_event(&Event::Apply(job("run-a-1", "a", 1)));
        assert_eq!(index.jobs_of("ns", "run", "uid-1")[0].seen_finished, None);
        index.apply_job_event(&Event::Apply(finished(job("run-a-1", "a", 1), "j1")));
        let first = index.jobs_of("ns", "run", "uid-1")[0].seen_finished;
        assert!(first.is_some());
        std::thread::sleep(std::time::Duration::from_millis(5));
        index.apply_job_event(&Event::Apply(finished(job("run-a-1", "a", 1), "j1")));
        index.apply_job_event(&Event::Init);
        index.apply_job_event(&Event::InitApply(finished(job("run-a-1", "a", 1), "j1")));
        index.apply_job_event(&Event::InitDone);
        assert_eq!(index.jobs_of("ns", "run", "uid-1")[0].seen_finished, first);
        // The same name, another Job (deleted and created again): seen anew.
        index.apply_job_event(&Event::Apply(finished(job("run-a-1", "a", 1), "j2")));
        assert_ne!(index.jobs_of("ns", "run", "uid-1")[0].seen_finished, first);
    }

    /// Review finding 10: outcomes are matched to their Job by its UID, so a Job created again under the same name
    /// does not take the outcome of its predecessor's pod.
    #[test]
    fn a_pod_outcome_belongs_to_the_job_that_made_the_pod() {
        let index = ChildIndex::default();
        index.apply_job_event(&Event::Apply(finished(job("run-a-1", "a", 1), "j2")));
        index.apply_pod_event(&Event::Apply(terminated_pod("run-a-1", "j1", "old")));
        assert_eq!(index.jobs_of("ns", "run", "uid-1")[0].worker, None);
        index.apply_pod_event(&Event::Apply(terminated_pod("run-a-1", "j2", "new")));
        // The predecessor's pod, seen again (being deleted), does not replace it.
        index.apply_pod_event(&Event::Apply(terminated_pod("run-a-1", "j1", "old")));
        let worker = index.jobs_of("ns", "run", "uid-1")[0].worker.clone();
        assert_eq!(worker.and_then(|w| w.message).as_deref(), Some("new"));
    }

    /// Review finding 3: an outcome recorded in the execution's status is not kept in the index any longer.
    #[test]
    fn recorded_outcomes_are_released() {
        let index = ChildIndex::default();
        index.apply_job_event(&Event::Apply(finished(job("run-a-1", "a", 1), "j1")));
        index.apply_job_event(&Event::Apply(finished(job("run-b-1", "b", 1), "j2")));
        index.apply_pod_event(&Event::Apply(terminated_pod("run-a-1", "j1", "a")));
        index.apply_pod_event(&Event::Apply(terminated_pod("run-b-1", "j2", "b")));
        index.release_outcomes("ns", "run", ["run-a-1"].into_iter());
        let workers: Vec<_> = index
            .jobs_of("ns", "run", "uid-1")
            .into_iter()
            .map(|j| (j.name, j.worker.is_some()))
            .collect();
        assert_eq!(
            workers,
            [
                ("run-a-1".to_string(), false),
                ("run-b-1".to_string(), true)
            ]
        );
    }

    /// A pod that becomes blocked (or stops being) wakes its execution; other pod changes wait for the Job.
    #[test]
    fn a_pod_that_cannot_start_wakes_its_execution_once() {
        let index = ChildIndex::default();
        let mut owned = job("run-main-1", "main", 1);
        owned.metadata.owner_references.as_mut().unwrap()[0].name = "run".into();
        index.apply_job_event(&Event::Apply(owned));
        let pod = |status: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "run-main-1-x", "namespace": "ns",
                    "labels": {"job-name": "run-main-1", "crew.dev/execution": "run"}},
                "status": status,
            }))
            .unwrap()
        };
        let unschedulable = serde_json::json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}]});
        let woken =
            index.apply_pod_event(&Event::Apply(pod(serde_json::json!({"phase": "Pending"}))));
        assert_eq!(woken, None, "pending on its way");
        let woken = index.apply_pod_event(&Event::Apply(pod(unschedulable.clone())));
        assert_eq!(woken, Some(("ns".to_string(), "run".to_string())));
        assert_eq!(
            index.apply_pod_event(&Event::Apply(pod(unschedulable))),
            None,
            "same reason"
        );
        let job = &index.jobs_of("ns", "run", "uid-1")[0];
        assert_eq!(
            job.start_blocked.as_ref().map(|b| b.reason.as_str()),
            Some("Unschedulable")
        );
        let running = serde_json::json!({"phase": "Running"});
        assert_eq!(
            index.apply_pod_event(&Event::Apply(pod(running))),
            Some(("ns".to_string(), "run".to_string())),
            "the block is over"
        );
        assert!(index.jobs_of("ns", "run", "uid-1")[0].pod_started);
    }

    fn live_pod(job: &str, job_uid: &str, pod_uid: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{job}-abcde"), "namespace": "ns", "uid": pod_uid,
                "labels": {"job-name": job, "batch.kubernetes.io/controller-uid": job_uid,
                           "crew.dev/execution": "run", "crew.dev/step": "a", "crew.dev/attempt": "1"}},
            "status": {"phase": "Running", "containerStatuses": [{"name": "worker", "image": "w", "imageID": "",
                "ready": true, "restartCount": 0, "state": {"running": {}}}]}
        }))
        .unwrap()
    }

    fn terminating(mut pod: Pod) -> Pod {
        pod.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        pod.status = serde_json::from_value(
            serde_json::json!({"phase": "Failed", "containerStatuses": [{
            "name": "worker", "image": "w", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 143, "message": "stopped"}}}]}),
        )
        .ok();
        pod
    }

    /// Review finding 9: a Job deleted while its pod still ran (cancel, timeouts, stall) lost its outcome with its
    /// own Delete event, but the pod's later events brought it back for good. Once the pod is gone too, nothing is
    /// kept.
    #[test]
    fn an_outcome_does_not_outlive_its_job() {
        let index = ChildIndex::default();
        let mut running = job("run-a-1", "a", 1);
        running.metadata.uid = Some("j1".into());
        index.apply_job_event(&Event::Apply(running.clone()));
        index.apply_pod_event(&Event::Apply(live_pod("run-a-1", "j1", "p1")));
        index.apply_job_event(&Event::Delete(running));
        let stopping = terminating(live_pod("run-a-1", "j1", "p1"));
        index.apply_pod_event(&Event::Apply(stopping.clone()));
        index.apply_pod_event(&Event::Delete(stopping));
        assert_eq!(index.outcome_count(), 0);
        assert_eq!(index.worker_pod_count(), 0);
    }

    /// A finished Job's outcome stays when its pod goes (the step may be read later); it goes with the Job.
    #[test]
    fn an_outcome_outlives_its_pod_while_the_job_exists() {
        let index = ChildIndex::default();
        let done = finished(job("run-a-1", "a", 1), "j1");
        index.apply_job_event(&Event::Apply(done.clone()));
        let mut pod = terminated_pod("run-a-1", "j1", "result");
        pod.metadata.uid = Some("p1".into());
        pod.labels_mut()
            .insert(labels::EXECUTION.into(), "run".into());
        index.apply_pod_event(&Event::Apply(pod.clone()));
        index.apply_pod_event(&Event::Delete(pod));
        assert_eq!(index.outcome_count(), 1);
        index.apply_job_event(&Event::Delete(done));
        assert_eq!(index.outcome_count(), 0);
    }

    /// The progress endpoint maps a token's pod to its attempt from the indexes: the pod by name and UID, its Job
    /// by name and UID, the Job's controller.
    #[test]
    fn a_worker_pod_maps_to_its_attempt_from_the_indexes() {
        let index = ChildIndex::default();
        let mut running = job("run-a-1", "a", 1);
        running.metadata.uid = Some("j1".into());
        running.metadata.owner_references.as_mut().unwrap()[0].name = "run".into();
        index.apply_job_event(&Event::Apply(running.clone()));
        index.apply_pod_event(&Event::Apply(live_pod("run-a-1", "j1", "p1")));
        let attempt = index
            .worker_of("ns", "run-a-1-abcde", "p1")
            .expect("a worker");
        assert_eq!(
            (attempt.execution.as_str(), attempt.execution_uid.as_str()),
            ("run", "uid-1")
        );
        assert_eq!(
            (attempt.job.as_str(), attempt.step.as_str(), attempt.attempt),
            ("run-a-1", "a", 1)
        );
        assert_eq!(
            index.worker_of("ns", "run-a-1-abcde", "other-uid"),
            None,
            "another pod of the name"
        );
        assert_eq!(index.worker_of("other", "run-a-1-abcde", "p1"), None);
        // The same Job name, another Job: the pod of the earlier one is no worker of it.
        let mut again = running;
        again.metadata.uid = Some("j2".into());
        index.apply_job_event(&Event::Apply(again));
        assert_eq!(index.worker_of("ns", "run-a-1-abcde", "p1"), None);
    }
}
