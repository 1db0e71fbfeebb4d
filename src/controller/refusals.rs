//! Why the Job controller could not create a Job's pod (a quota, an admission policy, a missing ServiceAccount):
//! the latest `FailedCreate` Event about each Job. Fed by one watch of those Events alone (a field selector), so a
//! reconcile asking about a Job that has had no pod for a while costs no request. Reading them per Job instead (a
//! LIST per reconcile) flooded the API server when thousands of Jobs waited for their pods at once.

use crew_core::lifecycle::StartBlock;
use k8s_openapi::api::core::v1::Event;
use kube::ResourceExt;
use kube::runtime::watcher;
use std::collections::HashMap;
use std::sync::RwLock;

/// Field selector of the watched Events.
pub const FAILED_CREATE_SELECTOR: &str = "involvedObject.kind=Job,reason=FailedCreate";
const REASON: &str = "FailedCreate";

/// (namespace, Job name).
type Key = (String, String);

/// The latest refusal recorded about one Job.
#[derive(Clone, Debug)]
struct Refusal {
    /// The Event's name (a Delete removes the entry only when it is this Event's).
    event: String,
    /// The UID of the Job it is about (another Job of the same name gets none of its refusals).
    job_uid: Option<String>,
    /// When it last happened.
    at: Option<jiff::Timestamp>,
    message: String,
}

#[derive(Default)]
struct Refusals {
    by_job: HashMap<Key, Refusal>,
    relist: Option<HashMap<Key, Refusal>>,
}

/// The index. Cheap to share behind the context's `Arc`.
#[derive(Default)]
pub struct PodRefusals(RwLock<Refusals>);

fn summarise(event: &Event) -> Option<(Key, Refusal)> {
    if event.reason.as_deref() != Some(REASON)
        || event.involved_object.kind.as_deref() != Some("Job")
    {
        return None;
    }
    let namespace = event
        .involved_object
        .namespace
        .clone()
        .or_else(|| event.namespace())?;
    let job = event.involved_object.name.clone()?;
    let at = event
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or(event.event_time.as_ref().map(|t| t.0))
        .or(event.first_timestamp.as_ref().map(|t| t.0));
    Some((
        (namespace, job),
        Refusal {
            event: event.name_any(),
            job_uid: event.involved_object.uid.clone(),
            at,
            message: event.message.clone().unwrap_or_default(),
        },
    ))
}

/// Keeps the later of what `map` holds for `key` and `refusal`; returns whether the message held changed.
fn keep_latest(map: &mut HashMap<Key, Refusal>, key: Key, refusal: Refusal) -> bool {
    match map.get(&key) {
        Some(held) if held.event != refusal.event && held.at > refusal.at => false,
        held => {
            let changed = held.is_none_or(|h| h.message != refusal.message);
            map.insert(key, refusal);
            changed
        }
    }
}

impl PodRefusals {
    /// Applies one event of the watch. Returns the Job (namespace, name) whose refusal changed, for a wake-up.
    pub fn apply(&self, event: &watcher::Event<Event>) -> Option<Key> {
        let Ok(mut refusals) = self.0.write() else {
            return None;
        };
        match event {
            watcher::Event::Init => {
                refusals.relist = Some(HashMap::new());
                None
            }
            watcher::Event::InitApply(event) => {
                if let (Some((key, refusal)), Some(relist)) =
                    (summarise(event), refusals.relist.as_mut())
                {
                    keep_latest(relist, key, refusal);
                }
                None
            }
            watcher::Event::InitDone => {
                if let Some(relist) = refusals.relist.take() {
                    refusals.by_job = relist;
                }
                None
            }
            watcher::Event::Apply(event) => {
                let (key, refusal) = summarise(event)?;
                keep_latest(&mut refusals.by_job, key.clone(), refusal).then_some(key)
            }
            watcher::Event::Delete(event) => {
                if let Some((key, refusal)) = summarise(event)
                    && refusals
                        .by_job
                        .get(&key)
                        .is_some_and(|held| held.event == refusal.event)
                {
                    refusals.by_job.remove(&key);
                }
                None
            }
        }
    }

