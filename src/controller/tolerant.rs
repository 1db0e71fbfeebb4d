//! Watching custom resources so that one undecodable object cannot stop the operator for everyone.
//!
//! kube-runtime's watcher decodes a whole LIST page as one `ObjectList<K>`: a single object the typed client cannot
//! decode (a `priority` beyond `i32` stored before the schema bounded it, a field another tool wrote with the
//! wrong type) fails the page, the initial list is retried forever, the cache never fills and nothing in any
//! namespace is reconciled (reliability review, finding 1). Watching [`Decoded<K>`] instead decodes each object on
//! its own: an object that does not decode becomes [`Decoded::Undecodable`] (its metadata and the error), which
//! [`typed`] turns into a `Delete` of that object from the typed cache (so an object that stops decoding leaves it)
//! and reports once per resource version (a Warning Event `Undecodable` on the object, a log line and
//! `crew_undecodable_objects_total`).
//!
//! kube-core's `DeserializeGuard<K>` covers the same cases, but clones each object's buffered tree before decoding
//! it: decoding 10 000 executions of ~4 KiB (with history and managed fields) took 550–680 ms with it, 330–550 ms
//! with [`Decoded`] and ~200 ms as plain `K` (release build, one machine, three rounds). Decoding from a
//! `serde_json` `RawValue` would cost no more than plain `K`, but only while the watch event's `type` precedes its
//! `object` (serde buffers an adjacently tagged content that comes first, and a `RawValue` cannot be read from that
//! buffer), so it is not used.

use kube::Resource;
use kube::api::ObjectMeta;
use kube::runtime::watcher;
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

/// An object as the API server sent it: decoded as `K`, or only its metadata and why the rest did not decode.
// Transient (turned into `K` as it leaves the watcher), so the variants' size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Decoded<K> {
    /// The object, decoded.
    Object(K),
    /// The object did not decode as `K`.
    Undecodable {
        /// Its metadata (always decodable: the API server validates it).
        metadata: ObjectMeta,
        /// The decoding error.
        error: String,
    },
}

impl<'de, K: serde::de::DeserializeOwned> Deserialize<'de> for Decoded<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Whatever the object holds is valid JSON: keep it as a tree, then decode the tree as `K`, falling back to
        // its metadata alone.
        let value = serde_json::Value::deserialize(deserializer)?;
        match K::deserialize(&value) {
            Ok(object) => Ok(Decoded::Object(object)),
            Err(error) => {
                #[derive(Deserialize)]
                struct MetadataOnly {
                    #[serde(default)]
                    metadata: ObjectMeta,
                }
                let metadata = MetadataOnly::deserialize(&value)
                    .map(|m| m.metadata)
                    .unwrap_or_default();
                Ok(Decoded::Undecodable {
                    metadata,
                    error: error.to_string(),
                })
            }
        }
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Decoded<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        match self {
            Decoded::Object(object) => object.meta(),
            Decoded::Undecodable { metadata, .. } => metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Decoded::Object(object) => object.meta_mut(),
            Decoded::Undecodable { metadata, .. } => metadata,
        }
    }
}

/// A typed object standing for one that did not decode, so that it can be removed from a typed cache.
pub trait Placeholder: Sized {
    /// An object with `metadata` and nothing else.
    fn placeholder(metadata: ObjectMeta) -> Self;
}

impl Placeholder for crew_api::CrewExecution {
    fn placeholder(metadata: ObjectMeta) -> Self {
        crew_api::CrewExecution {
            metadata,
            spec: Default::default(),
            status: None,
        }
    }
}

impl Placeholder for crew_api::CrewSink {
    fn placeholder(metadata: ObjectMeta) -> Self {
        crew_api::CrewSink {
            metadata,
            spec: crew_api::CrewSinkSpec {
                url: String::new(),
                types: Vec::new(),
                selector: None,
                mode: Default::default(),
                retry: Default::default(),
                suspend: true,
                timeout_seconds: 10,
                progress_interval_seconds: 10,
                auth: None,
                signing: None,
            },
            status: None,
        }
    }
}

impl Placeholder for crew_api::CrewQueue {
    fn placeholder(metadata: ObjectMeta) -> Self {
        crew_api::CrewQueue {
            metadata,
            spec: crew_api::CrewQueueSpec { max_running: 1 },
            status: None,
        }
    }
}

/// Undecodable objects already reported, by UID, with the resource version reported (one report per version).
#[derive(Debug, Default)]
pub struct Reported(Mutex<HashMap<String, String>>);

impl Reported {
    /// Whether `metadata`'s version is new (and remembers it).
    fn first_time(&self, metadata: &ObjectMeta) -> bool {
        let (Some(uid), Ok(mut seen)) = (metadata.uid.as_ref(), self.0.lock()) else {
            return true;
        };
        let version = metadata.resource_version.clone().unwrap_or_default();
        seen.insert(uid.clone(), version.clone()).as_ref() != Some(&version)
    }

    /// Forgets `metadata`'s object (it decodes again, or it was deleted).
    fn forget(&self, metadata: &ObjectMeta) {
        if let (Some(uid), Ok(mut seen)) = (metadata.uid.as_ref(), self.0.lock()) {
            seen.remove(uid);
        }
    }

    /// Objects currently undecodable.
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |seen| seen.len())
    }

    /// Whether no object is currently undecodable.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An undecodable object met for the first time at this resource version.
#[derive(Clone, Debug)]
pub struct Undecodable {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// The decoding error.
    pub error: String,
}

