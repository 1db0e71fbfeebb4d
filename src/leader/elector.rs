//! The I/O side of leader election: reads and writes the Lease (get, create, update with resourceVersion
//! preconditions, so two replicas can never both win a round) and applies the rules of [`super::rules`].

use super::LeaderConfig;
use super::rules::{self, Attempt, Observer, Record};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use std::time::{Duration, Instant};

/// Why a leader stopped leading.
#[derive(Debug, thiserror::Error)]
pub enum Lost {
    /// No renewal succeeded within the renew deadline.
    #[error("could not renew the Lease within the renew deadline ({0:?})")]
    RenewDeadline(Duration),
    /// Another replica holds the Lease.
    #[error("the Lease is now held by {0}")]
    TakenBy(String),
}

/// Outcome of one round against the API server.
enum Round {
    /// We hold the Lease; the round's request began at this instant.
    Holding(Instant),
    /// Somebody else holds it; look again after this long.
    Standby(String, Duration),
    /// The round failed (conflict, network): try again after the retry period.
    Failed,
}

/// Campaigns for, holds and releases one Lease.
pub struct Elector {
    api: Api<Lease>,
    config: LeaderConfig,
    observer: Observer,
    /// The Lease as last read or written by us (for resourceVersion preconditions and release).
    last: Option<Lease>,
    /// Called after each write we make (for metrics).
    on_write: Box<dyn Fn() + Send + Sync>,
}

impl Elector {
    /// An elector for `config.lease_name` in `config.namespace`.
    pub fn new(
        client: Client,
        config: LeaderConfig,
        on_write: Box<dyn Fn() + Send + Sync>,
    ) -> Self {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observer: Observer::default(),
            last: None,
            on_write,
        }
    }

    /// Waits until this replica holds the Lease; returns the instant its winning request began.
    pub async fn acquire(&mut self) -> Instant {
        let mut waiting_for: Option<String> = None;
        loop {
            match self.round().await {
                Round::Holding(at) => {
                    tracing::info!(lease = %self.config.lease_name, identity = %self.config.identity,
                        "acquired the leader Lease");
                    return at;
                }
                Round::Standby(holder, retry_in) => {
                    if waiting_for.as_deref() != Some(&holder) {
                        tracing::info!(%holder, "standby: another replica leads");
                        waiting_for = Some(holder);
                    }
                    tokio::time::sleep(retry_in).await;
                }
                Round::Failed => tokio::time::sleep(self.config.retry_period).await,
            }
        }
    }

    /// Renews the Lease every retry period for as long as possible; returns when leadership is lost, at the renew
    /// deadline at the latest (a failed round is retried no later than the deadline, never a retry period past
    /// it). `lead_until` is told, after each renewal, the instant until which this replica may write: the
    /// caller's writes check it just before they are sent. The caller must stop acting (exit) once this returns.
    pub async fn hold(
        &mut self,
        acquired_at: Instant,
        lead_until: &(dyn Fn(Instant) + Sync),
    ) -> Lost {
        let mut renewed_at = acquired_at;
        lead_until(renewed_at + self.config.renew_deadline);
        loop {
            let deadline = renewed_at + self.config.renew_deadline;
            let pause = self
                .config
                .retry_period
                .min(deadline.saturating_duration_since(now()));
            tokio::time::sleep(pause).await;
            if rules::still_leading(renewed_at, now(), self.config.renew_deadline) {
                let round = tokio::time::timeout_at(deadline.into(), self.round()).await;
                match round {
                    Ok(Round::Holding(at)) => {
                        renewed_at = at;
                        lead_until(renewed_at + self.config.renew_deadline);
                    }
                    Ok(Round::Standby(holder, _)) => return Lost::TakenBy(holder),
                    Ok(Round::Failed) | Err(_) => {}
                }
            }
            if !rules::still_leading(renewed_at, now(), self.config.renew_deadline) {
                return Lost::RenewDeadline(self.config.renew_deadline);
            }
        }
    }

    /// Gives the Lease up (on a clean shutdown) so that a standby takes over on its next round.
    pub async fn release(&mut self) {
        let Some(lease) = self.last.clone() else {
            return;
        };
        let current = record_of(&lease);
        if current.holder() != Some(self.config.identity.as_str()) {
            return;
        }
        let released = with_record(lease, &rules::released(&current));
        let name = self.config.lease_name.clone();
        match self
            .api
            .replace(&name, &PostParams::default(), &released)
            .await
        {
            Ok(_) => {
                (self.on_write)();
                tracing::info!(lease = %name, "released the leader Lease");
            }
            Err(error) => tracing::warn!(%error, "could not release the leader Lease"),
        }
    }

    /// One round: read the Lease, then create, renew or take it over when the rules say so.
    async fn round(&mut self) -> Round {
        let started = now();
        let current = match self.api.get_opt(&self.config.lease_name).await {
            Ok(lease) => lease,
            Err(error) => {
                tracing::warn!(%error, "could not read the leader Lease");
                return Round::Failed;
            }
        };
        let record = current.as_ref().map(record_of);
        let unchanged_for = self.observer.observe(record.as_ref(), now());
        let attempt = rules::attempt(
            &self.config.identity,
            record.as_ref(),
            unchanged_for,
            self.config.lease_duration,
            self.config.retry_period,
        );
        let claim = rules::claim(
            &self.config.identity,
            record.as_ref(),
            jiff::Timestamp::now(),
            self.config.lease_duration,
        );
        let written = match (attempt, current) {
            (Attempt::Wait { holder, retry_in }, lease) => {
                self.last = lease;
                return Round::Standby(holder, retry_in);
            }
            (Attempt::Create, _) => {
                let lease = with_record(
                    Lease {
                        metadata: ObjectMeta {
                            name: Some(self.config.lease_name.clone()),
                            ..Default::default()
                        },
                        spec: None,
                    },
                    &claim,
                );
                self.api.create(&PostParams::default(), &lease).await
            }
            (Attempt::Renew | Attempt::TakeOver, Some(lease)) => {
                let lease = with_record(lease, &claim);
                self.api
                    .replace(&self.config.lease_name, &PostParams::default(), &lease)
                    .await
            }
            (Attempt::Renew | Attempt::TakeOver, None) => return Round::Failed,
        };
        match written {
            Ok(lease) => {
                (self.on_write)();
                self.last = Some(lease);
                Round::Holding(started)
            }
            Err(error) => {
                tracing::debug!(%error, "leader Lease round lost (conflict or API error)");
                Round::Failed
            }
        }
    }
}

