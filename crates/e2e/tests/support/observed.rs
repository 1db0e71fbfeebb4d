//! How a wait that ran out of time shows what it last saw: a summary of each kind of object the tests wait on
//! (the fields that tell why a condition did not hold, never whole objects with their managed fields).

use crew_api::{CrewExecution, CrewQueue};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ResourceQuota, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;

/// How many history entries an execution's summary shows (the newest).
const HISTORY_SHOWN: usize = 4;

/// An object a test waits on, as a failure message shows it.
pub trait Observed {
    /// One line: the name and the state that matters.
    fn line(&self) -> String;

    /// The full account, possibly several lines (by default the line).
    fn summary(&self) -> String {
        self.line()
    }
}

impl Observed for CrewExecution {
    fn line(&self) -> String {
        let status = self.status.clone().unwrap_or_default();
        let steps: Vec<String> = status
            .steps
            .iter()
            .map(|s| format!("{}:{}#{}", s.name, s.phase, s.attempt))
            .collect();
        format!(
            "{} phase={} reason={} steps=[{}]",
            self.name_any(),
            status.phase.map(|p| p.to_string()).unwrap_or_default(),
            status.reason.unwrap_or_default(),
            steps.join(" ")
        )
    }

    fn summary(&self) -> String {
        let Some(status) = &self.status else {
            return format!("{}: no status", self.name_any());
        };
        let mut out = vec![format!(
            "{} (generation {:?}, observed {:?})",
            self.name_any(),
            self.metadata.generation,
            status.observed_generation
        )];
        out.push(format!(
            "phase {}, reason {}, message {}",
            status.phase.map(|p| p.to_string()).unwrap_or_default(),
            status.reason.as_deref().unwrap_or("-"),
            status.message.as_deref().unwrap_or("-")
        ));
        if let Some(at) = &status.next_retry_time {
            out.push(format!("nextRetryTime {}", at.0));
        }
        for step in &status.steps {
            out.push(format!(
                "step {} {} attempt {} exit {:?} job {}: {}{}",
                step.name,
                step.phase,
                step.attempt,
                step.exit_code,
                step.job_name.as_deref().unwrap_or("-"),
                step.message.as_deref().unwrap_or("-"),
                step.progress
                    .as_ref()
                    .map(|p| format!(" ({}%)", p.percent))
                    .unwrap_or_default()
            ));
        }
        for c in &status.conditions {
            out.push(format!(
                "condition {}={} {}: {}",
                c.type_, c.status, c.reason, c.message
            ));
        }
        let skip = status.history.len().saturating_sub(HISTORY_SHOWN);
        for h in status.history.iter().skip(skip) {
            out.push(format!(
                "history {} {}->{} {}{}",
                h.time.0,
                h.from,
                h.to,
                h.reason,
                h.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
        out.join("\n  ")
    }
}

impl Observed for Job {
    fn line(&self) -> String {
        let status = self.status.clone().unwrap_or_default();
        let conditions: Vec<String> = status
            .conditions
            .iter()
            .flatten()
            .map(|c| {
                format!(
                    "{}={}({})",
                    c.type_,
                    c.status,
                    c.reason.as_deref().unwrap_or("")
                )
            })
            .collect();
        format!(
            "{} active={} succeeded={} failed={} conditions=[{}]{}",
            self.name_any(),
            status.active.unwrap_or(0),
            status.succeeded.unwrap_or(0),
            status.failed.unwrap_or(0),
            conditions.join(" "),
            deleting(self)
        )
    }
}

impl Observed for Pod {
    fn line(&self) -> String {
        let status = self.status.clone().unwrap_or_default();
        let conditions: Vec<String> = status
            .conditions
            .iter()
            .flatten()
            .map(|c| {
                format!(
                    "{}={}({})",
                    c.type_,
                    c.status,
                    c.reason.as_deref().unwrap_or("")
                )
            })
            .collect();
        format!(
            "{} phase={} node={} conditions=[{}]{}",
            self.name_any(),
            status.phase.unwrap_or_default(),
            self.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .unwrap_or("-"),
            conditions.join(" "),
            deleting(self)
        )
    }
}

impl Observed for Event {
    fn line(&self) -> String {
        let regarding = self.regarding.clone().unwrap_or_default();
        format!(
            "{} {} {} about {}/{}: {}",
            self.name_any(),
            self.type_.as_deref().unwrap_or("-"),
            self.reason.as_deref().unwrap_or("-"),
            regarding.kind.unwrap_or_default(),
            regarding.name.unwrap_or_default(),
            self.note.as_deref().unwrap_or("")
        )
    }
}

impl Observed for CustomResourceDefinition {
    fn line(&self) -> String {
        let conditions: Vec<String> = self
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .map(|c| {
                format!(
                    "{}={}({})",
                    c.type_,
                    c.status,
                    c.reason.as_deref().unwrap_or("")
                )
            })
            .collect();
        format!("{} conditions=[{}]", self.name_any(), conditions.join(" "))
    }
}

impl Observed for Lease {
    fn line(&self) -> String {
        let spec = self.spec.clone().unwrap_or_default();
        format!(
            "{} holder={} transitions={} renewed={}",
            self.name_any(),
            spec.holder_identity.as_deref().unwrap_or("-"),
            spec.lease_transitions.unwrap_or(0),
            spec.renew_time
                .map(|t| t.0.to_string())
                .unwrap_or_else(|| "-".into())
        )
    }
}

impl Observed for CrewQueue {
    fn line(&self) -> String {
        format!("{} status={:?}", self.name_any(), self.status)
    }
}

impl Observed for ResourceQuota {
    fn line(&self) -> String {
        let status = self.status.clone().unwrap_or_default();
        format!(
            "{} hard={:?} used={:?}",
            self.name_any(),
            status.hard.unwrap_or_default(),
            status.used.unwrap_or_default()
        )
    }
}

impl Observed for ConfigMap {
    fn line(&self) -> String {
        format!(
            "{} finalizers={:?}{}",
            self.name_any(),
            self.finalizers(),
            deleting(self)
        )
    }
}

impl Observed for Secret {
    /// The keys only: a failure message never shows a credential.
    fn line(&self) -> String {
        let keys: Vec<&String> = self.data.iter().flat_map(|d| d.keys()).collect();
        format!(
            "{} type={} keys={keys:?}",
            self.name_any(),
            self.type_.as_deref().unwrap_or("-")
        )
    }
}

/// " (deleting)" for an object with a deletion timestamp.
fn deleting(object: &impl ResourceExt) -> &'static str {
    if object.meta().deletion_timestamp.is_some() {
        " (deleting)"
    } else {
        ""
    }
}
