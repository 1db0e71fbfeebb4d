//! Kubernetes Events (`events.k8s.io/v1`) about executions: one create per transition, sent in the background.
//!
//! Events are the least urgent of the operator's writes: a reconcile queues its Events in an [`EventQueue`] and
//! returns, so neither the next step's Job nor the next reconcile of the same execution waits for them, and at most
//! [`LANES`] Event creates are in flight, leaving the API server (and the operator's bounded request slots) to Job
//! creates and status writes during a burst. Each execution's Events go through one lane, in order. A full lane
//! makes the reconcile wait (memory stays bounded); nothing is dropped.
//!
//! An Event recording a history entry is named after it (`crew_core::lifecycle::names::event_name`): creating it
//! twice makes one Event (`AlreadyExists`), so after a crash between a status write and its Event the operator can
//! send the newest entry's Event again ([`resend_recent`]) with no risk of a duplicate.
//!
//! kube-runtime's `Recorder` keeps every Event of the last six minutes to merge repeats into series and scans that
//! cache under a write lock on every publish: at thousands of executions that was most of the operator's memory
//! growth and a lock all reconciles queued on. The operator's Events never repeat (each is one transition of one
//! execution, emitted once when the status recording it is stored), so series are not needed: this publisher keeps
//! no state and needs only `create` on events.

use crew_core::lifecycle::names::{event_name, event_name_at};
use crew_core::lifecycle::text::prefix_within;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Event creates in flight at most (one per lane, each lane in order).
pub const LANES: usize = 4;

/// Events waiting per lane before a reconcile queuing one more waits.
const LANE_CAPACITY: usize = 512;

/// Told the outcome of each Event create (to count writes and log failures).
pub type OnPublished = Arc<dyn Fn(&Event, Result<(), kube::Error>) + Send + Sync>;

/// Counts each Event created in `metrics`; an Event that exists already (sent again after a restart) is no write,
/// and a failure is logged (Events are best effort: never a reason to fail a reconcile).
pub fn count_published(metrics: Arc<crate::metrics::Metrics>) -> OnPublished {
    Arc::new(move |event, outcome| match outcome {
        Ok(()) => metrics.write(crate::metrics::WriteKind::Event),
        Err(error) if crate::error::is_reason(&error, super::act::ALREADY_EXISTS) => {
            tracing::debug!(name = ?event.metadata.name, "Event already recorded");
        }
        Err(error) => {
            tracing::warn!(%error, reason = ?event.reason, "could not record Event");
        }
    })
}

/// Events waiting to be created, in [`LANES`] ordered lanes drained by background tasks.
#[derive(Clone)]
pub struct EventQueue {
    publisher: EventPublisher,
    lanes: Arc<[mpsc::Sender<Box<Event>>]>,
}

impl EventQueue {
    /// Starts the lanes' tasks (needs a Tokio runtime); they end when the last clone of the queue is dropped.
    pub fn start(publisher: EventPublisher, on_published: OnPublished) -> Self {
        let lanes: Vec<_> = (0..LANES)
            .map(|_| {
                let (lane, mut waiting) = mpsc::channel::<Box<Event>>(LANE_CAPACITY);
                let publisher = publisher.clone();
                let on_published = on_published.clone();
                tokio::spawn(async move {
                    while let Some(event) = waiting.recv().await {
                        let outcome = publisher.create(&event).await;
                        on_published(&event, outcome);
                    }
                });
                lane
            })
            .collect();
        EventQueue {
            publisher,
            lanes: lanes.into(),
        }
    }

    /// Queues the Event for `draft`, stamped now; waits only while its lane is full.
    pub async fn send(&self, draft: EventDraft<'_>) {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        draft.regarding.uid.hash(&mut hasher);
        draft.regarding.name.hash(&mut hasher);
        let lane = (hasher.finish() % self.lanes.len() as u64) as usize;
        // Boxed: a reconcile waiting on a full lane holds a pointer, not a whole Event, in its suspended future.
        let event = Box::new(self.publisher.event(draft, jiff::Timestamp::now()));
        if self.lanes[lane].send(event).await.is_err() {
            tracing::warn!("the Event lanes have stopped; Event not recorded");
        }
    }
}

/// Who reports the Events.
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
}

/// One Event to publish.
#[derive(Clone, Debug)]
pub struct EventDraft<'a> {
    /// `Warning` instead of `Normal`.
    pub warning: bool,
    /// CamelCase reason (e.g. `StepSucceeded`).
    pub reason: &'a str,
    /// Human-readable note (at most 1 KiB is sent).
    pub note: &'a str,
    /// What the operator was doing.
    pub action: &'a str,
    /// The object the Event is about.
    pub regarding: ObjectReference,
    /// A second object involved (the step's Job).
    pub related: Option<ObjectReference>,
    /// The history entry the Event records (`EventNote::entry_key`): it names the Event.
    pub entry_key: Option<&'a str>,
    /// When it happened (None: when it is sent).
    pub time: Option<jiff::Timestamp>,
}

