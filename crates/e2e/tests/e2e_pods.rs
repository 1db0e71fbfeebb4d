//! Worker pods for real clusters, on the real control plane with the real scheduler and KWOK nodes: the pod
//! template (a GPU step on the tainted GPU node), the `restricted` defaults admitted by Pod Security Admission,
//! and the reserved names the schema refuses.

mod support;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use std::time::Duration;
use support::TestNs;
use support::conditions::{has_reason, none};

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
            "the volume names crew and crew-progress are reserved",
        ),
        (
            "{volumes: [{name: crew-progress, emptyDir: {}}]}",
            "the volume names crew and crew-progress are reserved",
        ),
        (
            "{volumeMounts: [{name: data, mountPath: /crew/inputs.json}]}",
            "the mount paths /crew and /var/run/secrets/crew.dev are reserved",
        ),
        (
            "{volumeMounts: [{name: data, mountPath: /var/run/secrets/crew.dev}]}",
            "the mount paths /crew and /var/run/secrets/crew.dev are reserved",
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

fn reason_of(cx: &crew_api::CrewExecution) -> String {
    cx.status
        .as_ref()
        .and_then(|s| s.reason.clone())
        .unwrap_or_default()
}

/// A worker the scheduler cannot place shows why while it waits, fails with `StartTimeout`, and frees its queue
/// slot for the next run: no run stays `Running` forever on a pod that never starts.
#[tokio::test]
async fn an_unschedulable_worker_fails_with_start_timeout_and_frees_its_queue_slot() {
    let t = TestNs::new("pods-unschedulable", Duration::from_millis(300)).await;
    let queues: Api<crew_api::CrewQueue> = Api::namespaced(t.client.clone(), &t.ns);
    let mut queue = crew_api::CrewQueue::new("one", crew_api::CrewQueueSpec { max_running: 1 });
    queue.metadata.namespace = Some(t.ns.clone());
    queues
        .create(&Default::default(), &queue)
        .await
        .expect("create queue");
    let op = t.start_operator();
    t.create(
        "metadata: {name: too-big}\nspec: {image: busybox, queue: one, priority: 1, startTimeoutSeconds: 8, \
         resources: {requests: {cpu: \"5000\"}}}\n",
    )
    .await;
    t.create("metadata: {name: next}\nspec: {image: busybox, queue: one}\n")
        .await;
    let waiting = t
        .wait_for("too-big", LIMIT, has_reason("Unschedulable"))
        .await;
    let status = waiting.status.expect("status");
    let blocked = status
        .conditions
        .iter()
        .find(|c| c.type_ == "StartBlocked")
        .expect("StartBlocked condition");
    assert_eq!(
        (blocked.status.as_str(), blocked.reason.as_str()),
        ("True", "Unschedulable")
    );
    assert!(
        blocked.message.contains("Insufficient cpu"),
        "{}",
        blocked.message
    );
    let failed = t.wait_phase("too-big", "Failed", LIMIT).await;
    assert_eq!(reason_of(&failed), "StartTimeout");
    let message = failed
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("did not start within 8s") && message.contains("Insufficient cpu"),
        "{message}"
    );
    // The slot was held while the worker waited to start, and freed when it timed out (the history, not a
    // snapshot: on a loaded machine the timeout may pass before a snapshot is taken).
    let timed_out = failed
        .status
        .as_ref()
        .and_then(|s| s.completion_time.clone())
        .expect("completion time")
        .0;
    let next = t.wait_phase("next", "Succeeded", LIMIT).await;
    let started = next
        .status
        .expect("status")
        .history
        .iter()
        .find(|h| h.to == crew_api::Phase::Running)
        .expect("next was started")
        .time
        .0;
    assert!(
        started >= timed_out,
        "next started at {started}, before too-big's slot freed at {timed_out}"
    );
    op.stop().await;
}

