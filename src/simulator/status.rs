//! The `pods/status` merge patches a kubelet would write: `Running`, then `Succeeded` or `Failed`. Pure.

use jiff::Timestamp;
use serde_json::{Value, json};

/// The kubelet keeps at most this many bytes of a container's termination message.
pub const MAX_TERMINATION_MESSAGE_BYTES: usize = 4096;

/// A container of the pod spec, as its status needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    /// Container name.
    pub name: String,
    /// Image reference from the spec (empty if unset).
    pub image: String,
}

/// How the containers ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Termination<'a> {
    /// Exit code of every container: 0 makes the pod `Succeeded`, anything else `Failed`.
    pub exit_code: i32,
    /// Termination message of every container.
    pub message: Option<&'a str>,
    /// When the containers finished.
    pub finished: Timestamp,
}

/// RFC 3339 on whole seconds, as the API stores `metav1.Time`.
pub fn k8s_time(ts: Timestamp) -> String {
    Timestamp::from_second(ts.as_second())
        .unwrap_or(ts)
        .to_string()
}

/// `message` cut to [`MAX_TERMINATION_MESSAGE_BYTES`] at a character boundary.
pub fn truncate_message(message: &str) -> &str {
    crate::lifecycle::text::prefix_within(message, MAX_TERMINATION_MESSAGE_BYTES)
}

fn condition(kind: &str, status: bool, at: &str, reason: Option<&str>) -> Value {
    let mut c = json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "lastTransitionTime": at,
    });
    if let (Some(reason), Some(obj)) = (reason, c.as_object_mut()) {
        obj.insert("reason".into(), reason.into());
    }
    c
}

/// Init containers as the kubelet leaves them once the app containers run: terminated, `Completed`.
/// `{"status": status}`, with the init containers' statuses added when the pod has any.
fn status_patch(mut status: Value, init_containers: &[ContainerRef], at: &str) -> Value {
    if !init_containers.is_empty()
        && let Some(obj) = status.as_object_mut()
    {
        obj.insert(
            "initContainerStatuses".into(),
            init_statuses(init_containers, at),
        );
    }
    json!({ "status": status })
}

fn init_statuses(init_containers: &[ContainerRef], at: &str) -> Value {
    init_containers
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "ready": true,
                "restartCount": 0,
                "state": {"terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": at,
                    "finishedAt": at,
                }},
            })
        })
        .collect()
}

/// The patch that marks the pod `Running` since `started`, every container running and ready.
pub fn running_patch(
    containers: &[ContainerRef],
    init_containers: &[ContainerRef],
    started: Timestamp,
) -> Value {
    let at = k8s_time(started);
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "ready": true,
                "restartCount": 0,
                "started": true,
                "state": {"running": {"startedAt": at}},
            })
        })
        .collect();
    let status = json!({
        "phase": "Running",
        "startTime": at,
        "conditions": [
            condition("Initialized", true, &at, None),
            condition("Ready", true, &at, None),
            condition("ContainersReady", true, &at, None),
            condition("PodScheduled", true, &at, None),
        ],
        "containerStatuses": statuses,
    });
    status_patch(status, init_containers, &at)
}

