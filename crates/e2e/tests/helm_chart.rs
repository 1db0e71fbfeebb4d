//! The Helm chart (charts/crew-operator): CRD copies, lint, rendering with default and non-default values, the
//! values schema, the Argo CD health checks, the operator binary's CLI, and a real `helm install` on the test
//! control plane whose RBAC is then proven sufficient by running the operator with the chart's ServiceAccount.

mod support;

use crew_api::{CrewExecution, CrewQueue};
use crew_operator::controller;
use crew_operator::leader::{self, LeaderConfig};
use crew_operator::metrics::WriteKind;
use crew_operator::settings::Settings;
use crew_testkit::{ControlPlane, create_namespace};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};
use support::conditions::{deleted, is_phase};
use support::http_get;
use support::wait::{TimedOut, try_wait_list, try_wait_object, when, when_list, when_object};
use tracing::Level;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

const LIMIT: Duration = Duration::from_secs(90);

/// The test control plane (after installing this binary's tracing subscriber).
fn plane() -> &'static ControlPlane {
    init_tracing();
    support::plane()
}

fn repo() -> PathBuf {
    support::repo_root()
}

fn chart() -> PathBuf {
    repo().join("charts/crew-operator")
}

/// Runs helm from the control-plane binaries; returns (success, stdout, stderr).
fn helm(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(plane().bin.join("helm"))
        .args(args)
        .output()
        .expect("run helm");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `helm <args> --kubeconfig <test control plane>`.
fn helm_on_cluster(args: &[&str]) -> (bool, String, String) {
    let kubeconfig = plane().kubeconfig.to_string_lossy().into_owned();
    let mut all = args.to_vec();
    all.extend(["--kubeconfig", kubeconfig.as_str()]);
    helm(&all)
}

/// `helm template` of the chart with `--set` values; panics when rendering fails.
fn render(sets: &[&str]) -> Vec<Value> {
    let (ok, stdout, stderr) = template(sets);
    assert!(ok, "helm template {sets:?} failed: {stderr}");
    parse(&stdout)
}

fn template(sets: &[&str]) -> (bool, String, String) {
    let chart = chart().to_string_lossy().into_owned();
    let mut args = vec![
        "template",
        "crew",
        chart.as_str(),
        "--namespace",
        "crew-system",
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    helm(&args)
}

/// The documents of a multi-document YAML stream, as JSON values (empty documents skipped).
fn parse(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).expect("rendered YAML parses");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    kinds.sort();
    kinds
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "exactly one {kind} expected");
    found[0]
}

type Triple = (String, String, String);