/// Turns a watch event over [`Decoded<K>`] into one over `K` for the typed cache: undecodable objects are left out
/// of a (re)list and removed by a change; `report` is called once per undecodable resource version.
pub fn typed<K: Placeholder + Resource>(
    event: watcher::Event<Decoded<K>>,
    reported: &Reported,
    report: &dyn Fn(Undecodable),
) -> Option<watcher::Event<K>> {
    let undecodable = |metadata: ObjectMeta, error: String| {
        if reported.first_time(&metadata) {
            report(Undecodable {
                metadata: metadata.clone(),
                error,
            });
        }
        metadata
    };
    match event {
        watcher::Event::Init => Some(watcher::Event::Init),
        watcher::Event::InitDone => Some(watcher::Event::InitDone),
        watcher::Event::InitApply(Decoded::Object(object)) => {
            reported.forget(object.meta());
            Some(watcher::Event::InitApply(object))
        }
        watcher::Event::InitApply(Decoded::Undecodable { metadata, error }) => {
            undecodable(metadata, error);
            None
        }
        watcher::Event::Apply(Decoded::Object(object)) => {
            reported.forget(object.meta());
            Some(watcher::Event::Apply(object))
        }
        watcher::Event::Apply(Decoded::Undecodable { metadata, error }) => Some(
            watcher::Event::Delete(K::placeholder(undecodable(metadata, error))),
        ),
        watcher::Event::Delete(decoded) => {
            let object = match decoded {
                Decoded::Object(object) => object,
                Decoded::Undecodable { metadata, .. } => K::placeholder(metadata),
            };
            reported.forget(object.meta());
            Some(watcher::Event::Delete(object))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crew_api::{CrewExecution, CrewQueue};
    use kube::core::{ObjectList, WatchEvent};
    use std::cell::RefCell;

    fn execution(name: &str, priority: &str) -> String {
        format!(
            r#"{{"apiVersion":"crew.dev/v1alpha1","kind":"CrewExecution","metadata":{{"name":"{name}","namespace":"a","uid":"uid-{name}","resourceVersion":"7"}},"spec":{{"image":"busybox","priority":{priority}}}}}"#
        )
    }

    /// One object whose `priority` does not fit `i32` fails alone: the rest of the LIST page decodes.
    #[test]
    fn a_list_page_decodes_around_an_undecodable_object() {
        let page = format!(
            r#"{{"apiVersion":"v1","kind":"List","metadata":{{"resourceVersion":"9"}},"items":[{},{},{}]}}"#,
            execution("good", "1"),
            execution("poison", "2147483648"),
            execution("fine", "-3")
        );
        let list: ObjectList<Decoded<CrewExecution>> =
            serde_json::from_str(&page).expect("the page decodes");
        let names: Vec<_> = list
            .items
            .iter()
            .map(|d| match d {
                Decoded::Object(cx) => format!("ok {}", cx.metadata.name.as_deref().unwrap_or("")),
                Decoded::Undecodable { metadata, error } => {
                    assert!(error.contains("2147483648"), "{error}");
                    format!("bad {}", metadata.name.as_deref().unwrap_or(""))
                }
            })
            .collect();
        assert_eq!(names, ["ok good", "bad poison", "ok fine"]);
    }

    #[test]
    fn a_watch_event_of_an_undecodable_object_decodes() {
        let line = format!(
            r#"{{"type":"MODIFIED","object":{}}}"#,
            execution("poison", "1e99")
        );
        let event: WatchEvent<Decoded<CrewExecution>> =
            serde_json::from_str(&line).expect("the event decodes");
        assert!(matches!(
            event,
            WatchEvent::Modified(Decoded::Undecodable { .. })
        ));
        let queue = r#"{"type":"ADDED","object":{"apiVersion":"crew.dev/v1alpha1","kind":"CrewQueue","metadata":{"name":"q","uid":"q1"},"spec":{"maxRunning":4294967296}}}"#;
        let event: WatchEvent<Decoded<CrewQueue>> = serde_json::from_str(queue).expect("decodes");
        assert!(matches!(
            event,
            WatchEvent::Added(Decoded::Undecodable { .. })
        ));
    }

    fn decoded(name: &str, priority: &str) -> Decoded<CrewExecution> {
        serde_json::from_str(&execution(name, priority)).expect("decodes")
    }

    /// Left out of a (re)list, removed from the cache by a change, reported once per resource version, and forgotten
    /// once it decodes again.
    #[test]
    fn undecodable_objects_leave_the_typed_cache_and_are_reported_once_per_version() {
        let reported = Reported::default();
        let seen = RefCell::new(Vec::new());
        let report = |u: Undecodable| seen.borrow_mut().push(u.metadata.name.unwrap_or_default());
        assert!(
            typed(
                watcher::Event::InitApply(decoded("poison", "1e99")),
                &reported,
                &report
            )
            .is_none()
        );
        assert!(matches!(
            typed(
                watcher::Event::InitApply(decoded("good", "1")),
                &reported,
                &report
            ),
            Some(watcher::Event::InitApply(_))
        ));
        // The same version again (a relist): not reported twice.
        let again = typed(
            watcher::Event::Apply(decoded("poison", "1e99")),
            &reported,
            &report,
        );
        match again {
            Some(watcher::Event::Delete(cx)) => {
                assert_eq!(cx.metadata.name.as_deref(), Some("poison"))
            }
            other => panic!("expected a Delete, got {other:?}"),
        }
        assert_eq!(*seen.borrow(), ["poison"]);
        assert_eq!(reported.len(), 1);
        // Fixed: it decodes, enters the cache and is forgotten.
        assert!(matches!(
            typed(
                watcher::Event::Apply(decoded("poison", "5")),
                &reported,
                &report
            ),
            Some(watcher::Event::Apply(_))
        ));
        assert!(reported.is_empty());
    }
}