/// The patch that ends the pod: every container terminated with `end`'s exit code and message; the pod
/// `Succeeded` for exit code 0, else `Failed`.
pub fn terminated_patch(
    containers: &[ContainerRef],
    init_containers: &[ContainerRef],
    started: Timestamp,
    end: &Termination<'_>,
) -> Value {
    let started_at = k8s_time(started);
    let finished_at = k8s_time(end.finished.max(started));
    let (phase, reason) = if end.exit_code == 0 {
        ("Succeeded", "Completed")
    } else {
        ("Failed", "Error")
    };
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let mut terminated = json!({
                "exitCode": end.exit_code,
                "reason": reason,
                "startedAt": started_at,
                "finishedAt": finished_at,
            });
            if let (Some(message), Some(obj)) = (end.message, terminated.as_object_mut()) {
                obj.insert("message".into(), truncate_message(message).into());
            }
            json!({
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "ready": false,
                "restartCount": 0,
                "started": false,
                "state": {"terminated": terminated},
            })
        })
        .collect();
    let status = json!({
        "phase": phase,
        "startTime": started_at,
        "conditions": [
            condition("Initialized", true, &started_at, Some("PodCompleted")),
            condition("Ready", false, &finished_at, Some("PodCompleted")),
            condition("ContainersReady", false, &finished_at, Some("PodCompleted")),
            condition("PodScheduled", true, &started_at, None),
        ],
        "containerStatuses": statuses,
    });
    status_patch(status, init_containers, &started_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn containers() -> Vec<ContainerRef> {
        vec![
            ContainerRef {
                name: "worker".into(),
                image: "crew/worker:1".into(),
            },
            ContainerRef {
                name: "sidecar".into(),
                image: "busybox".into(),
            },
        ]
    }

    #[test]
    fn running_patch_shape() {
        let p = running_patch(&containers(), &[], ts("2026-01-02T03:04:05.678Z"));
        let s = &p["status"];
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["startTime"], "2026-01-02T03:04:05Z");
        let cs = s["containerStatuses"].as_array().unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0]["name"], "worker");
        assert_eq!(cs[0]["image"], "crew/worker:1");
        assert_eq!(cs[0]["imageID"], "");
        assert_eq!(cs[0]["ready"], true);
        assert_eq!(cs[0]["started"], true);
        assert_eq!(cs[0]["restartCount"], 0);
        assert_eq!(
            cs[0]["state"]["running"]["startedAt"],
            "2026-01-02T03:04:05Z"
        );
        let conds: Vec<(&str, &str)> = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            conds,
            [
                ("Initialized", "True"),
                ("Ready", "True"),
                ("ContainersReady", "True"),
                ("PodScheduled", "True")
            ]
        );
        assert!(s.get("initContainerStatuses").is_none());
        // It is a valid PodStatus.
        let typed: PodStatus = serde_json::from_value(s.clone()).unwrap();
        assert_eq!(typed.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn succeeded_patch_shape() {
        let end = Termination {
            exit_code: 0,
            message: Some("{\"result\":\"done\"}"),
            finished: ts("2026-01-02T03:04:07Z"),
        };
        let p = terminated_patch(&containers(), &[], ts("2026-01-02T03:04:05Z"), &end);
        let s = &p["status"];
        assert_eq!(s["phase"], "Succeeded");
        let c = &s["containerStatuses"][1];
        assert_eq!(c["ready"], false);
        assert_eq!(c["started"], false);
        let t = &c["state"]["terminated"];
        assert_eq!(t["exitCode"], 0);
        assert_eq!(t["reason"], "Completed");
        assert_eq!(t["message"], "{\"result\":\"done\"}");
        assert_eq!(t["startedAt"], "2026-01-02T03:04:05Z");
        assert_eq!(t["finishedAt"], "2026-01-02T03:04:07Z");
        assert_eq!(s["conditions"][1]["type"], "Ready");
        assert_eq!(s["conditions"][1]["status"], "False");
        assert_eq!(s["conditions"][1]["reason"], "PodCompleted");
        let typed: PodStatus = serde_json::from_value(s.clone()).unwrap();
        let term = typed.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(term.exit_code, 0);
    }

    #[test]
    fn failed_patch_shape() {
        let end = Termination {
            exit_code: 3,
            message: None,
            // A finish before the start (clock skew after a restart) is clamped to the start.
            finished: ts("2026-01-02T03:04:00Z"),
        };
        let init = [ContainerRef {
            name: "init".into(),
            image: "x".into(),
        }];
        let p = terminated_patch(&containers(), &init, ts("2026-01-02T03:04:05Z"), &end);
        let s = &p["status"];
        assert_eq!(s["phase"], "Failed");
        let t = &s["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(t["exitCode"], 3);
        assert_eq!(t["reason"], "Error");
        assert!(t.get("message").is_none());
        assert_eq!(t["finishedAt"], "2026-01-02T03:04:05Z");
        let init = &s["initContainerStatuses"][0];
        assert_eq!(init["name"], "init");
        assert_eq!(init["state"]["terminated"]["reason"], "Completed");
        serde_json::from_value::<PodStatus>(s.clone()).unwrap();
    }

    #[test]
    fn messages_are_capped_like_the_kubelet() {
        assert_eq!(truncate_message("short"), "short");
        let long = "é".repeat(3000); // 6000 bytes, 2-byte chars
        let cut = truncate_message(&long);
        assert_eq!(cut.len(), MAX_TERMINATION_MESSAGE_BYTES);
        let odd = format!("x{long}");
        let cut = truncate_message(&odd);
        assert_eq!(cut.len(), MAX_TERMINATION_MESSAGE_BYTES - 1);
        assert!(cut.starts_with('x'));
    }
}