/// The (apiGroup, resource, verb) triples of RBAC rules.
fn triples(rules: &Value) -> BTreeSet<Triple> {
    let mut out = BTreeSet::new();
    for rule in rules.as_array().expect("rules is a list") {
        let strings = |key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .unwrap_or_else(|| panic!("rule without {key}: {rule}"))
                .iter()
                .map(|v| v.as_str().expect("string").to_string())
                .collect()
        };
        for group in strings("apiGroups") {
            for resource in strings("resources") {
                for verb in strings("verbs") {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

fn expected(rules: &[(&str, &str, &[&str])]) -> BTreeSet<Triple> {
    rules
        .iter()
        .flat_map(|(group, resource, verbs)| {
            verbs
                .iter()
                .map(|verb| (group.to_string(), resource.to_string(), verb.to_string()))
        })
        .collect()
}

/// Exactly what the operator calls (src/controller/): nothing more.
fn operator_rules() -> BTreeSet<Triple> {
    expected(&[
        (
            "crew.dev",
            "crewexecutions",
            &["get", "list", "watch", "delete", "patch"],
        ),
        (
            "crew.dev",
            "crewexecutions/status",
            &["get", "patch", "update"],
        ),
        ("crew.dev", "crewexecutions/finalizers", &["update"]),
        ("crew.dev", "crewqueues", &["get", "list", "watch"]),
        ("crew.dev", "crewqueues/status", &["get", "patch", "update"]),
        ("crew.dev", "crewsinks", &["get", "list", "watch"]),
        ("crew.dev", "crewsinks/status", &["get", "patch", "update"]),
        (
            "batch",
            "jobs",
            &["get", "list", "watch", "create", "delete", "patch"],
        ),
        ("", "configmaps", &["create", "patch"]),
        ("", "serviceaccounts", &["get"]),
        ("", "events", &["list", "watch"]),
        ("", "pods", &["get", "list", "watch"]),
        ("events.k8s.io", "events", &["create"]),
    ])
}

fn lease_rules() -> BTreeSet<Triple> {
    expected(&[(
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update"],
    )])
}

/// Every string anywhere in `value`.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// No wildcard, no secrets, no privilege-escalation verbs in any RBAC object.
fn assert_least_privilege(docs: &[Value]) {
    for doc in docs.iter().filter(|d| {
        matches!(
            d["kind"].as_str(),
            Some("ClusterRole" | "Role" | "ClusterRoleBinding" | "RoleBinding")
        )
    }) {
        let mut all = Vec::new();
        strings(&doc["rules"], &mut all);
        for s in &all {
            assert!(!s.contains('*'), "wildcard in {}: {doc}", doc["kind"]);
            for forbidden in ["secrets", "escalate", "bind", "impersonate"] {
                assert_ne!(s, forbidden, "{forbidden} granted: {doc}");
            }
        }
        let mut text = Vec::new();
        strings(doc, &mut text);
        assert!(
            !text.iter().any(|s| s == "*" || s == "secrets"),
            "wildcard or secrets in {doc}"
        );
    }
}

fn deployment_container(docs: &[Value]) -> &Value {
    let deployment = one(docs, "Deployment");
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn args(docs: &[Value]) -> Vec<String> {
    deployment_container(docs)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

/// Whether `flag value` appears in `args`.
fn has_flag(args: &[String], flag: &str, value: &str) -> bool {
    args.windows(2).any(|w| w[0] == flag && w[1] == value)
}

/// The restricted Pod Security Standard, as far as the Deployment sets it.
fn assert_restricted(docs: &[Value]) {
    let pod = &one(docs, "Deployment")["spec"]["template"]["spec"];
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true, "{psc}");
    assert_eq!(psc["runAsUser"], 65532, "{psc}");
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault", "{psc}");
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(pod[host].is_null() || pod[host] == false, "{host} set");
    }
    assert!(pod["volumes"].is_null(), "no volumes expected");
    let sc = &deployment_container(docs)["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "{sc}");
    assert_eq!(sc["runAsUser"], 65532, "{sc}");
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{sc}");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{sc}");
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{sc}");
    assert!(sc["capabilities"]["add"].is_null(), "{sc}");
    assert!(sc["privileged"].is_null() || sc["privileged"] == false);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{sc}");
}

/// The container's port, probes and POD_NAME.
fn assert_container_basics(docs: &[Value]) {
    let container = deployment_container(docs);
    assert_eq!(
        container["ports"],
        json!([
            {"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"},
            {"name": "http-progress", "containerPort": 8081, "protocol": "TCP"}
        ])
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(
        container["livenessProbe"]["httpGet"]["port"],
        "http-metrics"
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(
        container["readinessProbe"]["httpGet"]["port"],
        "http-metrics"
    );
    let env = container["env"].as_array().expect("env");
    let pod_name = env
        .iter()
        .find(|e| e["name"] == "POD_NAME")
        .expect("POD_NAME");
    assert_eq!(
        pod_name["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    let services = of_kind(docs, "Service");
    let service = services
        .iter()
        .find(|s| {
            s["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-metrics"))
        })
        .expect("the metrics Service");
    let progress = services
        .iter()
        .find(|s| {
            s["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-progress"))
        })
        .expect("the progress Service");
    assert_eq!(progress["spec"]["ports"][0]["port"], 8081);
    assert_eq!(progress["spec"]["ports"][0]["targetPort"], "http-progress");
    assert_eq!(service["spec"]["ports"][0]["name"], "http-metrics");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(
        service["spec"]["selector"],
        one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    );
}

/// The rendered arguments are accepted by the real binary (`--help` after them: clap validates them first).
fn assert_binary_accepts(args: &[String]) {
    assert_accepted_by(&support::operator_bin(), args);
}

/// `bin` parses `args` (it prints its help after them instead of running).
fn assert_accepted_by(bin: &Path, args: &[String]) {
    let output = Command::new(bin)
        .args(args)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    assert!(
        output.status.success(),
        "{} rejects the chart's args {args:?}: {}",
        bin.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn helm_lint_passes_also_strict() {
    let chart = chart().to_string_lossy().into_owned();
    for extra in [
        &[][..],
        &["--strict"][..],
        &[
            "--strict",
            "--set",
            "replicaCount=2",
            "--set",
            "watchNamespaces={team-a}",
            "--set",
            "maxRunning=5",
            "--set",
            "metrics.serviceMonitor.enabled=true",
        ][..],
    ] {
        let mut args = vec!["lint", chart.as_str()];
        args.extend(extra);
        let (ok, stdout, stderr) = helm(&args);
        assert!(ok, "helm {args:?} failed:\n{stdout}{stderr}");
        assert!(
            stdout.contains("0 chart(s) failed"),
            "helm {args:?}:\n{stdout}"
        );
    }
}

#[test]
fn default_values_render_a_restricted_cluster_wide_operator() {
    let docs = render(&[]);
    assert_eq!(
        kinds(&docs),
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "Deployment",
            "NetworkPolicy",
            "Service",
            "Service",
            "ServiceAccount"
        ]
    );
    assert_restricted(&docs);
    assert_container_basics(&docs);
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    let sa = one(&docs, "ServiceAccount");
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    assert_eq!(sa["metadata"]["namespace"], "crew-system");
    let args = args(&docs);
    assert_eq!(
        args,
        [
            "run",
            "--log-format",
            "json",
            "--log-level",
            "info",
            "--metrics-addr",
            "0.0.0.0:8080",
            "--start-timeout-seconds",
            "600",
            "--progress-addr",
            "0.0.0.0:8081",
            "--progress-url",
            "http://crew-crew-operator-progress.crew-system.svc:8081/v1/progress",
            "--progress-interval-ms",
            "2000"
        ],
        "no --namespace, no --max-running, no worker-policy flags by default"
    );
    assert_binary_accepts(&args);
    assert_eq!(
        deployment_container(&docs)["image"],
        "crew-operator:0.1.0",
        "image tag defaults to appVersion"
    );
    let env = &deployment_container(&docs)["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "CREW_LEADER_ELECTION" && e["value"] == "false")
    );
    let token_review = |doc: &&Value| {
        doc["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-token-review"))
    };
    let binding = of_kind(&docs, "ClusterRoleBinding")
        .into_iter()
        .find(|b| !token_review(b))
        .expect("the operator's ClusterRoleBinding");
    let reviewer = of_kind(&docs, "ClusterRole")
        .into_iter()
        .find(token_review)
        .expect("the TokenReview ClusterRole");
    assert_eq!(
        reviewer["rules"],
        json!([{"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}])
    );
    let role = of_kind(&docs, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"] == binding["roleRef"]["name"])
        .expect("the operator's ClusterRole");
    assert_eq!(triples(&role["rules"]), operator_rules());
    // The others are the users' roles, aggregated into view / edit / admin and bound by no one here.
    for user_role in of_kind(&docs, "ClusterRole")
        .into_iter()
        .filter(|r| r["metadata"]["name"] != binding["roleRef"]["name"] && !token_review(r))
    {
        let labels = user_role["metadata"]["labels"].as_object().expect("labels");
        assert!(
            labels
                .keys()
                .any(|k| k.starts_with("rbac.authorization.k8s.io/aggregate-to-")),
            "{user_role}"
        );
    }
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "crew-system"}])
    );
    assert_least_privilege(&docs);
}

/// Sink credentials are off by default (no Secret access at all); turned on, the operator gets list and watch on
/// Secrets (its one watch asks only for those labelled crew.dev/sink-credentials=true) and nothing more.
#[test]
fn sink_credentials_add_only_a_secret_watch() {
    let docs = render(&["sinks.credentials=true"]);
    let binding = of_kind(&docs, "ClusterRoleBinding")
        .into_iter()
        .find(|b| {
            !b["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-token-review"))
        })
        .expect("the operator's ClusterRoleBinding");
    let role = of_kind(&docs, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"] == binding["roleRef"]["name"])
        .expect("the operator's ClusterRole");
    let mut granted = operator_rules();
    granted.extend(expected(&[("", "secrets", &["list", "watch"])]));
    assert_eq!(triples(&role["rules"]), granted);
    let args = args(&docs);
    assert!(has_flag(&args, "--sink-credentials", "true"), "{args:?}");
    assert_binary_accepts(&args);
}

#[test]
fn non_default_values_render_namespaced_rbac_leader_election_pdb_and_service_monitor() {
    let docs = render(&[
        "replicaCount=2",
        "watchNamespaces={team-a}",
        "maxRunning=5",
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.interval=15s",
        "logFormat=text",
        "logLevel=debug",
        "startTimeoutSeconds=120",
        "workerPolicy.serviceAccounts={runner}",
        "workerPolicy.allowPodAnnotations={sidecar.istio.io/*}",
    ]);
    assert_eq!(
        kinds(&docs),
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ]
    );
    assert_restricted(&docs);
    assert_container_basics(&docs);
    assert_eq!(one(&docs, "Deployment")["spec"]["replicas"], 2);
    let args = args(&docs);
    assert!(has_flag(&args, "--namespace", "team-a"), "{args:?}");
    assert!(has_flag(&args, "--max-running", "5"), "{args:?}");
    assert!(has_flag(&args, "--log-format", "text"), "{args:?}");
    assert!(has_flag(&args, "--log-level", "debug"), "{args:?}");
    assert!(
        has_flag(&args, "--start-timeout-seconds", "120"),
        "{args:?}"
    );
    assert!(
        has_flag(&args, "--worker-service-account", "runner"),
        "{args:?}"
    );
    assert!(
        has_flag(&args, "--allow-pod-annotation", "sidecar.istio.io/*"),
        "{args:?}"
    );
    assert_eq!(args[0], "run");
    assert_binary_accepts(&args);

    // The operator's Role lives in the watched namespace; the leases Role in the release namespace.
    let roles = of_kind(&docs, "Role");
    let operator = roles
        .iter()
        .find(|r| r["metadata"]["namespace"] == "team-a")
        .expect("Role in team-a");
    assert_eq!(triples(&operator["rules"]), operator_rules());
    let leases = roles
        .iter()
        .find(|r| r["metadata"]["namespace"] == "crew-system")
        .expect("leases Role in the release namespace");
    assert_eq!(triples(&leases["rules"]), lease_rules());
    for rule in leases["rules"].as_array().unwrap() {
        if rule["verbs"] != json!(["create"]) {
            assert_eq!(rule["resourceNames"], json!(["crew-operator"]), "{rule}");
        }
    }
    let all: BTreeSet<Triple> = roles.iter().flat_map(|r| triples(&r["rules"])).collect();
    assert_eq!(all, &operator_rules() | &lease_rules());
    for binding in of_kind(&docs, "RoleBinding") {
        assert_eq!(binding["subjects"][0]["namespace"], "crew-system");
        assert_eq!(binding["subjects"][0]["name"], "crew-crew-operator");
    }
    assert_least_privilege(&docs);

    let env = deployment_container(&docs)["env"]
        .as_array()
        .unwrap()
        .clone();
    let value = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
    };
    assert_eq!(value("CREW_LEADER_ELECTION"), Some(json!("true")));
    assert_eq!(value("CREW_LEASE_NAME"), Some(json!("crew-operator")));
    assert_eq!(value("CREW_LEASE_NAMESPACE"), Some(json!("crew-system")));

    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(
        pdb["apiVersion"], "policy/v1",
        "offline rendering assumes a current server"
    );
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        one(&docs, "Deployment")["spec"]["selector"]["matchLabels"]
    );
    let monitor = one(&docs, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        monitor["spec"]["endpoints"],
        json!([{"port": "http-metrics", "path": "/metrics", "interval": "15s"}])
    );
}

#[test]
fn switches_override_auto_and_replicas_alone_turn_on_pdb_and_leases() {
    let kinds_with = |sets: &[&str]| kinds(&render(sets));
    let two = kinds_with(&["replicaCount=2"]);
    assert!(two.contains(&"PodDisruptionBudget".to_string()), "{two:?}");
    assert!(two.contains(&"Role".to_string()), "{two:?}");
    let off = kinds_with(&[
        "replicaCount=2",
        "podDisruptionBudget.enabled=false",
        "leaderElection.enabled=false",
    ]);
    assert!(!off.contains(&"PodDisruptionBudget".to_string()), "{off:?}");
    assert!(!off.contains(&"Role".to_string()), "{off:?}");
    let on = kinds_with(&[
        "podDisruptionBudget.enabled=true",
        "leaderElection.enabled=true",
    ]);
    assert!(on.contains(&"PodDisruptionBudget".to_string()), "{on:?}");
    assert!(on.contains(&"Role".to_string()), "{on:?}");
    let existing = render(&[
        "serviceAccount.create=false",
        "serviceAccount.name=ops-crew",
    ]);
    assert!(of_kind(&existing, "ServiceAccount").is_empty());
    assert_eq!(
        one(&existing, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"],
        "ops-crew"
    );
    for binding in of_kind(&existing, "ClusterRoleBinding") {
        assert_eq!(binding["subjects"][0]["name"], "ops-crew", "{binding}");
    }
}

#[test]
fn values_schema_and_templates_reject_bad_values() {
    for (set, why) in [
        ("logFormat=xml", "logFormat"),
        ("replicaCount=0", "replicaCount"),
        ("maxRunning=0", "maxRunning"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("leaderElection.enabled=maybe", "enabled"),
        ("metrics.port=0", "port"),
        ("unknownKey=1", "unknownKey"),
    ] {
        let (ok, _, stderr) = template(&[set]);
        assert!(!ok, "--set {set} should be rejected");
        assert!(
            stderr.contains("schema") && stderr.contains(why),
            "--set {set}: unexpected error: {stderr}"
        );
    }
    let (ok, _, stderr) = template(&["watchNamespaces={team-a,team-b}"]);
    assert!(!ok, "two namespaces should fail the render");
    assert!(
        stderr.contains("watchNamespaces lists 2 namespaces (team-a, team-b)"),
        "{stderr}"
    );
    let (ok, _, stderr) = template(&["serviceAccount.create=false"]);
    assert!(
        !ok && stderr.contains("serviceAccount.name is required"),
        "{stderr}"
    );
}

#[test]
fn argo_cd_health_checks_pass_their_lua_tests() {
    let script = chart().join("health/test.lua");
    let output = match Command::new("lua5.4").arg(&script).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "lua5.4 is not installed (CI is set, so this fails): run `make tools` (tests/tools/install-lua.sh)"
            );
            eprintln!(
                "\n!!! SKIPPED argo_cd_health_checks_pass_their_lua_tests: lua5.4 is not installed.\n\
                 !!! Run `make tools` (tests/tools/install-lua.sh) to install it; with CI set this test fails.\n"
            );
            return;
        }
        Err(e) => panic!("run lua5.4: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "health-check tests failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    // Argo CD's interpreter speaks Lua 5.1: run the same tests there when it is installed.
    if let Ok(output) = Command::new("lua5.1").arg(&script).output() {
        assert!(
            output.status.success(),
            "health-check tests failed under Lua 5.1:\n{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

#[test]
fn pdb_is_policy_v1_and_the_server_accepts_it() {
    plane();
    let chart = chart().to_string_lossy().into_owned();
    let (ok, stdout, stderr) = helm_on_cluster(&[
        "template",
        "crew",
        &chart,
        "--namespace",
        "default",
        "--dry-run=server",
        "--set",
        "replicaCount=2",
    ]);
    assert!(ok, "helm template --dry-run=server: {stderr}");
    let docs = parse(&stdout);
    assert_eq!(one(&docs, "PodDisruptionBudget")["apiVersion"], "policy/v1");
}

// ---------------------------------------------------------------------------------------------------------------
// helm install, and the operator running with nothing but the chart's RBAC.

/// The API server URL: the test control plane's, or the current context's of an existing cluster's kubeconfig.
async fn server_url() -> String {
    let plane = plane();
    if !plane.server.is_empty() {
        return plane.server.clone();
    }
    let kubeconfig = Kubeconfig::read_from(&plane.kubeconfig).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    config.cluster_url.to_string().trim_end_matches('/').into()
}

/// A token Secret for ServiceAccount `sa`: requested explicitly (servers since 1.24 make none by themselves), then
/// filled in by the token controller.
async fn service_account_token(admin: &Client, ns: &str, sa: &str) -> Secret {
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
    let name = format!("{sa}-helm-test-token");
    let request = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": name, "annotations": {"kubernetes.io/service-account.name": sa}},
    });
    let request: Secret = serde_json::from_value(request).expect("token Secret");
    secrets
        .create(&PostParams::default(), &request)
        .await
        .expect("request a ServiceAccount token Secret");
    let filled = when_object("a token filled in", |secret: &Secret| {
        secret
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key("token"))
    });
    match try_wait_object(secrets, &name, LIMIT, filled).await {
        Ok(Some(secret)) => secret,
        Ok(None) => panic!("the token Secret of ServiceAccount {ns}/{sa} is gone"),
        Err(timed_out) => panic!(
            "the token controller did not fill the token Secret of ServiceAccount {ns}/{sa}\n{timed_out}"
        ),
    }
}

/// A client that authenticates as the ServiceAccount of `secret` (its bearer token, its CA).
async fn client_from_token(secret: &Secret, dir: &Path) -> Client {
    let data = secret.data.as_ref().expect("token Secret data");
    let token = String::from_utf8(data["token"].0.clone()).expect("token is UTF-8");
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, &data["ca.crt"].0).expect("write ca.crt");
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\n\
         users:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: sa\n  context: {{cluster: c, user: sa}}\n\
         current-context: sa\n",
        server_url().await,
        ca.display()
    );
    let kubeconfig = Kubeconfig::from_yaml(&kubeconfig).expect("ServiceAccount kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("ServiceAccount config");
    Client::try_from(config).expect("ServiceAccount client")
}

/// Every response with status 403 that an in-process kube client received ("METHOD URL"), seen through the
/// client's own `HTTP` tracing spans (kube-client records `http.status_code` on them).
static FORBIDDEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Held by each test that runs the operator with a chart's ServiceAccount and reads [`FORBIDDEN`]: the recorder is
/// the process's, so two such tests at once would see (or clear) each other's refusals.
static RBAC_PROOF: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Default)]
struct HttpSpan {
    method: String,
    url: String,
    status: Option<u64>,
}

impl Visit for HttpSpan {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "http.method" => self.method = format!("{value:?}"),
            "http.url" => self.url = format!("{value:?}"),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "http.status_code" {
            self.status = Some(value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value as u64);
    }
}

/// Tracing layer that collects the 403 responses into [`FORBIDDEN`].
struct ForbiddenRecorder;

impl<S> tracing_subscriber::Layer<S> for ForbiddenRecorder
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        if attrs.metadata().name() != "HTTP" {
            return;
        }
        let mut fields = HttpSpan::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        let Some(fields) = extensions.get_mut::<HttpSpan>() else {
            return;
        };
        values.record(fields);
        if fields.status.take() == Some(403) {
            let seen = format!("{} {}", fields.method, fields.url);
            FORBIDDEN
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(seen);
        }
    }
}