/// Longest note the API server accepts (events.k8s.io/v1 validation).
const MAX_NOTE_BYTES: usize = 1024;

impl EventPublisher {
    /// A publisher reporting as `controller` / `instance`.
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        EventPublisher {
            client,
            controller: controller.to_string(),
            instance: instance.to_string(),
        }
    }

    /// Creates `event` in its namespace.
    async fn create(&self, event: &Event) -> Result<(), kube::Error> {
        let namespace = event.metadata.namespace.as_deref().unwrap_or_default();
        Api::<Event>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), event)
            .await
            .map(|_| ())
    }

    /// The Event object for `draft`, sent at `now`.
    fn event(&self, draft: EventDraft<'_>, now: jiff::Timestamp) -> Event {
        let regarding_name = draft.regarding.name.as_deref().unwrap_or_default();
        // Not generateName: the API server validates it as a whole DNS subdomain, so "name." is refused.
        let name = match draft.entry_key {
            Some(key) => event_name(
                regarding_name,
                draft.regarding.uid.as_deref().unwrap_or_default(),
                key,
            ),
            None => event_name_at(regarding_name, now.as_nanosecond()),
        };
        Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: draft.regarding.namespace.clone(),
                ..Default::default()
            },
            event_time: Some(MicroTime(draft.time.unwrap_or(now))),
            type_: Some(if draft.warning { "Warning" } else { "Normal" }.into()),
            reason: Some(draft.reason.to_string()),
            note: Some(prefix_within(draft.note, MAX_NOTE_BYTES).to_string()),
            action: Some(draft.action.to_string()),
            regarding: Some(draft.regarding),
            related: draft.related,
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher() -> EventPublisher {
        let (service, _handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        EventPublisher::new(Client::new(service, "default"), "crew-operator", "pod-1")
    }

    #[tokio::test]
    async fn events_name_the_reporter_the_object_and_the_job() {
        let regarding = ObjectReference {
            api_version: Some("crew.dev/v1alpha1".into()),
            kind: Some("CrewExecution".into()),
            name: Some("hello".into()),
            namespace: Some("team".into()),
            uid: Some("u1".into()),
            ..Default::default()
        };
        let job = ObjectReference {
            kind: Some("Job".into()),
            name: Some("hello-main-1".into()),
            ..Default::default()
        };
        let now = jiff::Timestamp::from_second(1_000).unwrap();
        let long = "é".repeat(700);
        let event = publisher().event(
            EventDraft {
                warning: true,
                reason: "StepFailed",
                note: &long,
                action: "Reconcile",
                regarding: regarding.clone(),
                related: Some(job.clone()),
                entry_key: None,
                time: None,
            },
            now,
        );
        assert_eq!(
            event.metadata.name,
            Some(format!("hello.{:x}", now.as_nanosecond()))
        );
        assert_eq!(event.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(event.reason.as_deref(), Some("StepFailed"));
        assert_eq!(event.regarding, Some(regarding));
        assert_eq!(event.related, Some(job));
        assert_eq!(event.reporting_controller.as_deref(), Some("crew-operator"));
        assert_eq!(event.reporting_instance.as_deref(), Some("pod-1"));
        assert_eq!(event.event_time, Some(MicroTime(now)));
        let note = event.note.unwrap();
        assert!(note.len() <= MAX_NOTE_BYTES && note.len() >= MAX_NOTE_BYTES - 1);
    }

    /// An Event recording a history entry is named after the entry and dated by it: sending it again later gives
    /// the same object (the API server answers `AlreadyExists`), never a second Event.
    #[tokio::test]
    async fn an_entry_event_is_the_same_object_whenever_it_is_sent() {
        let regarding = ObjectReference {
            name: Some("hello".into()),
            namespace: Some("team".into()),
            uid: Some("u1".into()),
            ..Default::default()
        };
        let happened = jiff::Timestamp::from_second(1_000).unwrap();
        let draft = EventDraft {
            warning: false,
            reason: "StepSucceeded",
            note: "step main succeeded",
            action: "Reconcile",
            regarding,
            related: None,
            entry_key: Some("1000|Running|Succeeded|StepSucceeded|main|"),
            time: Some(happened),
        };
        let publisher = publisher();
        let first = publisher.event(draft.clone(), jiff::Timestamp::from_second(1_001).unwrap());
        let again = publisher.event(draft, jiff::Timestamp::from_second(1_300).unwrap());
        assert_eq!(first, again);
        assert_eq!(first.event_time, Some(MicroTime(happened)));
        assert!(
            first
                .metadata
                .name
                .as_deref()
                .unwrap()
                .starts_with("hello.")
        );
    }
}
