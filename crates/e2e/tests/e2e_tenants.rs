//! Tenants: one namespace's executions can neither outgrow the operator-wide limit by sharing a name with
//! another's nor stop the operator for the others. The operator here watches every namespace, as `crew-operator
//! run` does by default, so these tests have a binary of their own and run one at a time.

mod support;

use crew_operator::settings::{LimitArgs, Settings};
use kube::api::{Patch, PatchParams};
use std::sync::Arc;
use std::time::Duration;
use support::wait::{wait_list, when_list};
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
        Settings {
            limits: LimitArgs {
                max_running: Some(1),
                ..Default::default()
            },
            ..Settings::for_namespace(None, "tenants")
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

    // The slot stays taken: nothing in team-b starts while team-a/nightly runs. Part of the scenario, not a wait:
    // time passes.
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

/// Sets `spec.versions[0].schema` of CRD `name` to what `change` makes of it (PUT of the whole CRD).
async fn change_crd_schema(
    client: &kube::Client,
    name: &str,
    change: impl Fn(&mut serde_json::Value),
) -> serde_json::Value {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    let crd = api.get(name).await.expect("get CRD");
    let mut value = serde_json::to_value(&crd).expect("CRD as JSON");
    let original = value["spec"]["versions"][0]["schema"].clone();
    change(&mut value["spec"]["versions"][0]["schema"]["openAPIV3Schema"]);
    let changed: CustomResourceDefinition = serde_json::from_value(value).expect("CRD");
    api.replace(name, &Default::default(), &changed)
        .await
        .expect("replace CRD");
    original
}

/// Puts the schema `original` back into CRD `name`.
async fn restore_crd_schema(client: &kube::Client, name: &str, original: serde_json::Value) {
    change_crd_schema(client, name, |schema| {
        *schema = original["openAPIV3Schema"].clone()
    })
    .await;
}

/// Creates `object` (JSON) as a `K`, retrying while the API server still validates with the old schema.
async fn create_raw<K: kube::Resource<DynamicType = ()>>(t: &TestNs, object: serde_json::Value) {
    use kube::api::{ApiResource, DynamicObject, PostParams};
    let api: kube::Api<DynamicObject> =
        kube::Api::namespaced_with(t.client.clone(), &t.ns, &ApiResource::erase::<K>(&()));
    let object: DynamicObject = serde_json::from_value(object).expect("object");
    // No object says when the API server validates with the new schema: try the create again.
    let deadline = std::time::Instant::now() + LIMIT;
    while let Err(error) = api.create(&PostParams::default(), &object).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the loosened schema still refuses the object: {error}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Review finding 1: one tenant's object the typed client cannot decode (stored before the schema bounded the
/// field, or by a tool that bypassed it) used to fail the operator's LIST after every restart, for every namespace.
/// Here such an execution and such a queue exist while the operator starts: another namespace's execution still
/// runs, and the owner of the bad objects gets a Warning Event on each.
#[tokio::test]
async fn undecodable_objects_of_one_tenant_do_not_stop_the_operator_for_another() {
    use crew_api::{CrewExecution, CrewQueue};
    let _serial = SERIAL.lock().await;
    let bad = TestNs::new("tenant-bad", Duration::from_millis(300)).await;
    let good = TestNs::new("tenant-good", Duration::from_millis(300)).await;
    let client = &bad.client;

    // Objects out of the typed client's range, as a server with a looser schema stored them.
    let unbound = |property: &'static str| {
        move |schema: &mut serde_json::Value| {
            let field = &mut schema["properties"]["spec"]["properties"][property];
            let map = field.as_object_mut().expect("a property schema");
            map.remove("maximum");
            map.remove("minimum");
            map.remove("format");
        }
    };
    let executions =
        change_crd_schema(client, "crewexecutions.crew.dev", unbound("priority")).await;
    let queues = change_crd_schema(client, "crewqueues.crew.dev", unbound("maxRunning")).await;
    create_raw::<CrewExecution>(
        &bad,
        serde_json::json!({"apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution",
            "metadata": {"name": "poison"}, "spec": {"image": "busybox", "priority": 2_147_483_648_i64}}),
    )
    .await;
    create_raw::<CrewQueue>(
        &bad,
        serde_json::json!({"apiVersion": "crew.dev/v1alpha1", "kind": "CrewQueue",
            "metadata": {"name": "huge"}, "spec": {"maxRunning": 4_294_967_296_i64}}),
    )
    .await;
    restore_crd_schema(client, "crewexecutions.crew.dev", executions).await;
    restore_crd_schema(client, "crewqueues.crew.dev", queues).await;

    let op = start_operator(client, Settings::for_namespace(None, "tenants"));
    good.create("metadata: {name: neighbour}\nspec: {image: busybox}\n")
        .await;
    good.wait_phase("neighbour", "Succeeded", LIMIT).await;
    assert!(
        op.ctx.readiness().synced(),
        "every cache listed despite the bad objects"
    );
    for (name, kind) in [("poison", "CrewExecution"), ("huge", "CrewQueue")] {
        use k8s_openapi::api::events::v1::Event;
        let events: kube::Api<Event> = kube::Api::namespaced(client.clone(), &bad.ns);
        let warned = when_list(
            format!("a Warning Event Undecodable on {kind} {name}"),
            |all: &[Arc<Event>]| {
                all.iter().any(|e| {
                    e.reason.as_deref() == Some("Undecodable")
                        && e.type_.as_deref() == Some("Warning")
                        && e.regarding.as_ref().is_some_and(|r| {
                            r.name.as_deref() == Some(name) && r.kind.as_deref() == Some(kind)
                        })
                })
            },
        );
        wait_list(events, Default::default(), LIMIT, warned).await;
    }
    assert_eq!(op.ctx.metrics.undecodable_count("CrewExecution"), 1);
    assert_eq!(op.ctx.metrics.undecodable_count("CrewQueue"), 1);
    let poison = bad
        .kubectl(&["get", "cx", "poison", "-o", "jsonpath={.status.phase}"])
        .await;
    assert_eq!(
        poison,
        (true, String::new()),
        "the bad execution is left alone"
    );
    op.stop().await;
}