    /// Why the Job `job` (UID `job_uid`, when known) in `namespace` has no pod, if the Job controller said so about
    /// that Job: a refusal of an earlier Job of the same name (Events live an hour) is not its.
    pub fn of(&self, namespace: &str, job: &str, job_uid: Option<&str>) -> Option<StartBlock> {
        let refusals = self.0.read().ok()?;
        refusals
            .by_job
            .get(&(namespace.to_string(), job.to_string()))
            .filter(|refusal| match (refusal.job_uid.as_deref(), job_uid) {
                (Some(said), Some(asked)) => said == asked,
                _ => true,
            })
            .map(|refusal| StartBlock {
                reason: REASON.to_string(),
                message: refusal.message.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn event(name: &str, job: &str, second: i64, message: &str) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Job".into()),
                name: Some(job.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            reason: Some(REASON.into()),
            message: Some(message.into()),
            last_timestamp: Some(Time(jiff::Timestamp::from_second(second).unwrap())),
            ..Default::default()
        }
    }

    #[test]
    fn the_latest_refusal_of_a_job_is_kept_until_its_event_goes() {
        let index = PodRefusals::default();
        assert!(index.of("ns", "run-a-1", None).is_none());
        let changed = index.apply(&watcher::Event::Apply(event("e2", "run-a-1", 20, "quota")));
        assert_eq!(changed, Some(("ns".to_string(), "run-a-1".to_string())));
        assert_eq!(
            index.apply(&watcher::Event::Apply(event("e2", "run-a-1", 25, "quota"))),
            None,
            "the same message again wakes nothing"
        );
        assert_eq!(
            index.apply(&watcher::Event::Apply(event("e1", "run-a-1", 10, "older"))),
            None
        );
        assert_eq!(index.of("ns", "run-a-1", None).unwrap().message, "quota");
        assert_eq!(
            index.of("ns", "run-a-1", None).unwrap().reason,
            "FailedCreate"
        );
        assert!(index.of("other", "run-a-1", None).is_none());
        index.apply(&watcher::Event::Delete(event("e1", "run-a-1", 10, "older")));
        assert!(
            index.of("ns", "run-a-1", None).is_some(),
            "another Event's expiry"
        );
        index.apply(&watcher::Event::Delete(event("e2", "run-a-1", 20, "quota")));
        assert!(index.of("ns", "run-a-1", None).is_none());
    }

    #[test]
    fn other_events_are_ignored_and_a_relist_replaces_the_index() {
        let index = PodRefusals::default();
        let mut pod_event = event("e3", "run-b-1", 5, "x");
        pod_event.involved_object.kind = Some("Pod".into());
        index.apply(&watcher::Event::Apply(pod_event));
        assert!(index.of("ns", "run-b-1", None).is_none());
        index.apply(&watcher::Event::Apply(event("e1", "run-a-1", 10, "old")));
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(event(
            "e4", "run-c-1", 30, "policy",
        )));
        assert!(
            index.of("ns", "run-a-1", None).is_some(),
            "kept until the relist ends"
        );
        index.apply(&watcher::Event::InitDone);
        assert!(index.of("ns", "run-a-1", None).is_none());
        assert_eq!(index.of("ns", "run-c-1", None).unwrap().message, "policy");
    }

    /// Review finding 10: a refusal of an earlier Job of the same name (Events live an hour) was shown as the new
    /// Job's `StartBlocked` reason.
    #[test]
    fn a_refusal_of_an_earlier_job_of_the_same_name_is_not_shown() {
        let index = PodRefusals::default();
        let mut old = event("e1", "run-a-1", 10, "exceeded quota");
        old.involved_object.uid = Some("job-1".into());
        index.apply(&watcher::Event::Apply(old));
        assert!(
            index.of("ns", "run-a-1", Some("job-2")).is_none(),
            "another Job"
        );
        assert_eq!(
            index.of("ns", "run-a-1", Some("job-1")).map(|r| r.message),
            Some("exceeded quota".into())
        );
    }
}
