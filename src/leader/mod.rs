//! Leader election on a `coordination.k8s.io/v1` Lease, so that several replicas can run and only one acts.
//!
//! Every replica runs the controller's caches (a warm standby); only the one holding the Lease reconciles, and it
//! renews the Lease every retry period. If no renewal succeeds within the renew deadline, or another replica holds
//! the Lease, [`run_when_leading`] returns [`Lost`] and the process must exit at once (invariant I8: stop writing before the renew deadline, exit on lease loss); being
//! restarted, it comes back as a standby. On SIGTERM/SIGINT the leader stops the controller, then releases the
//! Lease so a standby takes over within one retry period instead of waiting for expiry.
//!
//! `rules` holds the decisions (pure, tested without a cluster); `elector` the Lease reads and writes.

pub mod elector;
pub mod rules;

use crate::controller::Operator;
use crate::metrics::WriteKind;
pub use elector::{Elector, Lost};
use std::time::Duration;

/// How leader election runs.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease.
    pub namespace: String,
    /// This replica's identity in the Lease (unique per replica: the pod name).
    pub identity: String,
    /// How long a claim lasts without renewal; a standby takes over this long after it last saw a renewal.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long stops (must be shorter than `lease_duration`).
    pub renew_deadline: Duration,
    /// Time between rounds: renewals by the leader, looks by a standby.
    pub retry_period: Duration,
}

/// Why a leader configuration cannot work.
#[derive(Debug, thiserror::Error)]
#[error(
    "leader election needs retry period < renew deadline < lease duration (got {retry:?}, {renew:?}, {lease:?})"
)]
pub struct InvalidTimings {
    retry: Duration,
    renew: Duration,
    lease: Duration,
}

impl LeaderConfig {
    /// Checks that the timings keep a single writer: a leader stops before a standby may take over.
    pub fn validate(&self) -> Result<(), InvalidTimings> {
        if self.retry_period < self.renew_deadline
            && self.renew_deadline < self.lease_duration
            && !self.retry_period.is_zero()
        {
            Ok(())
        } else {
            Err(InvalidTimings {
                retry: self.retry_period,
                renew: self.renew_deadline,
                lease: self.lease_duration,
            })
        }
    }
}

/// Runs the controller as one replica among several: its caches fill at once (a warm standby), but it acts only
/// while it holds the Lease. Returns `Ok` after a clean shutdown (`shutdown` resolved, e.g. [`crate::shutdown::signal`];
/// in-flight reconciles finished; the Lease released if held), or the reason leadership was lost: the caller must
/// then exit immediately.
pub async fn run_when_leading(
    operator: Operator,
    config: LeaderConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Lost> {
    let ctx = operator.context();
    ctx.set_leading(false);
    let metrics = ctx.metrics.clone();
    let on_write = Box::new(move || metrics.write(WriteKind::Lease));
    let mut elector = Elector::new(ctx.client.clone(), config, on_write);
    let controller = operator.run(shutdown);
    tokio::pin!(controller);
    let acquired_at = tokio::select! {
        at = elector.acquire() => at,
        () = &mut controller => return Ok(()),
    };
    // Every cached execution is reconciled now (the controller's `reconcile_all_on` trigger).
    ctx.set_leading(true);
    let lead_until = |until| ctx.leadership.lead_until(until);
    let lost = tokio::select! {
        () = &mut controller => None,
        lost = elector.hold(acquired_at, &lead_until) => Some(lost),
    };
    ctx.set_leading(false);
    match lost {
        Some(lost) => Err(lost),
        None => {
            elector.release().await;
            Ok(())
        }
    }
}

/// Default Lease timings: a killed leader is replaced within about 12 s (10 s expiry seen from the standby's
/// last look, plus at most one 2 s retry period); a leader that cannot renew stops after 7 s.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(10);
/// See [`DEFAULT_LEASE_DURATION`].
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(7);
/// See [`DEFAULT_LEASE_DURATION`].
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(retry: u64, renew: u64, lease: u64) -> LeaderConfig {
        LeaderConfig {
            lease_name: "l".into(),
            namespace: "n".into(),
            identity: "a".into(),
            lease_duration: Duration::from_secs(lease),
            renew_deadline: Duration::from_secs(renew),
            retry_period: Duration::from_secs(retry),
        }
    }

    #[test]
    fn timings_must_keep_a_single_writer() {
        assert!(config(2, 7, 10).validate().is_ok());
        assert!(
            LeaderConfig {
                lease_duration: DEFAULT_LEASE_DURATION,
                renew_deadline: DEFAULT_RENEW_DEADLINE,
                retry_period: DEFAULT_RETRY_PERIOD,
                ..config(0, 0, 0)
            }
            .validate()
            .is_ok()
        );
        assert!(config(2, 10, 10).validate().is_err(), "renew == lease");
        assert!(config(7, 7, 10).validate().is_err(), "retry == renew");
        assert!(config(0, 7, 10).validate().is_err(), "zero retry");
        assert!(config(2, 12, 10).validate().is_err(), "renew > lease");
    }
}
