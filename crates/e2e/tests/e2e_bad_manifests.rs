//! A corpus of bad manifests, applied with `kubectl apply --server-side` as a user or a GitOps tool would, against
//! the real control plane with the operator binary running: out-of-range numbers, huge lists and objects, unicode, overlong names, wrong types, and values
//! the schema accepts but the Job API refuses. Each one is either refused by the API server with a message naming
//! the problem, or accepted and given a phase and a reason within seconds. The operator never panics, never stops,
//! and a valid neighbour created before and after the corpus still succeeds.
//!
//! In its own test binary: the operator runs as a process, so a panic shows as a dead process or a line in its log.

mod support;

use crew_api::CrewExecution;
use kube::ResourceExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use support::TestNs;
use support::wait::{try_wait_list, when_list};

/// What must become of a manifest.
#[derive(Clone, Debug)]
enum Expect {
    /// `kubectl apply` fails and its output contains this text.
    Refused(&'static str),
    /// Accepted, and within [`SETTLE`] it shows this phase with this reason (`status.reason`).
    Ends(&'static str, &'static str),
}

use Expect::{Ends, Refused};

/// How long an accepted manifest may take to reach its phase (the 64-step case takes about a second a step).
const SETTLE: Duration = Duration::from_secs(120);

/// A CrewExecution manifest named `name` whose spec is the flow-style YAML `spec`.
fn manifest(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: crew.dev/v1alpha1\nkind: CrewExecution\nmetadata: {{name: {name}}}\nspec: {spec}\n"
    )
}

/// `n` copies of `item`, comma-separated (for flow-style lists).
fn repeated(item: &str, n: usize) -> String {
    vec![item; n].join(", ")
}

