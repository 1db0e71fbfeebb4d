//! `--sink`: the operator run with a CrewSink in every namespace, delivering to a receiver in this process, so the
//! run's figures include what notifications cost (the finalizer and sink status writes, by kind) and how fast
//! transitions reach a receiver (an event's `ce-time` to its arrival).

use crew_api::CrewSink;
use kube::api::PostParams;
use kube::{Api, Client};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SinkFigures {
    /// Requests acknowledged.
    pub received: u64,
    /// Distinct event ids among them.
    pub distinct: u64,
    /// `dev.crew.execution.completed` events (distinct).
    pub completed: u64,
    /// Transition to arrival, milliseconds, nearest-rank percentiles.
    pub latency_p50_ms: u64,
    /// See `latency_p50_ms`.
    pub latency_p99_ms: u64,
}

#[derive(Default)]
struct Seen {
    received: u64,
    ids: HashMap<String, String>,
    latencies_ms: Vec<u64>,
}

/// A receiver counting what arrives.
#[derive(Clone)]
pub struct SinkReceiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

fn locked(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn receive(
    axum::extract::State(seen): axum::extract::State<Arc<Mutex<Seen>>>,
    headers: axum::http::HeaderMap,
) -> axum::http::StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let latency = header("ce-time")
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|at| jiff::Timestamp::now().duration_since(at).as_millis().max(0) as u64);
    let mut seen = locked(&seen);
    seen.received += 1;
    if seen
        .ids
        .insert(header("ce-id"), header("ce-type"))
        .is_none()
        && let Some(ms) = latency
    {
        seen.latencies_ms.push(ms);
    }
    axum::http::StatusCode::ACCEPTED
}

impl SinkReceiver {
    /// Starts a receiver on a free loopback port.
    pub async fn start() -> Result<SinkReceiver, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind the sink receiver: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = axum::Router::new()
            .fallback(axum::routing::post(receive))
            .with_state(seen.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(SinkReceiver { addr, seen })
    }

    /// Creates a CrewSink sending everything to this receiver in `namespace`.
    pub async fn sink_in(&self, client: &Client, namespace: &str) -> Result<(), String> {
        let sink: CrewSink = serde_json::from_value(serde_json::json!({
            "apiVersion": "crew.dev/v1alpha1", "kind": "CrewSink",
            "metadata": {"name": "bench"},
            "spec": {"url": format!("http://{}/events", self.addr)},
        }))
        .map_err(|e| e.to_string())?;
        Api::<CrewSink>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &sink)
            .await
            .map(|_| ())
            .map_err(|e| format!("create the sink in {namespace}: {e}"))
    }

    /// Distinct completed events so far.
    pub fn completed(&self) -> u64 {
        locked(&self.seen)
            .ids
            .values()
            .filter(|kind| *kind == "dev.crew.execution.completed")
            .count() as u64
    }

    /// Waits (at most `limit`) until `n` executions' completed events arrived.
    pub async fn wait_completed(&self, n: usize, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.completed() < n as u64 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// What arrived.
    pub fn figures(&self) -> SinkFigures {
        let seen = locked(&self.seen);
        let mut sorted = seen.latencies_ms.clone();
        sorted.sort_unstable();
        let pct = |p: usize| crew_core::lifecycle::queue_stats::percentile(&sorted, p).unwrap_or(0);
        SinkFigures {
            received: seen.received,
            distinct: seen.ids.len() as u64,
            completed: seen
                .ids
                .values()
                .filter(|kind| *kind == "dev.crew.execution.completed")
                .count() as u64,
            latency_p50_ms: pct(50),
            latency_p99_ms: pct(99),
        }
    }
}
