//! Leader election on the real control plane: replicas of the operator binary share a Lease; only the holder acts
//! (a standby keeps warm caches and is ready); a killed leader is replaced within 15 s without a duplicate Job; a terminated leader hands over at
//! once; a leader whose Lease is taken exits (I8).

mod support;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::conditions::{held, held_by, holder_of, some};
use support::wait::{wait_object, wait_until};
use support::{TestNs, http_get, plane};

const LIMIT: Duration = Duration::from_secs(60);

/// One operator replica: the real binary, with leader election on, watching the test namespace.
struct Replica {
    name: String,
    addr: SocketAddr,
    child: tokio::process::Child,
    log: std::path::PathBuf,
}

impl Replica {
    fn start(t: &TestNs, name: &str) -> Replica {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log_path = std::env::temp_dir().join(format!("{}-{name}.log", t.ns));
        let log = std::fs::File::create(&log_path).expect("replica log file");
        let child = tokio::process::Command::new(support::operator_bin())
            .args(["run", "--namespace", &t.ns, "--leader-election"])
            .args(["--lease-namespace", &t.ns, "--instance", name])
            .args(["--metrics-addr", &addr.to_string(), "--log-level", "info"])
            .args(["--progress-addr", "127.0.0.1:0"])
            .env("KUBECONFIG", &plane().kubeconfig)
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start crew-operator");
        Replica {
            name: name.into(),
            addr,
            child,
            log: log_path,
        }
    }

    /// The replica's log, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn readyz(&self) -> u16 {
        http_get(self.addr, "/readyz").await.0
    }

    async fn leader_gauge(&self) -> Option<String> {
        let (_, metrics) = http_get(self.addr, "/metrics").await;
        metrics
            .lines()
            .find(|l| l.starts_with("crew_leader "))
            .map(|l| l.trim_start_matches("crew_leader ").to_string())
    }

    fn signal(&self, signal: i32) {
        let pid = self.child.id().expect("replica is running");
        let pid = libc::pid_t::try_from(pid).expect("pid fits");
        // SAFETY: sending a signal to our own child process.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "kill({pid}, {signal})"
        );
    }

    async fn exit_code(&mut self, limit: Duration) -> Option<i32> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|status| status.code())
    }
}

async fn lease(t: &TestNs) -> Option<Lease> {
    let leases: Api<Lease> = Api::namespaced(t.client.clone(), &t.ns);
    leases.get_opt("crew-operator").await.ok().flatten()
}

/// The operator's Lease in `t`'s namespace.
fn leases(t: &TestNs) -> Api<Lease> {
    Api::namespaced(t.client.clone(), &t.ns)
}

/// Waits until the Lease is held by `name`; returns how long that took.
async fn wait_for_holder(t: &TestNs, name: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    wait_object(leases(t), "crew-operator", limit, held_by(name)).await;
    started.elapsed()
}

