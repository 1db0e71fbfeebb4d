//! Prometheus metrics (`crew_` prefix), encoded in the text exposition format for `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set: (name, value) pairs.
pub type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Kinds of API writes the operator makes, counted in `crew_api_writes_total{kind}` (for tests, benchmarks and
/// dashboards alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WriteKind {
    /// Server-side apply of an execution's status.
    Status,
    /// Creation of a worker Job.
    JobCreate,
    /// Deletion of a running worker Job (cancel, timeout, stall).
    JobDelete,
    /// Deletion of a finished worker Job whose outcome status records (`spec.jobCleanup`).
    JobCleanup,
    /// Creation of the crew ConfigMap.
    ConfigMap,
    /// A Kubernetes Event (create or series patch).
    Event,
    /// Deletion of a finished execution (TTL).
    ExecutionDelete,
    /// Server-side apply of a queue's status.
    QueueStatus,
    /// Creation, renewal or release of the leader-election Lease (not per execution).
    Lease,
    /// Adding or removing the operator's finalizer on an execution (only while CrewSinks exist).
    Finalizer,
    /// Server-side apply of a CrewSink's status (at most every 5 s per sink, not per execution).
    SinkStatus,
    /// A posted step result kept: its ConfigMap applied, its Job annotated (two per `POST /v1/result`).
    Result,
}

impl WriteKind {
    /// Every kind, for reporting.
    pub const ALL: [WriteKind; 12] = [
        WriteKind::Status,
        WriteKind::JobCreate,
        WriteKind::JobDelete,
        WriteKind::JobCleanup,
        WriteKind::ConfigMap,
        WriteKind::Event,
        WriteKind::ExecutionDelete,
        WriteKind::QueueStatus,
        WriteKind::Lease,
        WriteKind::Finalizer,
        WriteKind::SinkStatus,
        WriteKind::Result,
    ];