/// Installs the test binary's tracing subscriber (before `support::plane()` would install its own): log output as
/// in the other tests (RUST_LOG, default warn), plus the [`ForbiddenRecorder`] on kube-client's debug spans.
fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_test_writer()
                    .with_filter(filter),
            )
            .with(
                ForbiddenRecorder
                    .with_filter(Targets::new().with_target("kube_client", Level::DEBUG)),
            )
            .try_init();
    });
}

fn forbidden() -> Vec<String> {
    FORBIDDEN.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The fallback for what no watch can follow (an HTTP endpoint): asks `check` every 100 ms until it holds; after
/// [`LIMIT`] panics, naming the requests the API server refused meanwhile. Objects are waited for with
/// [`watched`].
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + LIMIT;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {LIMIT:?} waiting for {what}; requests refused with 403: {:#?}",
            forbidden()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The outcome of a watch-driven wait; on a timeout panics with what was waited for, what was last seen and the
/// requests the API server refused meanwhile.
fn watched<T>(outcome: Result<T, TimedOut>) -> T {
    outcome.unwrap_or_else(|timed_out| {
        panic!("{timed_out}\nrequests refused with 403: {:#?}", forbidden())
    })
}

/// `kubectl auth can-i` as the ServiceAccount.
fn can_i(sa: &str, ns: &str, args: &[&str]) -> bool {
    let mut all = vec!["auth", "can-i", "--as", sa, "-n", ns];
    all.extend(args);
    let (_, out) = support::kubectl(&all);
    out.trim_start().starts_with("yes")
}

/// The reasons of those of `events` about `name`.
fn events_reasons<'a>(events: impl Iterator<Item = &'a Event>, name: &str) -> BTreeSet<String> {
    events
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_grants_exactly_enough_rbac_for_the_operator() {
    let _alone = RBAC_PROOF.lock().await;
    let started = Instant::now();
    let plane = plane();
    let admin = plane.client().await.expect("admin client");
    let pid = std::process::id();
    let release = format!("crew-{pid}");
    let release_ns = format!("crew-system-{pid}");
    let chart = chart().to_string_lossy().into_owned();

    // --- install -------------------------------------------------------------------------------------------
    let (ok, stdout, stderr) = helm_on_cluster(&[
        "install",
        &release,
        &chart,
        "--namespace",
        &release_ns,
        "--create-namespace",
        "--set",
        "image.tag=test",
        "--set",
        "leaderElection.enabled=true",
        "--set",
        "admissionPolicy.enabled=true",
    ]);
    assert!(ok, "helm install failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("STATUS: deployed"), "{stdout}");
    assert!(
        stdout.contains("kubectl get cx") && stdout.contains("kubectl apply"),
        "NOTES: {stdout}"
    );
    // The first execution NOTES.txt tells the user to apply (run below, in the test namespace).
    let notes_example: String = stdout
        .lines()
        .skip_while(|l| !l.ends_with("<<'YAML'"))
        .skip(1)
        .take_while(|l| *l != "YAML")
        .map(|l| format!("{l}\n"))
        .collect();
    let mut notes_example: CrewExecution =
        serde_saphyr::from_str(&notes_example).expect("the NOTES example is a CrewExecution");
    // The test support applied crds/ before (so Helm skipped its identical crds/ copies): they are served.
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for name in ["crewexecutions.crew.dev", "crewqueues.crew.dev"] {
        crds.get(name).await.expect("CRD installed");
    }
    let fullname = format!("{release}-crew-operator");
    let (ok, out) = support::kubectl(&[
        "get",
        "clusterrole,clusterrolebinding",
        &fullname,
        "-o",
        "name",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = support::kubectl(&[
        "-n",
        &release_ns,
        "get",
        "serviceaccount,deployment,service",
        "-o",
        "name",
    ]);
    assert!(
        ok && out.contains("deployment.apps/") && out.contains("serviceaccount/"),
        "{out}"
    );

    // --- least privilege, as the API server sees it ----------------------------------------------------------
    let sa_user = format!("system:serviceaccount:{release_ns}:{fullname}");
    for (args, allowed) in [
        (&["create", "jobs.batch"][..], true),
        (&["delete", "crewexecutions.crew.dev"][..], true),
        (
            &["patch", "crewexecutions.crew.dev", "--subresource=status"][..],
            true,
        ),
        (
            &[
                "update",
                "crewexecutions.crew.dev",
                "--subresource=finalizers",
            ][..],
            true,
        ),
        (&["watch", "crewqueues.crew.dev"][..], true),
        (&["create", "events.events.k8s.io"][..], true),
        (&["get", "secrets"][..], false),
        (&["list", "secrets"][..], false),
        (&["create", "pods"][..], false),
        (&["get", "configmaps"][..], false),
        (&["get", "serviceaccounts"][..], true),
        (&["list", "serviceaccounts"][..], false),
        (&["list", "events"][..], true),
        (&["watch", "events"][..], true),
        (&["create", "events"][..], false),
        (&["update", "crewexecutions.crew.dev"][..], false),
        (&["create", "crewexecutions.crew.dev"][..], false),
        (&["update", "crewqueues.crew.dev"][..], false),
        (&["create", "leases.coordination.k8s.io"][..], false),
        (
            &["create", "rolebindings.rbac.authorization.k8s.io"][..],
            false,
        ),
        (&["*", "*"][..], false),
    ] {
        assert_eq!(
            can_i(&sa_user, "default", args),
            allowed,
            "can-i {args:?} as the chart's ServiceAccount"
        );
    }

    // --- namespace users, through the built-in roles the chart's roles aggregate into ------------------------
    let users_ns = format!("crew-users-{pid}");
    let (ok, out) = support::kubectl(&["create", "namespace", &users_ns]);
    assert!(ok, "{out}");
    for (role, user) in [("view", "viewer"), ("edit", "editor"), ("admin", "owner")] {
        let (ok, out) = support::kubectl(&[
            "-n",
            &users_ns,
            "create",
            "rolebinding",
            user,
            "--clusterrole",
            role,
            "--user",
            user,
        ]);
        assert!(ok, "{out}");
    }
    let expected_user_rights: [(&str, &[&str], bool); 8] = [
        ("viewer", &["list", "crewexecutions.crew.dev"], true),
        ("viewer", &["get", "crewqueues.crew.dev"], true),
        ("viewer", &["create", "crewexecutions.crew.dev"], false),
        ("editor", &["create", "crewexecutions.crew.dev"], true),
        ("editor", &["patch", "crewexecutions.crew.dev"], true),
        ("editor", &["create", "crewqueues.crew.dev"], false),
        ("owner", &["update", "crewqueues.crew.dev"], true),
        (
            "editor",
            &["patch", "crewexecutions.crew.dev", "--subresource=status"],
            false,
        ),
    ];
    // The aggregation controller (in kube-controller-manager) fills the built-in roles shortly after install.
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let wrong: Vec<_> = expected_user_rights
            .iter()
            .filter(|(user, args, allowed)| can_i(user, &users_ns, args) != *allowed)
            .collect();
        if wrong.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "built-in roles do not grant what they should: {wrong:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    // --- the admission policy refuses what the operator would, at apply ---------------------------------------
    let manifest = |name: &str, spec: &str| {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(
            file.path(),
            format!("apiVersion: crew.dev/v1alpha1\nkind: CrewExecution\nmetadata: {{name: {name}}}\nspec: {spec}\n"),
        )
        .expect("write manifest");
        file
    };
    let vault = manifest(
        "vault",
        "{image: busybox, podAnnotations: {vault.hashicorp.com/agent-inject: \"true\"}}",
    );
    let mesh = manifest(
        "mesh",
        "{image: busybox, steps: [{name: one, podTemplate: {labels: {sidecar.istio.io/inject: \"false\"}}}]}",
    );
    let plain = manifest("plain", "{image: busybox, podAnnotations: {team: a}}");
    let apply = |file: &tempfile::NamedTempFile| {
        support::kubectl(&[
            "-n",
            &users_ns,
            "apply",
            "--dry-run=server",
            "-f",
            &file.path().to_string_lossy(),
        ])
    };
    // The policy takes effect a moment after it is created.
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    let refused = loop {
        let (ok, out) = apply(&vault);
        if !ok || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(
        refused.contains("vault.hashicorp.com/agent-inject") && refused.contains("not allowed"),
        "{refused}"
    );
    let (ok, out) = apply(&mesh);
    assert!(!ok && out.contains("in spec.steps"), "{out}");
    let (ok, out) = apply(&plain);
    assert!(ok, "a plain execution passes the policy: {out}");

    // --- the operator with the ServiceAccount's token -------------------------------------------------------
    let secret = service_account_token(&admin, &release_ns, &fullname).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let sa_client = client_from_token(&secret, dir.path()).await;
    let secrets: Api<Secret> = Api::namespaced(sa_client.clone(), &release_ns);
    match secrets.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("the ServiceAccount must not list Secrets: {other:?}"),
    }
    // The refusal just seen is recorded: the recorder is a working witness of 403s.
    assert!(
        forbidden()
            .iter()
            .any(|f| f.starts_with("GET ")
                && f.contains(&format!("/namespaces/{release_ns}/secrets"))),
        "the 403 recorder did not see the refused Secret list: {:?}",
        forbidden()
    );
    FORBIDDEN.lock().unwrap_or_else(|e| e.into_inner()).clear();

    let ns = format!("helm-rbac-{pid}");
    create_namespace(&admin, &ns)
        .await
        .expect("namespace ready for pods");
    // Default values grant a ClusterRole: the operator watches all namespaces, like the Deployment would.
    let settings = Settings::for_namespace(None, &format!("helm-test-{pid}"));
    // Leader election on, as the chart's Deployment runs it with leaderElection.enabled: the Lease lives in the
    // release namespace, under the Role the chart adds for it.
    let operator = controller::Operator::new(sa_client.clone(), settings);
    let ctx = operator.context();
    let leader_config = LeaderConfig {
        lease_name: "crew-operator".into(),
        namespace: release_ns.clone(),
        identity: format!("helm-test-{pid}"),
        lease_duration: leader::DEFAULT_LEASE_DURATION,
        renew_deadline: leader::DEFAULT_RENEW_DEADLINE,
        retry_period: leader::DEFAULT_RETRY_PERIOD,
    };
    let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(leader::run_when_leading(
        operator,
        leader_config,
        async move {
            let _ = shutdown_rx.await;
        },
    ));
    // The endpoints the chart's probes and ServiceMonitor use, as `crew-operator run` serves them.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http_addr = listener.local_addr().expect("local address");
    let http = tokio::spawn(crew_operator::http::serve(listener, ctx.clone()));
    assert_eq!(http_get(http_addr, "/healthz").await.0, 200);
    eventually(
        "/readyz answers 200 (caches listed with the chart's RBAC)",
        || async { http_get(http_addr, "/readyz").await.0 == 200 },
    )
    .await;

    let queues: Api<CrewQueue> = Api::namespaced(admin.clone(), &ns);
    let queue: CrewQueue = serde_saphyr::from_str(
        "apiVersion: crew.dev/v1alpha1\nkind: CrewQueue\nmetadata: {name: crews}\nspec: {maxRunning: 1}\n",
    )
    .expect("queue YAML");
    queues
        .create(&PostParams::default(), &queue)
        .await
        .expect("create queue");
    // A CrewSink: its watch, its status, and the executions' finalizer under the chart's RBAC.
    let receiver = support::receiver::Receiver::start().await;
    let sink: crew_api::CrewSink = serde_json::from_value(json!({
        "apiVersion": "crew.dev/v1alpha1", "kind": "CrewSink",
        "metadata": {"name": "hook"}, "spec": {"url": receiver.url()},
    }))
    .expect("sink");
    Api::<crew_api::CrewSink>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &sink)
        .await
        .expect("create sink");
    let executions: Api<CrewExecution> = Api::namespaced(admin.clone(), &ns);
    let execution: CrewExecution = serde_saphyr::from_str(
        r#"
apiVersion: crew.dev/v1alpha1
kind: CrewExecution
metadata: {name: report}
spec:
  image: busybox
  queue: crews
  jobCleanup: OnStepCompletion
  inputs: {topic: rbac}
  steps:
  - {name: research}
  - {name: write, podAnnotations: {sim.crew.dev/message: done}}
"#,
    )
    .expect("execution YAML");
    executions
        .create(&PostParams::default(), &execution)
        .await
        .expect("create execution");
    notes_example.metadata.namespace = Some(ns.clone());
    executions
        .create(&PostParams::default(), &notes_example)
        .await
        .expect("create the NOTES example");
    let hang: CrewExecution = serde_saphyr::from_str(
        r#"
apiVersion: crew.dev/v1alpha1
kind: CrewExecution
metadata: {name: stuck}
spec:
  image: busybox
  podAnnotations: {sim.crew.dev/hang: "true"}
"#,
    )
    .expect("execution YAML");
    executions
        .create(&PostParams::default(), &hang)
        .await
        .expect("create execution");

    // Jobs, ConfigMap, status, queue admission: the two-step execution succeeds.
    let done =
        watched(try_wait_object(executions.clone(), "report", LIMIT, is_phase("Succeeded")).await)
            .expect("report exists");
    let steps = &done.status.as_ref().unwrap().steps;
    assert_eq!(steps.len(), 2);
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    config_maps
        .get(&crew_core::lifecycle::names::config_map_name(
            "report",
            &done.metadata.uid.clone().unwrap_or_default(),
        ))
        .await
        .expect("the operator created the crew ConfigMap");
    watched(try_wait_object(executions.clone(), "hello", LIMIT, is_phase("Succeeded")).await);
    // Events (events.k8s.io create).
    let started_and_succeeded = when_list(
        "Started and Succeeded Events about report",
        |all: &[Arc<Event>]| {
            let reasons = events_reasons(all.iter().map(Arc::as_ref), "report");
            reasons.contains("Started") && reasons.contains("Succeeded")
        },
    );
    let events: Api<Event> = Api::namespaced(admin.clone(), &ns);
    watched(try_wait_list(events, Default::default(), LIMIT, started_and_succeeded).await);
    // Queue watch and queue status writes.
    let counted = when_object("status succeeded=1, running=0", |q: &CrewQueue| {
        q.status
            .as_ref()
            .is_some_and(|s| s.succeeded == 1 && s.running == 0)
    });
    watched(try_wait_object(queues.clone(), "crews", LIMIT, counted).await);
    // Job deletion: cancel the hanging execution.
    let jobs: Api<Job> = Api::namespaced(admin.clone(), &ns);
    watched(try_wait_object(executions.clone(), "stuck", LIMIT, is_phase("Running")).await);
    // Its worker posts a result: the worker endpoint's TokenReview, the result ConfigMap and the Job annotation.
    post_a_result(&admin, &ns, ctx.clone(), "stuck").await;
    executions
        .patch(
            "stuck",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"cancel": true}})),
        )
        .await
        .expect("cancel");
    // stuck Cancelled, then its Job deleted (the run stays Cancelled; the Job does not come back).
    watched(try_wait_object(executions.clone(), "stuck", LIMIT, is_phase("Cancelled")).await);
    let job_deleted = when("deleted or being deleted", |job: Option<&Job>| {
        job.is_none_or(|j| j.metadata.deletion_timestamp.is_some())
    });
    watched(try_wait_object(jobs, "stuck-main-1", LIMIT, job_deleted).await);
    // Execution deletion: ttlSecondsAfterFinished.
    executions
        .patch(
            "report",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"ttlSecondsAfterFinished": 1}})),
        )
        .await
        .expect("set TTL");
    watched(try_wait_object(executions.clone(), "report", LIMIT, deleted()).await);
    // The watch may show the execution gone before the operator has counted its delete (it counts on the answer).
    eventually("the operator to count its execution delete", || async {
        ctx.metrics.writes(WriteKind::ExecutionDelete) > 0
    })
    .await;

    // The sink heard report's end (before its TTL deletion could go through) and wrote its status.
    receiver
        .wait_for(LIMIT, "report's completed event", |all| {
            all.iter().any(|r| {
                r.kind() == "dev.crew.execution.completed" && r.data()["execution"] == "report"
            })
        })
        .await;
    eventually("the operator to write the sink's status", || async {
        ctx.metrics.writes(WriteKind::SinkStatus) > 0
    })
    .await;

    let writes = &ctx.metrics;
    println!(
        "operator writes with the chart's RBAC: {}",
        WriteKind::ALL
            .iter()
            .map(|kind| format!("{}={}", kind.label(), writes.writes(*kind)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for kind in WriteKind::ALL {
        assert!(
            writes.writes(kind) > 0,
            "no {} write happened",
            kind.label()
        );
    }
    let (code, body) = http_get(http_addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("crew_reconciles_total"), "{body}");
    http.abort();
    let _ = shutdown.send(());
    let stopped = tokio::time::timeout(Duration::from_secs(20), operator).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "clean stop: {stopped:?}");
    let leases: Api<Lease> = Api::namespaced(admin.clone(), &release_ns);
    let lease = leases.get("crew-operator").await.expect("the Lease exists");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity),
        None,
        "released on shutdown"
    );

    // Not one request of the operator (nor of this test) was refused.
    assert_eq!(
        forbidden(),
        Vec::<String>::new(),
        "the API server refused requests during the run: a rule is missing from the chart"
    );

    // --- uninstall ---------------------------------------------------------------------------------------------
    let (ok, stdout, stderr) =
        helm_on_cluster(&["uninstall", &release, "--namespace", &release_ns]);
    assert!(ok, "helm uninstall: {stdout}{stderr}");
    let (_, out) = support::kubectl(&["get", "clusterrole", &fullname]);
    assert!(out.contains("NotFound"), "ClusterRole left behind: {out}");
    for name in ["crewexecutions.crew.dev", "crewqueues.crew.dev"] {
        crds.get(name)
            .await
            .expect("CRDs stay after uninstall (Helm never deletes crds/)");
    }
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    for namespace in [&ns, &release_ns] {
        let _ = namespaces.delete(namespace, &DeleteParams::default()).await;
    }
    println!("helm install + RBAC proof took {:?}", started.elapsed());
}