/// The current instant on tokio's clock (the same as the system's monotonic clock, except in tests that pause it):
/// every leadership deadline is measured on it.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The election record of a Lease.
fn record_of(lease: &Lease) -> Record {
    let spec = lease.spec.clone().unwrap_or_default();
    Record {
        holder: spec.holder_identity,
        duration_seconds: spec.lease_duration_seconds,
        acquire_time: spec.acquire_time.map(|t| t.0),
        renew_time: spec.renew_time.map(|t| t.0),
        transitions: spec.lease_transitions.unwrap_or(0),
    }
}

/// `lease` (metadata kept, so its resourceVersion is the write's precondition) carrying `record`.
fn with_record(lease: Lease, record: &Record) -> Lease {
    Lease {
        spec: Some(LeaseSpec {
            holder_identity: record.holder.clone(),
            lease_duration_seconds: record.duration_seconds,
            acquire_time: record.acquire_time.map(MicroTime),
            renew_time: record.renew_time.map(MicroTime),
            lease_transitions: Some(record.transitions),
            ..lease.spec.unwrap_or_default()
        }),
        ..lease
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;

    /// An elector whose every API request is answered 500 (an API server that fails fast).
    fn elector_against_a_failing_api_server() -> Elector {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(async move {
            while let Some((_, send)) = handle.next_request().await {
                let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "boom", "reason": "InternalError", "code": 500});
                send.send_response(
                    Response::builder()
                        .status(500)
                        .body(Body::from(serde_json::to_vec(&status).unwrap_or_default()))
                        .unwrap(),
                );
            }
        });
        let config = LeaderConfig {
            identity: "me".into(),
            lease_name: "crew-operator".into(),
            namespace: "default".into(),
            lease_duration: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(7),
            retry_period: Duration::from_secs(2),
        };
        Elector::new(Client::new(service, "default"), config, Box::new(|| {}))
    }

    /// Review finding 19: the loss must be noticed at the renew deadline, not a retry period after it (a standby
    /// may take over at the lease duration, only 3 s later).
    #[tokio::test(start_paused = true)]
    async fn a_leader_that_cannot_renew_stops_at_the_renew_deadline() {
        let mut elector = elector_against_a_failing_api_server();
        let start = now();
        let deadlines = std::sync::Mutex::new(Vec::new());
        let record = |until| deadlines.lock().unwrap().push(until);
        let lost = elector.hold(start, &record).await;
        assert!(matches!(lost, Lost::RenewDeadline(_)), "{lost:?}");
        assert_eq!(now() - start, Duration::from_secs(7));
        assert_eq!(
            *deadlines.lock().unwrap(),
            vec![start + Duration::from_secs(7)],
            "no renewal succeeded: the only deadline is the first"
        );
    }

    #[test]
    fn records_round_trip_through_a_lease() {
        let record = Record {
            holder: Some("a".into()),
            duration_seconds: Some(10),
            acquire_time: Some(jiff::Timestamp::from_second(1).unwrap()),
            renew_time: Some(jiff::Timestamp::from_second(2).unwrap()),
            transitions: 4,
        };
        let lease = with_record(Lease::default(), &record);
        assert_eq!(record_of(&lease), record);
        assert_eq!(record_of(&Lease::default()), Record::default());
    }
}
