//! A notification as a CloudEvents 1.0 HTTP request, in either content mode (HTTP protocol binding 1.0):
//! - binary: the attributes in `ce-` headers, the data (JSON) as the body;
//! - structured: one `application/cloudevents+json` document with the attributes and the data.

use super::events::Notification;
use crew_api::sink::ContentMode;

/// The CloudEvents spec version sent.
pub const SPEC_VERSION: &str = "1.0";

/// A request body and its headers (names lower case).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// Headers besides the transport's own.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// `notification` encoded for `mode`.
pub fn encode(
    notification: &Notification,
    mode: ContentMode,
) -> Result<Encoded, serde_json::Error> {
    let data = serde_json::to_value(&notification.data)?;
    let time = notification.time.to_string();
    Ok(match mode {
        ContentMode::Binary => Encoded {
            headers: vec![
                ("ce-specversion".into(), SPEC_VERSION.into()),
                ("ce-id".into(), notification.id.clone()),
                ("ce-source".into(), notification.source()),
                ("ce-type".into(), notification.kind.as_str().into()),
                ("ce-subject".into(), notification.data.execution.clone()),
                ("ce-time".into(), time),
                ("content-type".into(), "application/json".into()),
            ],
            body: serde_json::to_vec(&data)?,
        },
        ContentMode::Structured => Encoded {
            headers: vec![(
                "content-type".into(),
                "application/cloudevents+json; charset=utf-8".into(),
            )],
            body: serde_json::to_vec(&serde_json::json!({
                "specversion": SPEC_VERSION,
                "id": notification.id,
                "source": notification.source(),
                "type": notification.kind.as_str(),
                "subject": notification.data.execution,
                "time": time,
                "datacontenttype": "application/json",
                "data": data,
            }))?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::events::NotificationData;
    use crew_api::Phase;
    use crew_api::sink::SinkEventType;

    fn notification() -> Notification {
        Notification {
            id: "u1.0123456789abcdef".into(),
            kind: SinkEventType::ExecutionStateChanged,
            time: "2026-12-07T10:00:00Z".parse().unwrap(),
            data: NotificationData {
                execution: "report".into(),
                namespace: "team".into(),
                uid: "u1".into(),
                previous_phase: Some(Phase::Pending),
                phase: Phase::Running,
                reason: "Started".into(),
                time: "2026-12-07T10:00:00Z".into(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn binary_mode_puts_the_attributes_in_headers() {
        let encoded = encode(&notification(), ContentMode::Binary).unwrap();
        let header = |name: &str| {
            encoded
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("ce-specversion"), Some("1.0"));
        assert_eq!(header("ce-type"), Some("dev.crew.execution.state_changed"));
        assert_eq!(header("ce-id"), Some("u1.0123456789abcdef"));
        assert_eq!(
            header("ce-source"),
            Some("/apis/crew.dev/v1alpha1/namespaces/team/crewexecutions/report")
        );
        let data: serde_json::Value = serde_json::from_slice(&encoded.body).unwrap();
        assert_eq!(data["previousPhase"], "Pending");
        assert_eq!(data["phase"], "Running");
        assert_eq!(data["execution"], "report");
    }

    #[test]
    fn structured_mode_is_one_document() {
        let encoded = encode(&notification(), ContentMode::Structured).unwrap();
        let event: serde_json::Value = serde_json::from_slice(&encoded.body).unwrap();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["subject"], "report");
        assert_eq!(event["data"]["reason"], "Started");
        assert!(
            encoded.headers[0]
                .1
                .starts_with("application/cloudevents+json")
        );
    }
}