/// Serves the worker endpoint of `ctx`'s operator and posts a result as the worker of `execution`'s first attempt
/// (its pod's token, as the kubelet projects it).
async fn post_a_result(
    admin: &Client,
    ns: &str,
    ctx: std::sync::Arc<crew_operator::controller::context::Context>,
    execution: &str,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local address");
    let endpoint = crew_operator::progress::endpoint::Endpoint::new(ctx);
    let served = tokio::spawn(crew_operator::progress::endpoint::serve(listener, endpoint));
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin.clone(), ns);
    let selector = format!("crew.dev/execution={execution},crew.dev/attempt=1");
    let mut pod = None;
    eventually("the worker pod", || {
        let pods = pods.clone();
        let selector = selector.clone();
        async move {
            let listed = pods.list(&ListParams::default().labels(&selector)).await;
            listed.is_ok_and(|l| !l.items.is_empty())
        }
    })
    .await;
    if let Ok(listed) = pods.list(&ListParams::default().labels(&selector)).await {
        pod = listed.items.into_iter().next();
    }
    let pod = pod.expect("the worker pod");
    let token = support::pod_token(admin, &pod, "crew-operator").await;
    let body = r#"{"answer": 42}"#;
    let request = format!(
        "POST /v1/result HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut answered = (0, String::new());
    for _ in 0..50 {
        answered = support::http_exchange(addr, &request).await;
        if answered.0 != 503 {
            break;
        }
        // The worker retries while the attempt is not visible yet, as a real one does.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(answered.0, 201, "the result was not kept: {}", answered.1);
    served.abort();
}

/// The admission policy's deny list is the operator's: a policy that let through what the operator then fails (or
/// refused what it runs) would confuse more than help.
#[test]
fn the_admission_policy_denies_what_the_operator_denies() {
    let values: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(chart().join("values.yaml")).expect("values.yaml"),
    )
    .expect("values.yaml is YAML");
    let chart_keys: Vec<&str> = values["admissionPolicy"]["deniedPodKeys"]
        .as_array()
        .expect("deniedPodKeys")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        chart_keys,
        crew_core::lifecycle::worker_policy::DEFAULT_DENIED_POD_KEYS
    );
}