#[tokio::test]
async fn only_the_leader_acts_and_a_killed_leader_is_replaced_within_15s() {
    let t = TestNs::new("leader", Duration::from_millis(300)).await;
    let first = Replica::start(&t, "replica-a");
    let second = Replica::start(&t, "replica-b");
    let lease_held = wait_object(leases(&t), "crew-operator", LIMIT, held()).await;
    let leader_name = holder_of(&lease_held).expect("a holder").to_string();
    let (mut leader, standby) = if leader_name == first.name {
        (first, second)
    } else {
        (second, first)
    };
    wait_until(LIMIT, "the leader to be ready", || async {
        leader.readyz().await == 200
    })
    .await;
    wait_until(LIMIT, "the standby's caches", || async {
        standby.readyz().await == 200
    })
    .await;
    let (_, body) = http_get(standby.addr, "/readyz").await;
    assert!(body.contains("standby"), "{body}");
    assert_eq!(leader.leader_gauge().await.as_deref(), Some("1"));
    assert_eq!(standby.leader_gauge().await.as_deref(), Some("0"));

    t.create("metadata: {name: before}\nspec: {image: busybox}")
        .await;
    t.wait_phase("before", "Succeeded", LIMIT).await;
    let (_, standby_metrics) = http_get(standby.addr, "/metrics").await;
    let standby_writes: Vec<&str> = standby_metrics
        .lines()
        .filter(|l| l.starts_with("crew_api_writes_total") && !l.ends_with(" 0"))
        .collect();
    assert!(
        standby_writes.is_empty(),
        "a standby writes nothing: {standby_writes:?}"
    );
    let (_, leader_metrics) = http_get(leader.addr, "/metrics").await;
    assert!(
        leader_metrics.contains(r#"crew_api_writes_total{kind="lease"}"#),
        "the leader counts its Lease renewals"
    );

    // An execution whose first step is running while the leader dies.
    t.create(
        r#"
metadata: {name: across}
spec:
  image: busybox
  podAnnotations: {sim.crew.dev/duration: 4s}
  steps: [{name: one}, {name: two}]
"#,
    )
    .await;
    t.wait_jobs("across", LIMIT, some()).await;
    let transitions_before = lease(&t)
        .await
        .and_then(|l| l.spec)
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0);
    let killed_at = Instant::now();
    leader.child.start_kill().expect("SIGKILL the leader");
    let _ = leader.child.wait().await;
    wait_for_holder(&t, &standby.name, Duration::from_secs(20)).await;
    let failover = killed_at.elapsed();
    wait_until(LIMIT, "the new leader to act", || async {
        standby.leader_gauge().await.as_deref() == Some("1")
    })
    .await;
    let leading_after = killed_at.elapsed();
    println!(
        "failover after SIGKILL of the leader: Lease taken over in {:.1} s, new leader acting in {:.1} s",
        failover.as_secs_f64(),
        leading_after.as_secs_f64()
    );
    assert!(
        failover < Duration::from_secs(15),
        "failover took {failover:?}"
    );
    let transitions_after = lease(&t)
        .await
        .and_then(|l| l.spec)
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0);
    assert_eq!(transitions_after, transitions_before + 1);

    let across = t.wait_phase("across", "Succeeded", LIMIT).await;
    assert_eq!(
        support::job_names(&t, "across").await,
        ["across-one-1", "across-two-1"],
        "one Job per step attempt across the failover"
    );
    let steps = across.status.expect("status").steps;
    assert!(steps.iter().all(|s| s.attempt == 1), "{steps:#?}");
    drop(standby);
}

#[tokio::test]
async fn a_terminated_leader_hands_over_at_once_and_a_leader_whose_lease_is_taken_exits() {
    let t = TestNs::new("handover", Duration::from_millis(300)).await;
    let first = Replica::start(&t, "replica-a");
    wait_for_holder(&t, "replica-a", LIMIT).await;
    wait_until(LIMIT, "the leader's caches", || async {
        first.readyz().await == 200
    })
    .await;
    let mut first = first;
    let second = Replica::start(&t, "replica-b");
    wait_until(LIMIT, "the standby's caches", || async {
        second.readyz().await == 200
    })
    .await;
    assert_eq!(second.leader_gauge().await.as_deref(), Some("0"));

    // SIGTERM: the leader stops its controller, releases the Lease and exits 0; the standby takes over on its next
    // look instead of waiting for the claim to expire.
    let terminated_at = Instant::now();
    first.signal(libc::SIGTERM);
    let code = first.exit_code(Duration::from_secs(20)).await;
    assert_eq!(
        code,
        Some(0),
        "the terminated leader exits 0; its log:\n{}",
        first.log()
    );
    wait_for_holder(&t, "replica-b", Duration::from_secs(10)).await;
    let handover = terminated_at.elapsed();
    println!(
        "handover after SIGTERM of the leader: {:.1} s",
        handover.as_secs_f64()
    );
    assert!(
        handover < Duration::from_secs(5),
        "handover took {handover:?}"
    );
    wait_until(LIMIT, "the new leader to act", || async {
        second.leader_gauge().await.as_deref() == Some("1")
    })
    .await;
    t.create("metadata: {name: after}\nspec: {image: busybox}")
        .await;
    t.wait_phase("after", "Succeeded", LIMIT).await;

    // Somebody else writes the Lease: the leader must stop at once (exit non-zero), not keep writing.
    let mut second = second;
    let leases: Api<Lease> = Api::namespaced(t.client.clone(), &t.ns);
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now());
    let steal = serde_json::json!({"spec": {"holderIdentity": "intruder", "renewTime": now, "leaseDurationSeconds": 3600}});
    leases
        .patch(
            "crew-operator",
            &PatchParams::default(),
            &Patch::Merge(&steal),
        )
        .await
        .expect("take the Lease");
    let code = second.exit_code(Duration::from_secs(10)).await;
    assert_eq!(
        code,
        Some(1),
        "a leader that lost its Lease exits non-zero; its log:\n{}",
        second.log()
    );
}