/// A pod the API server refuses to create (here: a quota of zero pods) never appears: the Job controller's
/// `FailedCreate` Event is shown, and the attempt still ends, with `StartTimeout`.
#[tokio::test]
async fn a_worker_whose_pod_is_never_created_fails_with_start_timeout() {
    let t = TestNs::new("pods-refused", Duration::from_millis(300)).await;
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> =
        Api::namespaced(t.client.clone(), &t.ns);
    let quota: k8s_openapi::api::core::v1::ResourceQuota =
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}
        }))
        .unwrap();
    quotas
        .create(&Default::default(), &quota)
        .await
        .expect("create quota");
    let op = t.start_operator();
    t.create("metadata: {name: no-pod}\nspec: {image: busybox, startTimeoutSeconds: 20}\n")
        .await;
    // After 10 s without a pod the Job controller's FailedCreate Event says why.
    let waiting = t
        .wait_for("no-pod", LIMIT, has_reason("FailedCreate"))
        .await;
    let step_message = waiting.status.as_ref().unwrap().steps[0]
        .message
        .clone()
        .unwrap_or_default();
    assert!(
        step_message.starts_with("FailedCreate: ") && step_message.contains("exceeded quota"),
        "{step_message}"
    );
    let failed = t.wait_phase("no-pod", "Failed", LIMIT).await;
    assert_eq!(reason_of(&failed), "StartTimeout");
    let message = failed.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.contains("did not start within 20s") && message.contains("exceeded quota"),
        "{message}"
    );
    op.stop().await;
}

async fn service_account(t: &TestNs, name: &str, annotations: serde_json::Value) {
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(t.client.clone(), &t.ns);
    let account = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "annotations": annotations}
    }))
    .unwrap();
    accounts
        .patch(
            name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&serde_json::json!({
                "apiVersion": "v1", "kind": "ServiceAccount", "metadata": serde_json::to_value::<
                    k8s_openapi::api::core::v1::ServiceAccount,
                >(account)
                .unwrap()["metadata"]
            })),
        )
        .await
        .expect("apply ServiceAccount");
}

async fn assert_invalid(t: &TestNs, name: &str, expected: &str) {
    let failed = t.wait_phase(name, "Failed", LIMIT).await;
    assert_eq!(reason_of(&failed), "InvalidSpec", "{name}");
    let message = failed.status.and_then(|s| s.message).unwrap_or_default();
    assert!(message.contains(expected), "{name}: {message}");
    assert!(
        support::job_names(t, name).await.is_empty(),
        "{name}: no Job was created"
    );
}

/// Review finding 16: whoever may create a CrewExecution may not pick a ServiceAccount, read a Secret or drive an
/// injector that the namespace's owner (or the operator's admin) did not open to workers.
#[tokio::test]
async fn workers_get_only_what_the_namespace_owner_opened_to_them() {
    let t = TestNs::new("pods-deputy", Duration::from_millis(300)).await;
    service_account(&t, "powerful", serde_json::json!({})).await;
    service_account(&t, "runner", serde_json::json!({"crew.dev/worker": "true"})).await;
    let op = t.start_operator();
    t.create(
        "metadata: {name: as-powerful}\nspec: {image: busybox, serviceAccountName: powerful}\n",
    )
    .await;
    assert_invalid(&t, "as-powerful", "crew.dev/worker=true").await;
    t.create("metadata: {name: as-ghost}\nspec: {image: busybox, serviceAccountName: ghost}\n")
        .await;
    assert_invalid(&t, "as-ghost", "ServiceAccount \"ghost\" does not exist").await;
    t.create(
        "metadata: {name: reads-db}\nspec: {image: busybox, env: [{name: DB, valueFrom: {secretKeyRef: \
         {name: db, key: password}}}]}\n",
    )
    .await;
    assert_invalid(&t, "reads-db", "crew.dev/worker-secrets").await;
    t.create(
        "metadata: {name: injected}\nspec: {image: busybox, podAnnotations: \
         {vault.hashicorp.com/agent-inject: \"true\"}}\n",
    )
    .await;
    assert_invalid(&t, "injected", "vault.hashicorp.com/agent-inject").await;
    // What the owner opened works.
    service_account(
        &t,
        "runner",
        serde_json::json!({"crew.dev/worker": "true", "crew.dev/worker-secrets": "db"}),
    )
    .await;
    t.create(
        "metadata: {name: as-runner}\nspec: {image: busybox, serviceAccountName: runner, env: [{name: DB, \
         valueFrom: {secretKeyRef: {name: db, key: password}}}]}\n",
    )
    .await;
    t.wait_phase("as-runner", "Succeeded", LIMIT).await;
    let pod = pod_of(&t, "as-runner", "main").await;
    let spec = pod.spec.expect("pod spec");
    assert_eq!(spec.service_account_name.as_deref(), Some("runner"));
    assert_eq!(
        spec.automount_service_account_token, None,
        "a named ServiceAccount keeps its token"
    );
    op.stop().await;
}