/// The admission policy refuses exactly the volume types the operator never gives workers: every type of the CRD's
/// volume schema (the pod API's) but the operator's allowed ones. A type added to one side and not the other, or a
/// new type of the pod API, fails here.
#[test]
fn the_admission_policy_refuses_the_volume_types_the_operator_refuses() {
    use crew_core::lifecycle::worker_volumes::ALLOWED_VOLUME_TYPES;
    let values: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(chart().join("values.yaml")).expect("values.yaml"),
    )
    .expect("values.yaml is YAML");
    let chart_types: BTreeSet<&str> = values["admissionPolicy"]["deniedVolumeTypes"]
        .as_array()
        .expect("deniedVolumeTypes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let crd = serde_json::to_value(<CrewExecution as kube::CustomResourceExt>::crd()).expect("CRD");
    let volume = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["podTemplate"]["properties"]["volumes"]["items"]["properties"];
    let api_types: BTreeSet<&str> = volume
        .as_object()
        .expect("the volume schema's properties")
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "name")
        .collect();
    for allowed in ALLOWED_VOLUME_TYPES {
        assert!(api_types.contains(allowed), "{allowed} is no volume type");
    }
    let refused: BTreeSet<&str> = api_types
        .iter()
        .copied()
        .filter(|t| !ALLOWED_VOLUME_TYPES.contains(t))
        .collect();
    assert_eq!(chart_types, refused);
    assert!(refused.contains("hostPath") && refused.contains("nfs"));
}

/// The chart's admission policy, applied to the test control plane until dropped.
struct AppliedPolicy(tempfile::NamedTempFile);

impl Drop for AppliedPolicy {
    fn drop(&mut self) {
        let _ = support::kubectl(&[
            "delete",
            "--ignore-not-found",
            "-f",
            &self.0.path().to_string_lossy(),
        ]);
    }
}

/// The chart's admission policy alone, rendered for release `release` with `--set-json` values `sets`, applied. It
/// is cluster-wide: each test applies its own under its own release name, removed when the test ends (also when it
/// fails).
fn admission_policy(release: &str, sets: &[&str]) -> AppliedPolicy {
    let chart = chart().to_string_lossy().into_owned();
    let mut args = vec![
        "template",
        release,
        chart.as_str(),
        "--namespace",
        "crew-system",
        "--show-only",
        "templates/admission-policy.yaml",
        "--set",
        "admissionPolicy.enabled=true",
    ];
    for set in sets {
        args.extend(["--set-json", set]);
    }
    let (ok, stdout, stderr) = helm(&args);
    assert!(ok, "helm template {args:?}: {stderr}");
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), stdout).expect("write the policy");
    let (ok, out) = support::kubectl(&["apply", "-f", &file.path().to_string_lossy()]);
    assert!(ok, "{out}");
    AppliedPolicy(file)
}

/// A CrewExecution manifest named `name` with `spec` (flow-style YAML), in a file for kubectl.
fn execution_manifest(name: &str, spec: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        file.path(),
        format!(
            "apiVersion: crew.dev/v1alpha1\nkind: CrewExecution\nmetadata: {{name: {name}}}\nspec: {spec}\n"
        ),
    )
    .expect("write manifest");
    file
}

/// `kubectl apply --dry-run=server` of `file` in `ns`: what admission says, with nothing stored.
fn dry_run(ns: &str, file: &tempfile::NamedTempFile) -> (bool, String) {
    support::kubectl(&[
        "-n",
        ns,
        "apply",
        "--dry-run=server",
        "-f",
        &file.path().to_string_lossy(),
    ])
}