    /// Label for metrics and reports.
    pub fn label(self) -> &'static str {
        match self {
            WriteKind::Status => "status",
            WriteKind::JobCreate => "job_create",
            WriteKind::JobDelete => "job_delete",
            WriteKind::JobCleanup => "job_cleanup",
            WriteKind::ConfigMap => "configmap_create",
            WriteKind::Event => "event",
            WriteKind::ExecutionDelete => "execution_delete",
            WriteKind::QueueStatus => "queue_status",
            WriteKind::Lease => "lease",
            WriteKind::Finalizer => "finalizer",
            WriteKind::SinkStatus => "sink_status",
            WriteKind::Result => "result",
        }
    }
}

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// Reconciles run, by result (`ok`, `error`).
    pub reconciles: Family<Labels, Counter>,
    /// Failed reconciles by error kind.
    pub reconcile_errors: Family<Labels, Counter>,
    /// Reconcile duration.
    pub reconcile_duration: Histogram,
    /// Phase transitions by from/to.
    pub transitions: Family<Labels, Counter>,
    /// Executions by phase (refreshed every second from the cache).
    pub executions: Family<Labels, Gauge>,
    /// Duration of finished step attempts, by outcome.
    pub step_duration: Family<Labels, Histogram, fn() -> Histogram>,
    /// Duration of finished executions, by final phase.
    pub execution_duration: Family<Labels, Histogram, fn() -> Histogram>,
    /// Executions waiting per queue.
    pub queue_depth: Family<Labels, Gauge>,
    /// Executions running per queue.
    pub queue_running: Family<Labels, Gauge>,
    /// API writes by kind.
    pub api_writes: Family<Labels, Counter>,
    /// 1 while this replica leads (always 1 without leader election), 0 on a standby.
    pub leader: Gauge,
    /// Objects skipped because they do not decode, by kind (counted once per resource version).
    pub undecodable: Family<Labels, Counter>,
    /// Deliveries to CrewSinks, by sink, type and result (`delivered`, `retried`, `dropped`).
    pub notifications: Family<Labels, Counter>,
    /// From a transition to its acknowledgement by a sink.
    pub notification_delivery: Histogram,
    /// Archive writes, by result (`ok`, `error`).
    pub archive_writes: Family<Labels, Counter>,
    /// Executions waiting to be archived.
    pub archive_backlog: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            registry: Registry::default(),
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            transitions: Family::default(),
            executions: Family::default(),
            step_duration: Family::new_with_constructor(seconds_histogram),
            execution_duration: Family::new_with_constructor(seconds_histogram),
            queue_depth: Family::default(),
            queue_running: Family::default(),
            api_writes: Family::default(),
            leader: Gauge::default(),
            undecodable: Family::default(),
            notifications: Family::default(),
            notification_delivery: Histogram::new(exponential_buckets(0.01, 2.0, 16)),
            archive_writes: Family::default(),
            archive_backlog: Gauge::default(),
        };
        m.leader.set(1);
        let registry = m.registry_of_all();
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// A registry (prefix `crew_`) of every metric.
    #[rustfmt::skip]
    fn registry_of_all(&self) -> Registry {
        let mut registry = Registry::with_prefix("crew");
        // One line per metric: its name (after the prefix), its help, its field.
        macro_rules! register {
            ($name:literal, $help:literal, $field:ident) => {
                registry.register($name, $help, self.$field.clone())
            };
            ($name:literal, $help:literal, $field:ident, seconds) => {
                registry.register_with_unit($name, $help, prometheus_client::registry::Unit::Seconds, self.$field.clone())
            };
        }
        register!("reconciles", "Reconciles run, by result", reconciles);
        register!("reconcile_errors", "Failed reconciles, by error kind", reconcile_errors);
        register!("reconcile_duration", "Time one reconcile takes", reconcile_duration, seconds);
        register!("transitions", "Execution phase transitions, by from and to phase", transitions);
        register!("executions", "Executions in the cache, by phase", executions);
        register!("step_duration", "Duration of finished step attempts, by outcome", step_duration, seconds);
        register!("execution_duration", "Duration of finished executions, by final phase", execution_duration, seconds);
        register!("queue_depth", "Executions waiting for a slot, per queue", queue_depth);
        register!("queue_running", "Executions running, per queue", queue_running);
        register!("api_writes", "API writes made by the operator, by kind", api_writes);
        register!("leader", "1 while this replica holds the leader Lease (always 1 without leader election), 0 on a standby", leader);
        register!("undecodable_objects", "Objects the operator skips because they do not decode, by kind (once per resource version)", undecodable);
        register!("notifications", "Deliveries to CrewSinks, by sink namespace, sink, type and result (delivered, retried, dropped)", notifications);
        register!("notification_delivery", "Time from an execution's transition to a sink's acknowledgement of it", notification_delivery, seconds);
        register!("archive_writes", "Archive writes (one transaction per execution), by result (ok, error)", archive_writes);
        register!("archive_backlog", "Executions that finished or are being deleted and wait to be archived", archive_backlog);
        registry
    }

    /// Counts one archive write (or failed migration) by `result`.
    pub fn archive_write(&self, result: &str) {
        self.archive_writes
            .get_or_create(&labels(&[("result", result)]))
            .inc();
    }

    /// Counts one reconcile.
    pub fn reconciled(&self, seconds: f64, error_kind: Option<&str>) {
        self.reconcile_duration.observe(seconds);
        let result = if error_kind.is_some() { "error" } else { "ok" };
        self.reconciles
            .get_or_create(&labels(&[("result", result)]))
            .inc();
        if let Some(kind) = error_kind {
            self.reconcile_errors
                .get_or_create(&labels(&[("kind", kind)]))
                .inc();
        }
    }

    /// Reconciles run so far (every result).
    pub fn reconcile_count(&self) -> u64 {
        ["ok", "error"]
            .iter()
            .map(|result| {
                self.reconciles
                    .get_or_create(&labels(&[("result", result)]))
                    .get()
            })
            .sum()
    }

    /// Counts one phase transition.
    pub fn transition(&self, from: &str, to: &str) {
        self.transitions
            .get_or_create(&labels(&[("from", from), ("to", to)]))
            .inc();
    }

    /// Counts one undecodable object of `kind`.
    pub fn undecodable(&self, kind: &str) {
        self.undecodable
            .get_or_create(&labels(&[("kind", kind)]))
            .inc();
    }

    /// Undecodable objects of `kind` counted so far.
    pub fn undecodable_count(&self, kind: &str) -> u64 {
        self.undecodable
            .get_or_create(&labels(&[("kind", kind)]))
            .get()
    }

    /// Counts one API write of `kind`.
    pub fn write(&self, kind: WriteKind) {
        self.api_writes
            .get_or_create(&labels(&[("kind", kind.label())]))
            .inc();
    }

    /// API writes of `kind` so far (the one count of the operator's writes: tests and benchmarks read it here).
    pub fn writes(&self, kind: WriteKind) -> u64 {
        self.api_writes
            .get_or_create(&labels(&[("kind", kind.label())]))
            .get()
    }

    /// All API writes so far.
    pub fn all_writes(&self) -> u64 {
        WriteKind::ALL.iter().map(|kind| self.writes(*kind)).sum()
    }

    /// Counts one delivery outcome.
    pub fn notification(&self, sink_namespace: &str, sink: &str, kind: &str, result: &str) {
        self.notifications
            .get_or_create(&labels(&[
                ("sink_namespace", sink_namespace),
                ("sink", sink),
                ("type", kind),
                ("result", result),
            ]))
            .inc();
    }

    /// Records a delivery acknowledged `seconds` after its transition.
    pub fn notification_delivered(&self, seconds: f64) {
        self.notification_delivery.observe(seconds);
    }

    /// Records a finished step attempt.
    pub fn step_finished(&self, outcome: &str, seconds: f64) {
        self.step_duration
            .get_or_create(&labels(&[("outcome", outcome)]))
            .observe(seconds);
    }

    /// Records a finished execution.
    pub fn execution_finished(&self, phase: &str, seconds: f64) {
        self.execution_duration
            .get_or_create(&labels(&[("phase", phase)]))
            .observe(seconds);
    }

    /// Sets the executions-by-phase gauge.
    pub fn set_executions(&self, phase: &str, count: i64) {
        self.executions
            .get_or_create(&labels(&[("phase", phase)]))
            .set(count);
    }

    /// Sets the per-queue gauges.
    pub fn set_queue(&self, namespace: &str, queue: &str, waiting: i64, running: i64) {
        let key = labels(&[("namespace", namespace), ("queue", queue)]);
        self.queue_depth.get_or_create(&key).set(waiting);
        self.queue_running.get_or_create(&key).set(running);
    }

    /// Drops the per-queue gauges of a deleted queue (a series per queue ever seen would otherwise stay).
    pub fn forget_queue(&self, namespace: &str, queue: &str) {
        let key = labels(&[("namespace", namespace), ("queue", queue)]);
        self.queue_depth.remove(&key);
        self.queue_running.remove(&key);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_queue_leaves_no_series() {
        let metrics = Metrics::default();
        metrics.set_queue("team", "gpu", 2, 1);
        assert!(metrics.render().contains("queue=\"gpu\""));
        metrics.forget_queue("team", "gpu");
        assert!(
            !metrics.render().contains("queue=\"gpu\""),
            "{}",
            metrics.render()
        );
    }

    #[test]
    fn renders_prefixed_names_with_labels() {
        let m = Metrics::default();
        m.reconciled(0.002, None);
        m.reconciled(0.004, Some("kube"));
        m.transition("Pending", "Running");
        m.write(WriteKind::Status);
        m.write(WriteKind::Status);
        m.step_finished("succeeded", 3.0);
        m.execution_finished("Succeeded", 12.0);
        m.set_executions("Running", 4);
        m.set_queue("team-a", "gpu", 5, 2);
        let text = m.render();
        for needle in [
            "crew_reconciles_total{result=\"ok\"} 1",
            "crew_reconcile_errors_total{kind=\"kube\"} 1",
            "crew_reconcile_duration_seconds_count 2",
            "crew_transitions_total{from=\"Pending\",to=\"Running\"} 1",
            "crew_api_writes_total{kind=\"status\"} 2",
            "crew_step_duration_seconds_count{outcome=\"succeeded\"} 1",
            "crew_execution_duration_seconds_sum{phase=\"Succeeded\"} 12.0",
            "crew_executions{phase=\"Running\"} 4",
            "crew_queue_depth{namespace=\"team-a\",queue=\"gpu\"} 5",
            "crew_queue_running{namespace=\"team-a\",queue=\"gpu\"} 2",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert_eq!(m.writes(WriteKind::Status), 2);
        assert_eq!(m.all_writes(), 2);
        assert!(text.ends_with("# EOF\n"));
    }
}
