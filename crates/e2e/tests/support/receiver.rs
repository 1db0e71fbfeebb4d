//! A CloudEvents receiver for the CrewSink tests: a real HTTP server on loopback that parses every request with the
//! CloudEvents SDK (`cloudevents-sdk`, code no one here wrote) and keeps what arrived. It can refuse its first
//! requests, hang, or refuse every request for a while, as a failing receiver would.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use cloudevents::{AttributesReader, Event};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request that reached the receiver.
#[derive(Clone, Debug)]
pub struct Received {
    /// The event as the SDK parsed it (None: it did not parse).
    pub event: Option<Event>,
    /// Why it did not parse.
    pub error: Option<String>,
    /// The request's headers.
    pub headers: HeaderMap,
    /// The body as sent.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
    /// When it arrived, by the wall clock (to compare with the event's `time`).
    pub arrived: jiff::Timestamp,
    /// The answer given.
    pub answered: u16,
}

impl Received {
    /// The event's `type`.
    pub fn kind(&self) -> String {
        self.event
            .as_ref()
            .map(|e| e.ty().to_string())
            .unwrap_or_default()
    }

    /// The event's `id`.
    pub fn id(&self) -> String {
        self.event
            .as_ref()
            .map(|e| e.id().to_string())
            .unwrap_or_default()
    }

    /// The event's `time` attribute.
    pub fn time(&self) -> Option<jiff::Timestamp> {
        let time = self.event.as_ref()?.time()?;
        jiff::Timestamp::from_millisecond(time.timestamp_millis()).ok()
    }

    /// From the event's `time` (the transition, recorded in whole seconds) to its arrival here.
    pub fn latency(&self) -> Option<Duration> {
        let since = self.arrived.duration_since(self.time()?);
        Duration::try_from(since).ok()
    }

    /// The execution the event is about (`data.execution`).
    pub fn execution(&self) -> String {
        self.data()["execution"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The event's `data` as JSON.
    pub fn data(&self) -> serde_json::Value {
        let Some(data) = self.event.as_ref().and_then(|e| e.data()) else {
            return serde_json::Value::Null;
        };
        match data {
            cloudevents::Data::Json(value) => value.clone(),
            cloudevents::Data::String(text) => serde_json::from_str(text).unwrap_or_default(),
            cloudevents::Data::Binary(bytes) => serde_json::from_slice(bytes).unwrap_or_default(),
        }
    }
}

/// How the receiver answers.
#[derive(Default)]
pub struct Behaviour {
    /// Refuse (503) this many requests first.
    pub refuse_first: AtomicUsize,
    /// Never answer while set.
    pub hang: AtomicBool,
    /// Refuse (503) every request while set.
    pub down: AtomicBool,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    behaviour: Behaviour,
    /// Requests that reached the handler (answered or not: a hanging one counts at once).
    started: AtomicUsize,
}

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let arrived = jiff::Timestamp::now();
    shared.started.fetch_add(1, Ordering::Relaxed);
    let behaviour = &shared.behaviour;
    while behaviour.hang.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let parsed = cloudevents::binding::http::to_event(&headers, body.to_vec());
    let refuse = behaviour.down.load(Ordering::Relaxed)
        || behaviour
            .refuse_first
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
    let answer = if refuse {
        StatusCode::SERVICE_UNAVAILABLE
    } else if parsed.is_ok() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::BAD_REQUEST
    };
    let (event, error) = match parsed {
        Ok(event) => (Some(event), None),
        Err(error) => (None, Some(error.to_string())),
    };
    shared
        .received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Received {
            event,
            error,
            headers,
            body,
            at,
            arrived,
            answered: answer.as_u16(),
        });
    answer
}

impl Receiver {
    /// Starts a receiver on a free loopback port.
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a receiver");
        let addr = listener.local_addr().expect("its address");
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .fallback(axum::routing::post(receive))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, shared }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    /// How it answers.
    pub fn behaviour(&self) -> &Behaviour {
        &self.shared.behaviour
    }

    /// Requests that reached it so far, including those it has not answered (hanging).
    pub fn started(&self) -> usize {
        self.shared.started.load(Ordering::Relaxed)
    }

    /// Every request so far.
    pub fn all(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The events it acknowledged (2xx), in arrival order.
    pub fn acknowledged(&self) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }

    /// The acknowledged events about execution `name`, in arrival order.
    pub fn about(&self, name: &str) -> Vec<Received> {
        self.acknowledged()
            .into_iter()
            .filter(|r| r.data()["execution"] == name)
            .collect()
    }

    /// Waits until `done` holds for what it acknowledged (panics with what arrived after `limit`).
    pub async fn wait_for(&self, limit: Duration, what: &str, done: impl Fn(&[Received]) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            let acknowledged = self.acknowledged();
            if done(&acknowledged) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waited {limit:?} for {what}; acknowledged: {:#?}",
                acknowledged
                    .iter()
                    .map(|r| (
                        r.kind(),
                        r.data()["execution"].clone(),
                        r.data()["reason"].clone()
                    ))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