/// Waits until the admission policy refuses `file` in `ns` (a new policy takes effect a moment after its create);
/// returns the refusal.
fn refused_once_in_effect(ns: &str, file: &tempfile::NamedTempFile) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out) = dry_run(ns, file);
        if !ok {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "the policy never refused it: {out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Review finding 4: the admission policy refuses, at apply, the volumes the operator would refuse without reading a
/// ServiceAccount: a type workers never get (in the execution's template or a step's) and a projected
/// ServiceAccount token without a named ServiceAccount. What the operator may allow passes.
#[test]
fn the_admission_policy_refuses_volumes_workers_never_get() {
    let _ = plane();
    let pid = std::process::id();
    let ns = format!("vap-volumes-{pid}");
    let (ok, out) = support::kubectl(&["create", "namespace", &ns]);
    assert!(ok, "{out}");
    let policy = admission_policy(&format!("volumes-{pid}"), &[]);

    let host = execution_manifest(
        "host",
        "{image: busybox, podTemplate: {volumes: [{name: sock, hostPath: {path: /var/run}}]}}",
    );
    let refused = refused_once_in_effect(&ns, &host);
    assert!(
        refused.contains("volumes not allowed for workers") && refused.contains("sock"),
        "{refused}"
    );
    let token =
        "{name: t, projected: {sources: [{serviceAccountToken: {path: token, audience: vault}}]}}";
    for (name, spec, expected) in [
        ("token", format!("{{image: busybox, podTemplate: {{volumes: [{token}]}}}}"), "t"),
        (
            "step-nfs",
            "{image: busybox, steps: [{name: a, podTemplate: {volumes: [{name: share, nfs: {server: s, path: /}}]}}]}".into(),
            "in spec.steps",
        ),
        (
            "step-token",
            format!("{{image: busybox, steps: [{{name: a, podTemplate: {{volumes: [{token}]}}}}]}}"),
            "in spec.steps",
        ),
    ] {
        let (ok, out) = dry_run(&ns, &execution_manifest(name, &spec));
        assert!(!ok && out.contains(expected), "{name}: {out}");
    }
    for (name, spec) in [
        (
            "named",
            format!("{{image: busybox, serviceAccountName: runner, podTemplate: {{volumes: [{token}]}}}}"),
        ),
        (
            "step-named",
            format!(
                "{{image: busybox, steps: [{{name: a, serviceAccountName: runner, podTemplate: {{volumes: [{token}]}}}}]}}"
            ),
        ),
        (
            "plain",
            "{image: busybox, podTemplate: {volumes: [{name: s, emptyDir: {}}, {name: d, persistentVolumeClaim: \
             {claimName: data}}, {name: c, csi: {driver: secrets-store.csi.k8s.io}}]}}"
                .into(),
        ),
    ] {
        let (ok, out) = dry_run(&ns, &execution_manifest(name, &spec));
        assert!(ok, "{name} passes the policy (the operator decides at launch): {out}");
    }
    drop(policy);
    let _ = support::kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

/// Review finding 8: the admission policy validated every update of the whole object, so an execution that already
/// carried a key the policy now denies (the policy turned on, or its allow list shrunk, while it ran) could not be
/// cancelled, suspended or labelled, and a foreground delete never completed (the garbage collector's finalizer
/// removal was refused). The policy checks creates, and updates that change what it checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_stored_under_older_rules_can_still_be_cancelled_and_deleted() {
    use kube::api::PropagationPolicy;
    let admin = plane().client().await.expect("admin client");
    let pid = std::process::id();
    let ns = format!("vap-updates-{pid}");
    create_namespace(&admin, &ns).await.expect("namespace");
    // Stored before the policy denies its key (a key no other test's policy denies: the policy is cluster-wide).
    let legacy = "{image: busybox, podAnnotations: {example.com/legacy: \"on\"}}";
    let (ok, out) = support::kubectl(&[
        "-n",
        &ns,
        "apply",
        "-f",
        &execution_manifest("old", legacy).path().to_string_lossy(),
    ]);
    assert!(ok, "{out}");
    let policy = admission_policy(
        &format!("updates-{pid}"),
        &[r#"workerPolicy.denyPodAnnotations=["example.com/legacy"]"#],
    );
    let refused = refused_once_in_effect(&ns, &execution_manifest("new", legacy));
    assert!(refused.contains("example.com/legacy"), "{refused}");

    let executions: Api<CrewExecution> = Api::namespaced(admin.clone(), &ns);
    let merge = |patch: Value| Patch::Merge(patch);
    for (what, patch) in [
        ("cancel", json!({"spec": {"cancel": true}})),
        ("suspend", json!({"spec": {"suspend": true}})),
        (
            "a GitOps label",
            json!({"metadata": {"labels": {"app.kubernetes.io/instance": "x"}}}),
        ),
    ] {
        executions
            .patch("old", &PatchParams::default(), &merge(patch))
            .await
            .unwrap_or_else(|e| panic!("{what} refused: {e}"));
    }
    // An update that changes what the policy checks is still checked (through kubectl: this binary's 403 recorder
    // is the install test's witness that the operator is never refused).
    let (ok, out) = support::kubectl(&[
        "-n",
        &ns,
        "patch",
        "crewexecution",
        "old",
        "--type",
        "merge",
        "-p",
        r#"{"spec": {"podAnnotations": {"team": "a"}}}"#,
    ]);
    assert!(!ok && out.contains("example.com/legacy"), "{out}");
    // A foreground delete completes: the garbage collector may remove its finalizer.
    let foreground = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..Default::default()
    };
    executions
        .delete("old", &foreground)
        .await
        .expect("foreground delete");
    eventually("the foreground-deleted execution is gone", || async {
        matches!(executions.get("old").await, Err(kube::Error::Api(s)) if s.code == 404)
    })
    .await;

    drop(policy);
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
}

// ---------------------------------------------------------------------------------------------------------------
// One writer during upgrades: the Deployment's update strategy follows leader election.

/// The Deployment's `spec.strategy`.
fn strategy(docs: &[Value]) -> Value {
    one(docs, "Deployment")["spec"]["strategy"].clone()
}

/// The value of the operator container's environment variable `name`.
fn env_value(docs: &[Value], name: &str) -> Option<Value> {
    deployment_container(docs)["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| e["value"].clone())
}

/// The strategy without leader election: the old pod is gone before the new one starts.
fn recreate() -> Value {
    json!({"type": "Recreate", "rollingUpdate": null})
}

/// The strategy with leader election: the new pod waits as a standby for the Lease the old one releases.
fn rolling_through_a_standby() -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
}

#[test]
fn without_leader_election_an_upgrade_stops_the_old_operator_first() {
    for sets in [
        &[][..],
        &["leaderElection.enabled=false"][..],
        &["replicaCount=2", "leaderElection.enabled=false"][..],
    ] {
        let docs = render(sets);
        assert_eq!(
            env_value(&docs, "CREW_LEADER_ELECTION"),
            Some(json!("false")),
            "{sets:?}"
        );
        assert_eq!(strategy(&docs), recreate(), "{sets:?}");
    }
}

#[test]
fn with_leader_election_an_upgrade_rolls_through_a_warm_standby() {
    for sets in [
        &["leaderElection.enabled=true"][..],
        &["replicaCount=2"][..],
        &["replicaCount=3", "leaderElection.enabled=auto"][..],
    ] {
        let docs = render(sets);
        assert_eq!(
            env_value(&docs, "CREW_LEADER_ELECTION"),
            Some(json!("true")),
            "{sets:?}"
        );
        assert_eq!(strategy(&docs), rolling_through_a_standby(), "{sets:?}");
    }
}

/// The live Deployment's `spec.strategy`.
fn live_strategy(namespace: &str, name: &str) -> Value {
    let (ok, out) = support::kubectl(&[
        "-n",
        namespace,
        "get",
        "deployment",
        name,
        "-o",
        "jsonpath={.spec.strategy}",
    ]);
    assert!(ok, "get deployment {namespace}/{name}: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("strategy {out:?}: {e}"))
}

/// A copy of the chart as it was before it set a strategy (the API server then defaults RollingUpdate 25%/25%).
fn chart_without_strategy(dir: &Path) -> PathBuf {
    let copy = dir.join("crew-operator");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(chart())
        .arg(&copy)
        .output()
        .expect("run cp");
    assert!(
        copied.status.success(),
        "copy the chart: {}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let template = copy.join("templates/deployment.yaml");
    let text = std::fs::read_to_string(&template).expect("read deployment.yaml");
    let start = text
        .find("  strategy:\n")
        .expect("the template sets a strategy");
    let end = text
        .find("  selector:\n")
        .expect("the template has a selector");
    assert!(start < end, "strategy comes before selector");
    let mut cut = text[..start].to_string();
    cut.push_str(&text[end..]);
    std::fs::write(&template, cut).expect("write deployment.yaml");
    copy
}

/// The strategy of a single replica without leader election for one upgrade after a release whose Deployment
/// carries the API server's rollingUpdate defaults: old pod first, and fields the chart owns from then on.
fn bridge_to_recreate() -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
}

#[test]
fn helm_upgrade_switches_the_update_strategy_both_ways() {
    plane();
    let pid = std::process::id();
    let dir = tempfile::tempdir().expect("temp dir");
    let old_chart = chart_without_strategy(dir.path())
        .to_string_lossy()
        .into_owned();
    let chart = chart().to_string_lossy().into_owned();
    // Releases installed by Helm 4 (server-side apply) and by Helm 3 or `--server-side=false` (three-way merge).
    for server_side in ["true", "false"] {
        let namespace = format!("crew-strategy-{server_side}-{pid}");
        let server_side_flag = format!("--server-side={server_side}");
        let helm_run = |verb: &str, release: &str, chart: &str, sets: &[&str]| {
            let mut args = vec![
                verb,
                release,
                chart,
                "--namespace",
                namespace.as_str(),
                server_side_flag.as_str(),
                "--set",
                "image.tag=test",
            ];
            if verb == "install" {
                args.push("--create-namespace");
            }
            for set in sets {
                args.extend(["--set", set]);
            }
            let (ok, stdout, stderr) = helm_on_cluster(&args);
            assert!(ok, "helm {args:?} failed:\n{stdout}\n{stderr}");
            live_strategy(&namespace, &format!("{release}-crew-operator"))
        };

        // A release of the chart from before it set a strategy: the API server defaulted RollingUpdate 25%/25%,
        // fields that no field manager owns.
        let release = format!("from-old-{server_side}-{pid}");
        let defaulted = helm_run("install", &release, &old_chart, &[]);
        assert_eq!(defaulted["type"], "RollingUpdate", "{defaulted}");
        assert_eq!(defaulted["rollingUpdate"]["maxSurge"], "25%", "{defaulted}");
        // Recreate cannot be applied over them (server-side apply keeps unowned fields): one upgrade stops the
        // old pod first within RollingUpdate, and the next switches to Recreate.
        let steps = [
            (&[][..], bridge_to_recreate()),
            (&[][..], json!({"type": "Recreate"})),
            (
                &["leaderElection.enabled=true"][..],
                rolling_through_a_standby(),
            ),
            (
                &["leaderElection.enabled=false"][..],
                json!({"type": "Recreate"}),
            ),
            (&["replicaCount=2"][..], rolling_through_a_standby()),
            (&[][..], json!({"type": "Recreate"})),
        ];
        for (sets, expected) in steps {
            assert_eq!(
                helm_run("upgrade", &release, &chart, sets),
                expected,
                "upgrade with {sets:?}, server-side={server_side}"
            );
        }

        // A fresh install of this chart: Recreate at once.
        let fresh = format!("fresh-{server_side}-{pid}");
        assert_eq!(
            helm_run("install", &fresh, &chart, &[]),
            json!({"type": "Recreate"}),
            "server-side={server_side}"
        );
        assert_eq!(
            helm_run("upgrade", &fresh, &chart, &["leaderElection.enabled=true"]),
            rolling_through_a_standby(),
            "server-side={server_side}"
        );

        for release in [&release, &fresh] {
            let (ok, stdout, stderr) =
                helm_on_cluster(&["uninstall", release, "--namespace", &namespace]);
            assert!(ok, "helm uninstall: {stdout}{stderr}");
        }
        let _ = support::kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The NetworkPolicy: the progress port admits worker pods only; the metrics port what the values say.

/// The peer every worker pod matches: labelled `crew.dev/execution`, in the namespaces `namespace_selector` picks.
fn worker_pods(namespace_selector: Value) -> Value {
    json!({
        "namespaceSelector": namespace_selector,
        "podSelector": {"matchExpressions": [{"key": "crew.dev/execution", "operator": "Exists"}]}
    })
}

/// The ingress rule of `policy` for TCP `port` (exactly one).
fn ingress_for_port(policy: &Value, port: u16) -> Value {
    let rules: Vec<&Value> = policy["spec"]["ingress"]
        .as_array()
        .expect("ingress rules")
        .iter()
        .filter(|rule| rule["ports"] == json!([{"port": port, "protocol": "TCP"}]))
        .collect();
    assert_eq!(rules.len(), 1, "one rule for port {port}: {policy}");
    rules[0].clone()
}

#[test]
fn the_network_policy_admits_the_progress_port_only_from_worker_pods() {
    // Default values: on, workers of every namespace (the operator watches them all), metrics open.
    let docs = render(&[]);
    let policy = one(&docs, "NetworkPolicy");
    assert_eq!(policy["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(policy["metadata"]["namespace"], "crew-system");
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        one(&docs, "Deployment")["spec"]["selector"]["matchLabels"],
        "it selects the operator's pods"
    );
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        policy["spec"]["ingress"].as_array().map(Vec::len),
        Some(2),
        "{policy}"
    );
    assert_eq!(
        ingress_for_port(policy, 8081)["from"],
        json!([worker_pods(json!({}))])
    );
    let metrics = ingress_for_port(policy, 8080);
    assert!(
        metrics.get("from").is_none(),
        "the metrics port admits anyone by default: {metrics}"
    );

    // One watched namespace: workers of that namespace only. Ports follow the values.
    let docs = render(&[
        "watchNamespaces={team-a}",
        "progress.port=9091",
        "metrics.port=9090",
    ]);
    let policy = one(&docs, "NetworkPolicy");
    assert_eq!(
        ingress_for_port(policy, 9091)["from"],
        json!([worker_pods(json!({"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a"]}
        ]}))])
    );
    assert!(ingress_for_port(policy, 9090).get("from").is_none());
}

#[test]
fn the_network_policy_can_be_widened_narrowed_or_turned_off() {
    let docs = render(&[
        "networkPolicy.progress.extraFrom[0].namespaceSelector.matchLabels.team=mesh",
        "networkPolicy.metrics.from[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring",
        "networkPolicy.metrics.from[0].podSelector.matchLabels.app=prometheus",
    ]);
    let policy = one(&docs, "NetworkPolicy");
    assert_eq!(
        ingress_for_port(policy, 8081)["from"],
        json!([
            worker_pods(json!({})),
            {"namespaceSelector": {"matchLabels": {"team": "mesh"}}}
        ])
    );
    assert_eq!(
        ingress_for_port(policy, 8080)["from"],
        json!([{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app": "prometheus"}}
        }])
    );

    let off = render(&["networkPolicy.enabled=false"]);
    assert!(of_kind(&off, "NetworkPolicy").is_empty());
    // Nothing else changes with it.
    let on = render(&[]);
    let others = |docs: &[Value]| -> Vec<Value> {
        docs.iter()
            .filter(|d| d["kind"] != "NetworkPolicy")
            .cloned()
            .collect()
    };
    assert_eq!(others(&off), others(&on));

    let (ok, _, stderr) = template(&["networkPolicy.metrics.from=open"]);
    assert!(
        !ok && stderr.contains("schema") && stderr.contains("from"),
        "{stderr}"
    );
}

/// `kubectl apply --dry-run=server` of the chart's NetworkPolicy rendered with `sets`: (accepted, kubectl's output).
fn server_dry_run_of_network_policy(sets: &[&str]) -> (bool, String) {
    let chart = chart().to_string_lossy().into_owned();
    let mut args = vec![
        "template",
        "crew",
        chart.as_str(),
        "--namespace",
        "default",
        "--show-only",
        "templates/networkpolicy.yaml",
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    let (ok, stdout, stderr) = helm(&args);
    assert!(ok, "helm {args:?}: {stderr}");
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), stdout).expect("write the NetworkPolicy");
    support::kubectl(&[
        "apply",
        "--dry-run=server",
        "-f",
        &file.path().to_string_lossy(),
    ])
}

