//! Tenants: one namespace's executions can neither outgrow the operator-wide limit by sharing a name with
//! another's nor stop the operator for the others. The operator here watches every namespace, as `crew-operator
//! run` does by default, so these tests have a binary of their own and run one at a time.

mod support;

use crew_operator::controller::ControllerConfig;
use kube::api::{Patch, PatchParams};
use std::time::Duration;
use support::{TestNs, phase_of, start_operator};
use tokio::sync::Mutex;

/// One all-namespace operator at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

const LIMIT: Duration = Duration::from_secs(60);

/// Review finding 6: `--max-running` identified members by name, so `team-b/nightly` found `team-a/nightly`
/// running, took it for itself and ran past the limit.
#[tokio::test]
async fn the_operator_wide_limit_counts_same_named_executions_of_two_namespaces() {
    let _serial = SERIAL.lock().await;
    let a = TestNs::new("tenant-a", Duration::from_millis(300)).await;
    let b = TestNs::new("tenant-b", Duration::from_millis(300)).await;
    let op = start_operator(
        &a.client,
        ControllerConfig {
            namespace: None,
            instance: Some("tenants".into()),
            max_running: Some(1),
            ..Default::default()
        },
    );
    a.create("metadata: {name: nightly}\nspec: {image: busybox, podAnnotations: {sim.crew.dev/hang: \"true\"}}\n")
        .await;
    a.wait_phase("nightly", "Running", LIMIT).await;
    b.create("metadata: {name: nightly}\nspec: {image: busybox}\n")
        .await;
    b.create("metadata: {name: other}\nspec: {image: busybox}\n")
        .await;
    b.wait_phase("nightly", "Queued", LIMIT).await;
    b.wait_phase("other", "Queued", LIMIT).await;

    // The slot stays taken: nothing in team-b starts while team-a/nightly runs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in ["nightly", "other"] {
        let cx = b.executions().get(name).await.expect("get");
        assert_eq!(phase_of(&cx), "Queued", "team-b/{name} ran past the limit");
    }

    // Freeing the slot admits team-b's executions one at a time, oldest first.
    a.executions()
        .patch(
            "nightly",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"cancel": true}})),
        )
        .await
        .expect("cancel team-a/nightly");
    a.wait_phase("nightly", "Cancelled", LIMIT).await;
    let first = b.wait_phase("nightly", "Succeeded", LIMIT).await;
    let second = b.wait_phase("other", "Succeeded", LIMIT).await;
    let (Some(first_done), Some(second_started)) = (
        first
            .status
            .as_ref()
            .and_then(|s| s.completion_time.clone()),
        second.status.as_ref().and_then(|s| s.start_time.clone()),
    ) else {
        panic!("timings missing: {:?} {:?}", first.status, second.status);
    };
    assert!(
        second_started.0 >= first_done.0,
        "team-b/other started before team-b/nightly finished"
    );
    op.stop().await;
}