/// A name made at run time, for the table of `&'static str` names (a test: leaking is fine).
fn leaked(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

/// The corpus: (case, manifest, expectation). Names are `bad-NN` unless the case is about the name.
fn corpus() -> Vec<(&'static str, String, Expect)> {
    let long = |n: usize| "x".repeat(n);
    let big_payload = |bytes: usize| format!("{{blob: {}}}", "a".repeat(bytes));
    let cases: Vec<(&'static str, &'static str, String, Expect)> = vec![
        // Numbers out of range or of the wrong type.
        ("priority above int32", "bad-01", "{image: busybox, priority: 2147483648}".into(), Refused("spec.priority")),
        ("priority below the bound", "bad-02", "{image: busybox, priority: -1000000001}".into(), Refused("spec.priority")),
        ("priority as a word", "bad-03", "{image: busybox, priority: high}".into(), Refused("spec.priority")),
        ("retry limit above 100", "bad-04", "{image: busybox, retry: {limit: 101}}".into(), Refused("spec.retry.limit")),
        ("negative retry limit", "bad-05", "{image: busybox, retry: {limit: -1}}".into(), Refused("spec.retry.limit")),
        ("retry backoff above int32", "bad-06", "{image: busybox, retry: {backoffSeconds: 4294967296}}".into(), Refused("spec.retry.backoffSeconds")),
        ("timeout zero", "bad-07", "{image: busybox, timeoutSeconds: 0}".into(), Refused("spec.timeoutSeconds")),
        ("negative timeout", "bad-08", "{image: busybox, timeoutSeconds: -5}".into(), Refused("spec.timeoutSeconds")),
        ("timeout above int32", "bad-09", "{image: busybox, timeoutSeconds: 2147483648}".into(), Refused("spec.timeoutSeconds")),
        ("negative TTL", "bad-10", "{image: busybox, ttlSecondsAfterFinished: -1}".into(), Refused("spec.ttlSecondsAfterFinished")),
        ("history limit zero", "bad-11", "{image: busybox, historyLimit: 0}".into(), Refused("spec.historyLimit")),
        ("history limit above 100", "bad-12", "{image: busybox, historyLimit: 101}".into(), Refused("spec.historyLimit")),
        ("step timeout zero", "bad-13", "{image: busybox, steps: [{name: a, timeoutSeconds: 0}]}".into(), Refused("timeoutSeconds")),
        ("cancel as a word", "bad-14", "{image: busybox, cancel: maybe}".into(), Refused("spec.cancel")),
        ("suspend as a number", "bad-15", "{image: busybox, suspend: 2}".into(), Refused("spec.suspend")),
        // Lists and strings too long.
        ("65 steps", "bad-16", format!("{{image: busybox, steps: [{}]}}", (0..65).map(|i| format!("{{name: s{i}}}")).collect::<Vec<_>>().join(", ")), Refused("spec.steps")),
        ("257 command words", "bad-17", format!("{{image: busybox, command: [{}]}}", repeated("echo", 257)), Refused("spec.command")),
        ("257 env vars", "bad-18", format!("{{image: busybox, env: [{}]}}", repeated("{name: A, value: b}", 257)), Refused("spec.env")),
        ("image of 513 characters", "bad-19", format!("{{image: {}}}", long(513)), Refused("spec.image")),
        ("queue of 254 characters", "bad-20", format!("{{image: busybox, queue: {}}}", long(254)), Refused("spec.queue")),
        ("service account of 254 characters", "bad-21", format!("{{image: busybox, serviceAccountName: {}}}", long(254)), Refused("spec.serviceAccountName")),
        ("step image of 513 characters", "bad-22", format!("{{image: busybox, steps: [{{name: a, image: {}}}]}}", long(513)), Refused("image")),
        ("object over the API server's limit", "bad-23", format!("{{image: busybox, inputs: {}}}", big_payload(3 * 1024 * 1024)), Refused("too large")),
        // Step names.
        ("duplicate step names", "bad-24", "{image: busybox, steps: [{name: a}, {name: b}, {name: a}]}".into(), Refused("duplicate entries for key [name=\"a\"]")),
        ("upper-case step name", "bad-25", "{image: busybox, steps: [{name: Fetch}]}".into(), Refused("name")),
        ("unicode step name", "bad-26", "{image: busybox, steps: [{name: récap}]}".into(), Refused("name")),
        ("step name of 64 characters", "bad-27", format!("{{image: busybox, steps: [{{name: {}}}]}}", long(64)), Refused("name")),
        ("empty step name", "bad-28", "{image: busybox, steps: [{name: ''}]}".into(), Refused("name")),
        ("steps not a list", "bad-29", "{image: busybox, steps: research}".into(), Refused("spec.steps")),
        // Names and types.
        ("254-character name", leaked("l".repeat(254)), "{image: busybox}".into(), Refused("must be no more than 253 characters")),
        ("unknown field", "bad-30", "{image: busybox, imagePullSecret: x}".into(), Refused(".spec.imagePullSecret: field not declared in schema")),
        ("bad pull policy", "bad-31", "{image: busybox, imagePullPolicy: Sometimes}".into(), Refused("spec.imagePullPolicy")),
        ("service account name that is no DNS name", "bad-39", "{image: busybox, serviceAccountName: Bad_SA}".into(), Refused("spec.serviceAccountName")),
        ("annotation value not a string", "bad-32", "{image: busybox, podAnnotations: {team: {a: 1}}}".into(), Refused("podAnnotations")),
        ("crew as a string", "bad-33", "{image: busybox, crew: researchers}".into(), Refused("spec.crew")),
        // Accepted by the schema, refused later: each becomes a visible end.
        ("no image anywhere", "bad-34", "{steps: [{name: a}]}".into(), Ends("Failed", "InvalidSpec")),
        ("a status that could outgrow the object limit", "bad-46", format!("{{image: busybox, crew: {}, steps: [{}, {{name: last, args: ['{}']}}]}}", big_payload(880 * 1024), (0..39).map(|i| format!("{{name: s{i}}}")).collect::<Vec<_>>().join(", "), "a".repeat(450 * 1024)), Ends("Failed", "InvalidSpec")),
        ("crew and inputs over 900 KiB", "bad-35", format!("{{image: busybox, inputs: {}}}", big_payload(950 * 1024)), Ends("Failed", "InvalidSpec")),
        ("annotation key the Job API refuses", "bad-36", "{image: busybox, podAnnotations: {'bad key!': x}}".into(), Ends("Failed", "JobRejected")),
        ("resource quantity that is no quantity", "bad-37", "{image: busybox, resources: {limits: {cpu: lots}}}".into(), Ends("Failed", "JobRejected")),
        ("request above limit", "bad-38", "{image: busybox, resources: {requests: {cpu: '2'}, limits: {cpu: '1'}}}".into(), Ends("Failed", "JobRejected")),
        ("env var name with '='", "bad-40", "{image: busybox, env: [{name: 'A=B', value: x}]}".into(), Ends("Failed", "JobRejected")),
        ("a queue that does not exist", "bad-41", "{image: busybox, queue: nowhere}".into(), Ends("Pending", "QueueNotFound")),
        ("timeout of one second on a step that hangs", "bad-42", "{image: busybox, timeoutSeconds: 1, podAnnotations: {sim.crew.dev/hang: 'true'}}".into(), Ends("Failed", "TimedOut")),
        // Odd but valid: must simply work.
        ("unicode everywhere it is allowed", "bad-43", "{image: busybox, env: [{name: GREETING, value: 'grüße 👋 你好'}], podAnnotations: {note: 'é ✓ 🚀'}, inputs: {topic: 'Ελληνικά'}}".into(), Ends("Succeeded", "Succeeded")),
        ("empty lists and objects", "bad-44", "{image: busybox, command: [], args: [], env: [], crew: {}, inputs: {}}".into(), Ends("Succeeded", "Succeeded")),
        ("name past 63 characters with its Job names", leaked("n".repeat(60)), "{image: busybox}".into(), Ends("Succeeded", "Succeeded")),
        ("253-character name with a 63-character step", leaked("m".repeat(253)), format!("{{image: busybox, steps: [{{name: {}}}]}}", long(63)), Ends("Succeeded", "Succeeded")),
        ("64 steps", "bad-45", format!("{{image: busybox, podAnnotations: {{sim.crew.dev/duration: '0'}}, steps: [{}]}}", (0..64).map(|i| format!("{{name: s{i}}}")).collect::<Vec<_>>().join(", ")), Ends("Succeeded", "Succeeded")),
    ];
    cases
        .into_iter()
        .map(|(case, name, spec, expect)| (case, manifest(name, &spec), expect))
        .collect()
}

/// The name in a manifest made by [`manifest`].
fn name_of(manifest: &str) -> String {
    manifest
        .split("metadata: {name: ")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .unwrap_or_default()
        .to_string()
}

/// `kubectl apply --server-side` (client-side apply would copy the object into an annotation limited to 256 KiB,
/// which the 950 KiB case exceeds; GitOps tools apply server-side too).
async fn apply(t: &TestNs, yaml: &str) -> (bool, String) {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), yaml).expect("write manifest");
    let path = file.path().to_string_lossy().into_owned();
    t.kubectl(&["apply", "--server-side", "-f", &path]).await
}