#[test]
fn the_api_server_accepts_the_network_policy() {
    plane();
    for sets in [
        &[][..],
        &[
            "watchNamespaces={team-a}",
            "networkPolicy.progress.extraFrom[0].namespaceSelector.matchLabels.team=mesh",
            "networkPolicy.metrics.from[0].podSelector.matchLabels.app=prometheus",
        ][..],
    ] {
        let (ok, out) = server_dry_run_of_network_policy(sets);
        assert!(ok && out.contains("networkpolicy"), "{sets:?}: {out}");
    }
    // The dry run does validate: a peer the API server refuses is refused.
    let (ok, out) = server_dry_run_of_network_policy(&[
        "networkPolicy.progress.extraFrom[0].ipBlock.cidr=nonsense",
    ]);
    assert!(!ok && out.contains("cidr"), "{out}");
}

// ---------------------------------------------------------------------------------------------------------------
// The progress endpoint: the operator listens only with --progress-url, so the chart passes it exactly when it
// creates the progress Service.

/// The progress Service of a render, if any.
fn progress_service(docs: &[Value]) -> Option<&Value> {
    of_kind(docs, "Service").into_iter().find(|s| {
        s["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-progress"))
    })
}

/// The value of `flag` in `args`, if passed.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.windows(2)
        .find(|w| w[0] == flag)
        .map(|w| w[1].as_str())
}

#[test]
fn the_chart_passes_progress_url_whenever_it_creates_the_progress_service() {
    for sets in [
        &[][..],
        &["progress.port=9091"][..],
        &["watchNamespaces={team-a}", "replicaCount=2"][..],
        &["progress.url=http://progress.example:80/v1/progress"][..],
        &["progress.enabled=true", "networkPolicy.enabled=false"][..],
    ] {
        let docs = render(sets);
        let args = args(&docs);
        let service = progress_service(&docs).unwrap_or_else(|| panic!("{sets:?}: no Service"));
        let port = service["spec"]["ports"][0]["port"].as_u64().expect("port");
        let url = flag_value(&args, "--progress-url").unwrap_or_else(|| {
            panic!("{sets:?}: the Service exists but no --progress-url: {args:?}")
        });
        if sets.iter().any(|s| s.starts_with("progress.url=")) {
            assert_eq!(url, "http://progress.example:80/v1/progress");
        } else {
            assert_eq!(
                url,
                format!(
                    "http://{}.crew-system.svc:{port}/v1/progress",
                    service["metadata"]["name"].as_str().expect("name")
                ),
                "{sets:?}: the default URL is the Service's"
            );
        }
        assert_eq!(
            flag_value(&args, "--progress-addr"),
            Some(format!("0.0.0.0:{port}").as_str()),
            "{sets:?}"
        );
        let container_ports = &deployment_container(&docs)["ports"];
        assert!(
            container_ports
                .as_array()
                .expect("ports")
                .iter()
                .any(|p| p["name"] == "http-progress" && p["containerPort"] == port),
            "{sets:?}: {container_ports}"
        );
        assert_binary_accepts(&args);
    }

    // Off: no Service, no flag, no port, no TokenReview grant, no NetworkPolicy rule for it.
    let docs = render(&["progress.enabled=false"]);
    let args = args(&docs);
    assert!(progress_service(&docs).is_none());
    for flag in [
        "--progress-url",
        "--progress-addr",
        "--progress-interval-ms",
    ] {
        assert!(flag_value(&args, flag).is_none(), "{flag} in {args:?}");
    }
    assert_eq!(
        deployment_container(&docs)["ports"],
        json!([{"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert!(
        docs.iter().all(|d| !d["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-token-review"))),
        "the TokenReview grant is only for the endpoint"
    );
    let policy = one(&docs, "NetworkPolicy");
    assert_eq!(
        policy["spec"]["ingress"],
        json!([{"ports": [{"port": 8080, "protocol": "TCP"}]}])
    );
    assert_binary_accepts(&args);
}

/// `archive.enabled`: the flags (the URL from the environment, the password and CA from mounted Secrets, never on
/// the command line), the read API's port and Service, the NetworkPolicy rule, the reviews the read API makes
/// (TokenReview even with progress off, SubjectAccessReview) and the ConfigMap read of posted results. Default
/// values render none of it.
#[test]
fn the_archive_renders_its_flags_secrets_service_and_reviews() {
    let docs = render(&[
        "archive.enabled=true",
        "archive.urlSecret.name=archive-db",
        "archive.passwordSecret.name=archive-db",
        "archive.caSecret.name=archive-ca",
        "progress.enabled=false",
    ]);
    let flags = args(&docs);
    assert!(
        has_flag(&flags, "--archive-addr", "0.0.0.0:8082"),
        "{flags:?}"
    );
    assert!(
        has_flag(
            &flags,
            "--archive-password-file",
            "/etc/crew-operator/archive/password"
        ),
        "{flags:?}"
    );
    assert!(
        has_flag(
            &flags,
            "--archive-ca-file",
            "/etc/crew-operator/archive-ca/ca.crt"
        ),
        "{flags:?}"
    );
    assert!(
        !flags.iter().any(|a| a.contains("postgres://")),
        "no URL on the command line: {flags:?}"
    );
    assert_binary_accepts(&flags);
    let container = deployment_container(&docs);
    let url = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "CREW_ARCHIVE_URL")
        .expect("CREW_ARCHIVE_URL");
    assert_eq!(
        url["valueFrom"]["secretKeyRef"],
        json!({"name": "archive-db", "key": "url"})
    );
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        mounts,
        [
            "/etc/crew-operator/archive",
            "/etc/crew-operator/archive-ca"
        ]
    );
    let services: Vec<&Value> = of_kind(&docs, "Service")
        .into_iter()
        .filter(|s| s["metadata"]["name"] == "crew-crew-operator-archive")
        .collect();
    assert_eq!(services.len(), 1);
    assert_eq!(services[0]["spec"]["ports"][0]["port"], 8082);
    let policy = one(&docs, "NetworkPolicy");
    assert!(
        policy["spec"]["ingress"]
            .as_array()
            .expect("ingress")
            .iter()
            .any(|rule| rule["ports"][0]["port"] == 8082),
        "{policy}"
    );
    let rules_of = |suffix: &str| {
        let role = of_kind(&docs, "ClusterRole")
            .into_iter()
            .find(|r| r["metadata"]["name"] == format!("crew-crew-operator{suffix}"))
            .unwrap_or_else(|| panic!("ClusterRole crew-crew-operator{suffix}"));
        triples(&role["rules"])
    };
    let mut operator = operator_rules();
    operator.extend(expected(&[("", "configmaps", &["get"])]));
    assert_eq!(rules_of(""), operator);
    assert_eq!(
        rules_of("-token-review"),
        expected(&[("authentication.k8s.io", "tokenreviews", &["create"])])
    );
    assert_eq!(
        rules_of("-access-review"),
        expected(&[("authorization.k8s.io", "subjectaccessreviews", &["create"])])
    );
    assert_least_privilege(&docs);

    let plain = render(&[]);
    assert!(!args(&plain).iter().any(|a| a.starts_with("--archive")));
    assert!(!of_kind(&plain, "ClusterRole").iter().any(|r| {
        r["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-access-review"))
    }));
    let (ok, _, stderr) = template(&["archive.enabled=true"]);
    assert!(
        !ok && stderr.contains("archive.url or archive.urlSecret.name"),
        "{stderr}"
    );
}

