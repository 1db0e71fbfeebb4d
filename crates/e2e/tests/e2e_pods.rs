//! Worker pods for real clusters, on the real control plane with the real scheduler and KWOK nodes: the pod
//! template (a GPU step on the tainted GPU node), the `restricted` defaults admitted by Pod Security Admission,
//! and the reserved names the schema refuses.

mod support;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use std::time::Duration;
use support::TestNs;

const LIMIT: Duration = Duration::from_secs(60);

async fn pod_of(t: &TestNs, execution: &str, step: &str) -> Pod {
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), &t.ns);
    let list = pods
        .list(&ListParams::default().labels(&format!(
            "crew.dev/execution={execution},crew.dev/step={step}"
        )))
        .await
        .expect("list pods");
    list.items.into_iter().next().expect("the step's pod")
}

fn node_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_gpu_step_lands_on_the_tainted_gpu_node_and_its_other_steps_do_not() {
    let t = TestNs::new("pods-gpu", Duration::from_millis(300)).await;
    let op = t.start_operator();
    t.create(
        r#"
metadata: {name: train}
spec:
  image: trainer:1
  podTemplate:
    labels: {team: vision}
  steps:
  - name: prepare
  - name: fit
    podTemplate:
      nodeSelector: {nvidia.com/gpu.present: "true"}
      tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
      labels: {pool: gpu}
"#,
    )
    .await;
    t.wait_phase("train", "Succeeded", LIMIT).await;
    let prepare = pod_of(&t, "train", "prepare").await;
    let fit = pod_of(&t, "train", "fit").await;
    assert!(
        node_of(&prepare).starts_with("kwok-node-"),
        "{}",
        node_of(&prepare)
    );
    assert_eq!(node_of(&fit), "kwok-gpu-0");
    assert_eq!(fit.labels()["team"], "vision", "inherited");
    assert_eq!(fit.labels()["pool"], "gpu");
    assert_eq!(fit.labels()["crew.dev/step"], "fit");
    assert!(!prepare.labels().contains_key("pool"));
    op.stop().await;
}

#[tokio::test]
async fn workers_meet_pod_security_restricted_by_default() {
    let t = TestNs::new("pods-restricted", Duration::from_millis(300)).await;
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    namespaces
        .patch(
            &t.ns,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            }}})),
        )
        .await
        .expect("label the namespace restricted");
    let op = t.start_operator();
    t.create("metadata: {name: plain}\nspec: {image: busybox}\n")
        .await;
    t.wait_phase("plain", "Succeeded", LIMIT).await;
    let pod = pod_of(&t, "plain", "main").await;
    let spec = pod.spec.expect("pod spec");
    assert_eq!(spec.automount_service_account_token, Some(false));
    let security = spec.security_context.expect("pod security context");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(
        security.seccomp_profile.map(|p| p.type_).as_deref(),
        Some("RuntimeDefault")
    );
    let container = spec.containers[0]
        .security_context
        .clone()
        .expect("container security context");
    assert_eq!(container.allow_privilege_escalation, Some(false));
    op.stop().await;
}

#[tokio::test]
async fn the_operators_names_cannot_be_taken_by_the_template() {
    let t = TestNs::new("pods-reserved", Duration::from_millis(300)).await;
    for (template, expected) in [
        (
            "{labels: {crew.dev/step: forged}}",
            "labels under crew.dev/ are reserved",
        ),
        (
            "{volumes: [{name: crew, emptyDir: {}}]}",
            "the volume name crew is reserved",
        ),
        (
            "{volumeMounts: [{name: data, mountPath: /crew/inputs.json}]}",
            "the mount path /crew is reserved",
        ),
    ] {
        let manifest = format!(
            "apiVersion: crew.dev/v1alpha1\nkind: CrewExecution\nmetadata: {{name: bad}}\n\
             spec: {{image: busybox, steps: [{{name: one, podTemplate: {template}}}]}}\n"
        );
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), &manifest).expect("write manifest");
        let (ok, out) = t
            .kubectl(&["apply", "-f", &file.path().to_string_lossy()])
            .await;
        assert!(!ok, "accepted:\n{manifest}\n{out}");
        assert!(out.contains(expected), "{expected:?} not in:\n{out}");
    }
}