/// Review (issue 12, fault suite): ≥ 40 bad manifests, each refused with a clear message or given a phase and a
/// reason within seconds; the operator never panics; a valid neighbour still succeeds.
#[tokio::test]
async fn every_bad_manifest_is_refused_or_ends_visibly_and_the_neighbours_still_run() {
    let t = TestNs::new("corpus", Duration::from_millis(300)).await;
    let log = std::env::temp_dir().join(format!("{}-operator.log", t.ns));
    let mut operator = support::operator_process(&t, &log);
    let neighbour = |name: &str| manifest(name, "{image: busybox, steps: [{name: a}, {name: b}]}");
    let (ok, out) = apply(&t, &neighbour("good-before")).await;
    assert!(ok, "{out}");

    let corpus = corpus();
    assert!(corpus.len() >= 40, "only {} manifests", corpus.len());
    let mut problems = Vec::new();
    let mut waiting = BTreeMap::new();
    for (case, yaml, expect) in &corpus {
        let (accepted, out) = apply(&t, yaml).await;
        match expect {
            Refused(text) if accepted => problems.push(format!(
                "{case}: accepted, expected a refusal with {text:?}"
            )),
            Refused(text) if !out.contains(text) => {
                problems.push(format!("{case}: refused without {text:?}: {}", out.trim()))
            }
            Refused(_) => eprintln!("refused  {case}: {}", first_line(&out)),
            Ends(..) if !accepted => problems.push(format!("{case}: refused: {}", out.trim())),
            Ends(phase, reason) => {
                waiting.insert(name_of(yaml), (*case, *phase, *reason));
            }
        }
    }
    let (ok, out) = apply(&t, &neighbour("good-after")).await;
    assert!(ok, "{out}");

    let mut seen = BTreeMap::new();
    let all_ended = when_list(
        "every accepted manifest at its phase and reason",
        |all: &[Arc<CrewExecution>]| {
            for cx in all {
                let name = cx.name_any();
                let Some((case, phase, reason)) = waiting.get(&name) else {
                    continue;
                };
                let status = cx.status.as_ref();
                let got = (
                    support::phase_of(cx),
                    status.and_then(|s| s.reason.clone()).unwrap_or_default(),
                );
                let message = status.and_then(|s| s.message.clone()).unwrap_or_default();
                if got.0 == *phase && got.1 == *reason {
                    seen.entry(name).or_insert_with(|| {
                        eprintln!(
                            "ends     {case}: {} {}: {}",
                            got.0,
                            got.1,
                            first_line(&message)
                        );
                        true
                    });
                }
            }
            seen.len() == waiting.len()
        },
    );
    // A manifest not seen at its end within SETTLE is a problem, named below with its status.
    let _ = try_wait_list(t.executions(), Default::default(), SETTLE, all_ended).await;
    for (name, (case, phase, reason)) in &waiting {
        if !seen.contains_key(name) {
            let got = t.executions().get(name).await.ok().and_then(|cx| cx.status);
            problems.push(format!(
                "{case}: not {phase}/{reason} within {SETTLE:?}: {:?} {:?} {:?}",
                got.as_ref().and_then(|s| s.phase),
                got.as_ref().and_then(|s| s.reason.clone()),
                got.as_ref().and_then(|s| s.message.clone())
            ));
        }
    }
    for name in ["good-before", "good-after"] {
        t.wait_phase(name, "Succeeded", SETTLE).await;
    }
    let exited = operator.try_wait().expect("operator status");
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        exited.is_none(),
        "the operator exited ({exited:?}); log: {}",
        log.display()
    );
    assert!(
        !log_text.contains("panicked"),
        "the operator panicked; log: {}",
        log.display()
    );
    assert!(
        problems.is_empty(),
        "{} of {} manifests: {problems:#?}",
        problems.len(),
        corpus.len()
    );
    operator.kill().await.expect("stop the operator");
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}