/// `helm install` with the archive on, then the operator run with the chart's ServiceAccount: it archives a run
/// with its posted result (reading the result's ConfigMap) and its read API answers a caller (TokenReview and
/// SubjectAccessReview as the ServiceAccount), and the API server refuses none of its requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_with_the_archive_grants_what_archiving_needs() {
    let _alone = RBAC_PROOF.lock().await;
    init_tracing();
    let plane = plane();
    let admin = plane.client().await.expect("admin client");
    let database = crew_testkit::postgres::Postgres::start(&crew_testkit::scratch_dir(
        "crew-helm-archive",
        None,
    ))
    .expect("PostgreSQL starts");
    let (url, _) = database.url_and_password();
    let pid = std::process::id();
    let release = format!("archive-{pid}");
    let release_ns = format!("archive-system-{pid}");
    let chart = chart().to_string_lossy().into_owned();
    let (ok, stdout, stderr) = helm_on_cluster(&[
        "install",
        &release,
        &chart,
        "--namespace",
        &release_ns,
        "--create-namespace",
        "--set",
        "image.tag=test",
        "--set",
        "archive.enabled=true",
        "--set",
        &format!("archive.url={url}"),
        "--set",
        "archive.passwordSecret.name=archive-db",
    ]);
    assert!(ok, "helm install failed:\n{stdout}\n{stderr}");
    let fullname = format!("{release}-crew-operator");
    let sa_user = format!("system:serviceaccount:{release_ns}:{fullname}");
    for (args, allowed) in [
        (
            &["create", "subjectaccessreviews.authorization.k8s.io"][..],
            true,
        ),
        (&["create", "tokenreviews.authentication.k8s.io"][..], true),
        (&["get", "configmaps"][..], true),
        (&["list", "configmaps"][..], false),
        (&["get", "secrets"][..], false),
    ] {
        assert_eq!(
            can_i(&sa_user, "default", args),
            allowed,
            "can-i {args:?} as the chart's ServiceAccount"
        );
    }
    let secret = service_account_token(&admin, &release_ns, &fullname).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let sa_client = client_from_token(&secret, dir.path()).await;
    FORBIDDEN.lock().unwrap_or_else(|e| e.into_inner()).clear();

    let ns = format!("helm-archive-{pid}");
    create_namespace(&admin, &ns)
        .await
        .expect("namespace ready for pods");
    let mut settings = Settings::for_namespace(Some(&ns), &format!("helm-archive-{pid}"));
    settings.archive = Some(database.archive_connection(crew_testkit::postgres::DATABASE));
    let operator = support::start_operator(&sa_client, settings.clone());
    let executions: Api<CrewExecution> = Api::namespaced(admin.clone(), &ns);
    let cx: CrewExecution = serde_json::from_value(json!({
        "apiVersion": "crew.dev/v1alpha1", "kind": "CrewExecution", "metadata": {"name": "kept"},
        "spec": {"image": "busybox", "podAnnotations": {"sim.crew.dev/hang": "true"}}
    }))
    .expect("execution");
    executions
        .create(&PostParams::default(), &cx)
        .await
        .expect("create");
    post_a_result(&admin, &ns, operator.ctx.clone(), "kept").await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin.clone(), &ns);
    for pod in pods
        .list(&ListParams::default().labels("crew.dev/execution=kept"))
        .await
        .expect("pods")
    {
        pods.patch(
            &pod.metadata.name.unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"sim.crew.dev/hang": "false", "sim.crew.dev/duration": "0"}}})),
        )
        .await
        .expect("let the worker finish");
    }
    let archived = when_object("Archived=True", |cx: &CrewExecution| {
        cx.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Archived" && c.status == "True")
        })
    });
    watched(try_wait_object(executions.clone(), "kept", LIMIT, archived).await);
    let stored = database
        .psql("crew", "SELECT count(*) FROM step_results")
        .expect("read the archive");
    assert_eq!(stored, "1", "the posted result is archived with its run");

    let read_pool =
        crew_operator::archive::connect::pool_of(settings.archive.as_ref().expect("archive"), 2)
            .expect("pool");
    let api = crew_operator::archive::serve::ArchiveApi::new(read_pool, sa_client.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let served = tokio::spawn(crew_operator::archive::serve::serve(listener, api));
    let request = format!(
        "GET /v1/namespaces/{ns}/executions HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
        plane.token
    );
    let (code, body) = support::http_exchange(addr, &request).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"kept\""), "{body}");
    served.abort();
    operator.stop().await;
    assert_eq!(
        forbidden(),
        Vec::<String>::new(),
        "the API server refused requests of the archive: a rule is missing from the chart"
    );
    // The release and the namespaces stay (the plane goes with this test binary): Events the stopped operator still
    // had queued would be refused in a namespace being deleted, or without the release's RBAC, and counted as
    // refusals by the other RBAC test.
}

/// The alerts and the Grafana dashboard, switched on by values: every query parses with the Prometheus project's
/// own PromQL parser (@prometheus-io/lezer-promql, from npm with the dashboard's packages) and names only metrics
/// the operator serves; the dashboard's ConfigMap carries the label Grafana's sidecar looks for. Off by default.
#[test]
fn monitoring_values_render_alerts_and_a_grafana_dashboard_whose_queries_parse() {
    let defaults = render(&[]);
    assert!(of_kind(&defaults, "PrometheusRule").is_empty());
    assert!(
        !defaults
            .iter()
            .any(|d| d["metadata"]["name"] == "crew-crew-operator-grafana-dashboard")
    );
    let docs = render(&[
        "metrics.serviceMonitor.enabled=true",
        "metrics.prometheusRule.enabled=true",
        "metrics.prometheusRule.queueBacklog=7",
        "metrics.grafanaDashboard.enabled=true",
    ]);
    let rule = one(&docs, "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    let rules = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .expect("rules");
    let alerts: BTreeSet<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    assert_eq!(
        alerts,
        BTreeSet::from([
            "CrewOperatorNoLeader",
            "CrewOperatorReconcileErrors",
            "CrewQueueBacklog",
            "CrewExecutionFailureRate",
            "CrewNotificationsDropped",
            "CrewArchiveFailing",
            "CrewArchiveBacklog",
        ])
    );
    let mut queries: Vec<(String, String)> = Vec::new();
    for r in rules {
        let name = r["alert"].as_str().unwrap_or_default().to_string();
        let severity = r["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["warning", "critical"].contains(&severity),
            "{name}: severity {severity}"
        );
        assert!(r["annotations"]["summary"].is_string(), "{name}: a summary");
        assert!(
            r["annotations"]["description"].is_string(),
            "{name}: a description"
        );
        let expr = r["expr"].as_str().expect("expr").to_string();
        assert!(
            expr.contains(r#"job="crew-crew-operator-metrics", namespace="crew-system""#),
            "{name} selects the scraped operator: {expr}"
        );
        queries.push((name, expr));
    }
    let backlog = rules
        .iter()
        .find(|r| r["alert"] == "CrewQueueBacklog")
        .unwrap();
    assert!(
        backlog["expr"].as_str().unwrap().ends_with("> 7"),
        "thresholds come from values"
    );

    let map = docs
        .iter()
        .find(|d| {
            d["kind"] == "ConfigMap"
                && d["metadata"]["name"] == "crew-crew-operator-grafana-dashboard"
        })
        .expect("the dashboard's ConfigMap");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value = serde_json::from_str(
        map["data"]["crew-operator.json"]
            .as_str()
            .expect("dashboard JSON"),
    )
    .expect("JSON");
    assert_eq!(dashboard["uid"], "crew-operator");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut charts = 0;
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        charts += 1;
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{} queries something", panel["title"]);
        for target in targets {
            // Grafana's own variables, as Grafana substitutes them.
            let expr = target["expr"]
                .as_str()
                .expect("expr")
                .replace("$__rate_interval", "5m");
            queries.push((format!("panel {}", panel["title"]), expr));
        }
    }
    assert!(charts >= 15, "{charts} panels");

    // Each query parses with Prometheus's parser.
    let front_end = repo().join("crates/cli/dashboard");
    assert!(
        front_end
            .join("node_modules/@prometheus-io/lezer-promql")
            .is_dir(),
        "the PromQL parser is missing: run `make dashboard`"
    );
    let input: Vec<Value> = queries
        .iter()
        .map(|(name, expr)| json!({"name": name, "expr": expr}))
        .collect();
    let mut child = Command::new("node")
        .arg("tests/promql.mjs")
        .current_dir(&front_end)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run node");
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        Value::Array(input).to_string().as_bytes(),
    )
    .unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().expect("node ends");
    assert!(output.status.success());
    let failures: Value = serde_json::from_slice(&output.stdout).expect("the parser's answer");
    assert_eq!(failures, json!([]), "queries that do not parse");

    // Each metric named is one the operator serves (a histogram's series by their suffixes).
    // (A labelled family is served once it has a series: give each one.)
    let metrics = crew_operator::metrics::Metrics::default();
    metrics.reconciled(0.1, Some("api_error"));
    metrics.transition("Running", "Failed");
    metrics.write(WriteKind::Status);
    metrics.notification("ns", "sink", "phase", "dropped");
    metrics.step_finished("failed", 1.0);
    metrics.execution_finished("Failed", 1.0);
    metrics.set_executions("Running", 1);
    metrics.set_queue("ns", "q", 1, 1);
    metrics.undecodable("CrewExecution");
    metrics.archive_write("error");
    let served: BTreeSet<String> = metrics
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(served.contains("crew_leader"), "{served:?}");
    for (name, expr) in &queries {
        for metric in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("crew_"))
        {
            let base = ["_bucket", "_sum", "_count", "_total"]
                .iter()
                .find_map(|suffix| metric.strip_suffix(suffix))
                .unwrap_or(metric);
            assert!(
                served.contains(metric) || served.contains(base),
                "{name} queries {metric}, which the operator does not serve ({served:?})"
            );
        }
    }
}

/// `dashboard.enabled`: `kubectl crew dashboard --in-cluster` from the same image, whose own ServiceAccount may only
/// create TokenReviews (every read is made with its user's token), restricted like the operator, selected by no
/// selector of the operator's, and reading the operator's archive when there is one. The binary accepts the
/// arguments, and the API server the objects (server-side dry run). Off by default.
#[test]
fn the_dashboard_for_many_users_may_only_review_tokens() {
    let name = "crew-crew-operator-dashboard";
    let defaults = render(&[]);
    assert!(!defaults.iter().any(|d| d["metadata"]["name"] == name));
    let docs = render(&[
        "dashboard.enabled=true",
        "archive.enabled=true",
        "archive.url=postgres://crew@db/crew",
    ]);
    let named = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name}"))
    };
    let role = named("ClusterRole");
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}]),
        "TokenReviews, nothing else"
    );
    let binding = named("ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["name"], name);
    let deployment = named("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], name);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["command"], json!(["/kubectl-crew"]));
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{sc}");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{sc}");
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{sc}");
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(args[..2], ["dashboard", "--in-cluster"]);
    assert!(
        !args.contains(&"--allow-actions".to_string()),
        "read-only by default"
    );
    assert!(
        has_flag(
            &args,
            "--archive-server",
            "http://crew-crew-operator-archive.crew-system.svc:8082"
        ),
        "{args:?}"
    );
    assert_accepted_by(
        &support::workspace_bin("kubectl-crew", "KUBECTL_CREW_BIN"),
        &args,
    );
    // No selector of the operator's picks the dashboard's pods.
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let operator = docs
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "crew-crew-operator")
        .expect("the operator's Deployment");
    let selector = operator["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    assert!(
        selector.iter().any(|(k, v)| labels[k] != *v),
        "the operator's selector {selector:?} must not match the dashboard's pods {labels}"
    );
    let service = named("Service");
    assert_eq!(
        service["spec"]["selector"]["app.kubernetes.io/name"],
        "crew-operator-dashboard"
    );

    // The API server takes the objects as rendered.
    let ns = format!("dashboard-chart-{}", std::process::id());
    let (ok, out) = support::kubectl(&["create", "namespace", &ns]);
    assert!(ok, "{out}");
    let (ok, stdout, stderr) = helm(&[
        "template",
        "crew",
        &chart().to_string_lossy(),
        "--namespace",
        &ns,
        "--set",
        "dashboard.enabled=true",
        "--show-only",
        "templates/dashboard.yaml",
    ]);
    assert!(ok, "{stderr}");
    let file = std::env::temp_dir().join(format!("{ns}.yaml"));
    std::fs::write(&file, stdout).unwrap();
    let (ok, out) = support::kubectl(&["apply", "--dry-run=server", "-f", &file.to_string_lossy()]);
    assert!(ok, "the API server refuses the dashboard's objects: {out}");
}
