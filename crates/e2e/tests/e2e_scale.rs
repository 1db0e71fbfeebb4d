//! Scale: many executions at once on the real control plane. Its own test binary, so that its load does not
//! disturb the timing-sensitive tests of the other binaries (cargo runs test binaries one after another).

mod support;

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use std::time::Duration;
use support::TestNs;
use support::conditions::{all_deleting, counts_by_phase};
use support::wait::{wait_list, wait_until};

/// Cancelling 1,000 executions at once (100 of them running a Job) works without an error storm: every one ends
/// Cancelled, every running Job is deleted, no reconcile fails, and each cancel costs one status write.
#[tokio::test]
async fn cancelling_a_thousand_executions_at_once_causes_no_error_storm() {
    use futures::StreamExt;
    const TOTAL: usize = 1000;
    const RUNNING: usize = 100;
    let t = TestNs::new("mass-cancel", Duration::from_secs(1)).await;
    let op = t.start_operator();
    let names: Vec<String> = (0..TOTAL).map(|i| format!("bulk-{i:04}")).collect();
    futures::stream::iter(names.iter().enumerate())
        .for_each_concurrent(32, |(i, name)| {
            let t = &t;
            async move {
                let yaml = if i < RUNNING {
                    format!("metadata: {{name: {name}}}\nspec: {{image: busybox, podAnnotations: {{sim.crew.dev/hang: \"true\"}}}}\n")
                } else {
                    format!("metadata: {{name: {name}}}\nspec: {{image: busybox, suspend: true}}\n")
                };
                t.create(&yaml).await;
            }
        })
        .await;
    let api = t.executions();
    t.wait_executions(
        Duration::from_secs(240),
        counts_by_phase(&[("Running", RUNNING), ("Paused", TOTAL - RUNNING)]),
    )
    .await;
    let writes_before = op
        .ctx
        .metrics
        .writes(crew_operator::metrics::WriteKind::Status);
    let cancel = Patch::Merge(json!({"spec": {"cancel": true}}));
    futures::stream::iter(names.iter())
        .for_each_concurrent(32, |name| {
            let api = api.clone();
            let cancel = &cancel;
            async move {
                api.patch(name, &PatchParams::default(), cancel)
                    .await
                    .expect("cancel");
            }
        })
        .await;
    t.wait_executions(
        Duration::from_secs(240),
        counts_by_phase(&[("Cancelled", TOTAL)]),
    )
    .await;
    // The watch may show the last run Cancelled before the operator has counted that status write (it counts on
    // the answer).
    wait_until(
        Duration::from_secs(20),
        "the operator to count a status write per cancel",
        || async {
            op.ctx
                .metrics
                .writes(crew_operator::metrics::WriteKind::Status)
                >= writes_before + TOTAL as u64
        },
    )
    .await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(t.client.clone(), &t.ns);
    wait_list(
        jobs,
        Default::default(),
        Duration::from_secs(120),
        all_deleting(),
    )
    .await;
    let cancel_writes = op
        .ctx
        .metrics
        .writes(crew_operator::metrics::WriteKind::Status)
        - writes_before;
    let metrics = op.ctx.metrics.render();
    println!(
        "1,000 cancels: {cancel_writes} status writes; errors: {}",
        metrics
            .lines()
            .filter(|l| l.starts_with("crew_reconcile_errors_total"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(
        !metrics.contains("crew_reconcile_errors_total{"),
        "no reconcile failed:\n{metrics}"
    );
    assert!(
        cancel_writes >= TOTAL as u64 && cancel_writes <= TOTAL as u64 + 50,
        "about one status write per cancel: {cancel_writes}"
    );
    op.stop().await;
}
