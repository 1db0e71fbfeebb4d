//! CrewSinks on the real control plane: every transition reaches the receiver as a CloudEvent (parsed by the
//! CloudEvents SDK), in order per execution, with stable ids; at least once across failures and restarts.

mod support;

use cloudevents::AttributesReader;
use crew_api::CrewSink;
use kube::Api;
use kube::api::PostParams;
use std::time::Duration;
use support::TestNs;
use support::receiver::{Received, Receiver};

const LIMIT: Duration = Duration::from_secs(60);

/// Creates a CrewSink named `name` in `t`'s namespace sending to `receiver`, with `extra` spec fields.
async fn create_sink(
    t: &TestNs,
    name: &str,
    receiver: &Receiver,
    extra: serde_json::Value,
) -> CrewSink {
    let mut spec = serde_json::json!({"url": receiver.url(), "retry": {"limit": 20, "backoffSeconds": 1, "maxBackoffSeconds": 2}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let sink: CrewSink = serde_json::from_value(serde_json::json!({
        "apiVersion": "crew.dev/v1alpha1", "kind": "CrewSink",
        "metadata": {"name": name, "namespace": t.ns}, "spec": spec,
    }))
    .expect("a CrewSink");
    Api::<CrewSink>::namespaced(t.client.clone(), &t.ns)
        .create(&PostParams::default(), &sink)
        .await
        .expect("create the sink")
}

/// (type, reason) of each event, in arrival order.
fn story(events: &[Received]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|r| {
            (
                r.kind().trim_start_matches("dev.crew.").to_string(),
                r.data()["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_transition_reaches_the_sink_in_order_as_cloudevents() {
    let t = TestNs::new("notify-order", Duration::from_millis(300)).await;
    let receiver = Receiver::start().await;
    let structured = Receiver::start().await;
    create_sink(&t, "binary", &receiver, serde_json::json!({})).await;
    create_sink(
        &t,
        "structured",
        &structured,
        serde_json::json!({"mode": "structured"}),
    )
    .await;
    let op = t.start_operator();
    t.create(
        "metadata: {name: flaky, labels: {team: a}}\nspec:\n  image: busybox\n  retry: {limit: 2, backoffSeconds: 1}\n  \
         steps: [{name: research, podAnnotations: {sim.crew.dev/fail-attempts: \"1\"}}, {name: write}]\n",
    )
    .await;
    t.wait_phase("flaky", "Succeeded", LIMIT).await;
    let expected = [
        ("execution.state_changed", "Started"),
        ("step.state_changed", "RetryScheduled"),
        ("step.state_changed", "StepStarted"),
        ("step.state_changed", "StepSucceeded"),
        ("execution.state_changed", "Succeeded"),
        ("execution.completed", "Succeeded"),
    ];
    for sink in [&receiver, &structured] {
        sink.wait_for(LIMIT, "every transition of flaky", |all| {
            all.len() >= expected.len()
        })
        .await;
        let events = sink.about("flaky");
        let got = story(&events);
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|(k, r)| (k.to_string(), r.to_string()))
            .collect();
        assert_eq!(got, want, "in order, each once");
        for event in &events {
            assert!(
                event.error.is_none(),
                "the SDK parses it: {:?}",
                event.error
            );
            let e = event.event.as_ref().expect("an event");
            assert_eq!(e.specversion().to_string(), "1.0");
            assert_eq!(
                e.source().to_string(),
                format!(
                    "/apis/crew.dev/v1alpha1/namespaces/{}/crewexecutions/flaky",
                    t.ns
                )
            );
            assert_eq!(e.subject(), Some("flaky"));
            assert!(e.time().is_some());
            let data = event.data();
            assert_eq!(data["namespace"], t.ns.as_str());
            assert_eq!(data["labels"]["team"], "a");
            assert!(
                data["uid"]
                    .as_str()
                    .is_some_and(|uid| event.id().starts_with(uid))
            );
        }
        let attempts: Vec<_> = events.iter().map(|e| e.data()["attempt"].clone()).collect();
        assert_eq!(attempts[1], 1, "the failed attempt");
        assert_eq!(attempts[2], 2, "the retry");
        let completed = events.last().expect("completed").data();
        assert_eq!(completed["previousPhase"], "Running");
        assert_eq!(completed["progress"], 100);
        assert!(completed["durationSeconds"].as_i64().is_some());
    }
    // Both sinks got the same ids: stable, one per transition.
    let ids = |r: &Receiver| {
        r.about("flaky")
            .iter()
            .map(Received::id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&receiver), ids(&structured));
    // Structured mode is one document; binary mode puts the attributes in headers.
    assert!(
        structured.all()[0].headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/cloudevents+json")
    );
    assert!(receiver.all()[0].headers.contains_key("ce-id"));
    // The run let go of its finalizer once its end was delivered.
    let done = t
        .wait_for(
            "flaky",
            LIMIT,
            support::wait::when_object("no finalizer", |cx: &crew_api::CrewExecution| {
                cx.metadata.finalizers.as_ref().is_none_or(Vec::is_empty)
            }),
        )
        .await;
    assert_eq!(done.status.unwrap().phase, Some(crew_api::Phase::Succeeded));
    op.stop().await;
}