/// A worker whose image cannot be pulled (KWOK plays the kubelet's `ImagePullBackOff`) shows why, and each attempt
/// ends with `StartTimeout` under the retry policy.
#[tokio::test]
async fn an_image_that_cannot_be_pulled_is_reported_and_every_attempt_times_out() {
    let t = TestNs::new("pods-pull", Duration::from_millis(300)).await;
    let op = t.start_operator();
    t.create(
        "metadata: {name: typo}\nspec: {image: busyboxx, startTimeoutSeconds: 4, retry: {limit: 1, \
         backoffSeconds: 0}, podAnnotations: {sim.crew.dev/waiting: ErrImagePull}}\n",
    )
    .await;
    let waiting = t
        .wait_for("typo", LIMIT, has_reason("ImagePullBackOff"))
        .await;
    let step = &waiting.status.as_ref().unwrap().steps[0];
    assert!(
        step.message
            .as_deref()
            .is_some_and(|m| m.starts_with("ImagePullBackOff: simulated by kwok")),
        "{step:?}"
    );
    let failed = t.wait_phase("typo", "Failed", LIMIT).await;
    assert_eq!(reason_of(&failed), "RetriesExhausted");
    let status = failed.status.unwrap_or_default();
    assert_eq!(status.attempt, Some(2));
    let message = status.message.unwrap_or_default();
    assert!(
        message.contains("StartTimeout") && message.contains("ImagePullBackOff"),
        "{message}"
    );
    // Each timed-out attempt's Job is deleted with it.
    t.wait_jobs("typo", LIMIT, none()).await;
    op.stop().await;
}

/// The pod template reuses the Kubernetes types with their documentation: `kubectl explain` describes every field.
#[tokio::test]
async fn kubectl_explain_describes_the_pod_template_down_to_the_kubernetes_fields() {
    let t = TestNs::new("pods-explain", Duration::from_millis(300)).await;
    // The API server publishes a new CRD's OpenAPI a moment after the CRD is established: no object says when,
    // so kubectl asks again.
    let deadline = std::time::Instant::now() + LIMIT;
    let (ok, out) = loop {
        let (ok, out) = t
            .kubectl(&[
                "explain",
                "crewexecutions.spec.podTemplate.affinity.nodeAffinity",
            ])
            .await;
        if ok || std::time::Instant::now() > deadline {
            break (ok, out);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(ok, "{out}");
    assert!(
        out.contains("requiredDuringSchedulingIgnoredDuringExecution")
            && out.contains("DESCRIPTION"),
        "{out}"
    );
    let (ok, out) = t
        .kubectl(&[
            "explain",
            "crewexecutions.spec.podTemplate.tolerations.effect",
        ])
        .await;
    assert!(ok && out.contains("NoSchedule"), "{out}");
}

/// Review finding 4: a projected `serviceAccountToken` gave the worker a token of `default` (for the API server, or
/// any audience: IRSA, Vault) although its execution named no ServiceAccount; `automountServiceAccountToken: false`
/// does not apply to explicit projections. Such an execution now ends `InvalidSpec` before any Job exists, and so
/// does a volume that reaches the node or a claim its namespace's owner did not open; with the claim listed on the
/// ServiceAccount the pod runs as, the worker mounts it.
#[tokio::test]
async fn workers_cannot_mint_a_token_through_a_projected_volume() {
    let t = TestNs::new("pods-volumes", Duration::from_millis(300)).await;
    let op = t.start_operator();
    t.create(
        "metadata: {name: minted}\nspec: {image: busybox, podTemplate: {volumes: [{name: t, projected: {sources: \
         [{serviceAccountToken: {path: token, audience: sts.amazonaws.com}}]}}], volumeMounts: [{name: t, \
         mountPath: /t}]}}\n",
    )
    .await;
    assert_invalid(&t, "minted", "projects a ServiceAccount token").await;
    t.create(
        "metadata: {name: on-the-node}\nspec: {image: busybox, steps: [{name: a, podTemplate: {volumes: [{name: \
         sock, hostPath: {path: /var/run}}]}}]}\n",
    )
    .await;
    assert_invalid(&t, "on-the-node", "of type hostPath").await;
    t.create(
        "metadata: {name: their-data}\nspec: {image: busybox, podTemplate: {volumes: [{name: d, \
         persistentVolumeClaim: {claimName: team-data}}]}}\n",
    )
    .await;
    assert_invalid(&t, "their-data", "crew.dev/worker-volume-claims").await;
    service_account(
        &t,
        "default",
        serde_json::json!({"crew.dev/worker-volume-claims": "team-data"}),
    )
    .await;
    t.create(
        "metadata: {name: our-data}\nspec: {image: busybox, podTemplate: {volumes: [{name: d, \
         persistentVolumeClaim: {claimName: team-data}}]}}\n",
    )
    .await;
    t.wait_jobs("our-data", LIMIT, support::conditions::some())
        .await;
    op.stop().await;
}
