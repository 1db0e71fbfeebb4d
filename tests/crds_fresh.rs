//! `crds/` and the chart's copy must hold exactly what the Rust types generate (`make crds` regenerates both).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[test]
fn crds_directory_matches_the_rust_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let generated = crew_api::crds::crd_files().expect("CRDs serialise");
    for (name, yaml) in &generated {
        let on_disk = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        assert!(
            on_disk == *yaml,
            "crds/{name} is stale: run `make crds` and commit the result"
        );
    }
    let expected: BTreeSet<_> = generated.iter().map(|(name, _)| name.clone()).collect();
    let present: BTreeSet<_> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    assert_eq!(
        present, expected,
        "crds/ holds files the types no longer generate"
    );
}

#[test]
fn crd_has_the_names_columns_and_subresource_users_rely_on() {
    let crd = <crew_api::CrewExecution as kube::CustomResourceExt>::crd();
    let names = &crd.spec.names;
    assert_eq!(
        names.short_names.as_deref(),
        Some(&["cx".to_string(), "crewexec".to_string()][..])
    );
    assert_eq!(names.categories.as_deref(), Some(&["crew".to_string()][..]));
    let version = &crd.spec.versions[0];
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some(),
        "status subresource"
    );
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.to_uppercase())
        .collect();
    assert_eq!(
        columns,
        ["PHASE", "PROGRESS", "STEP", "ATTEMPT", "DURATION", "AGE"]
    );
    let schema = serde_json::to_value(version.schema.as_ref().unwrap()).unwrap();
    let spec = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"];
    for field in [
        "image",
        "command",
        "args",
        "env",
        "resources",
        "serviceAccountName",
        "crew",
        "inputs",
        "steps",
        "priority",
        "queue",
        "retry",
        "timeoutSeconds",
        "suspend",
        "cancel",
        "ttlSecondsAfterFinished",
        "historyLimit",
    ] {
        assert!(spec[field].is_object(), "spec.{field} missing");
        assert!(
            spec[field]["description"]
                .as_str()
                .is_some_and(|d| d.len() > 10),
            "spec.{field} has no description"
        );
    }
    assert_eq!(spec["historyLimit"]["maximum"].as_f64(), Some(100.0));
    assert_eq!(spec["crew"]["x-kubernetes-preserve-unknown-fields"], true);
    let retry = &spec["retry"]["properties"];
    for field in ["limit", "backoffSeconds", "maxBackoffSeconds"] {
        assert!(
            retry[field]["description"].is_string(),
            "spec.retry.{field} has no description"
        );
    }
}

#[test]
fn chart_crds_are_exact_copies_of_the_repository_crds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".yaml"))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).expect("read CRD"),
                )
            })
            .collect()
    };
    let repository = files(&root.join("crds"));
    let in_chart = files(&root.join("charts/crew-operator/crds"));
    assert!(!repository.is_empty());
    assert_eq!(
        repository.keys().collect::<Vec<_>>(),
        in_chart.keys().collect::<Vec<_>>(),
        "charts/crew-operator/crds/ holds other files than crds/: run `make crds`"
    );
    for (name, bytes) in &repository {
        assert!(
            in_chart[name] == *bytes,
            "charts/crew-operator/crds/{name} differs from crds/{name}: run `make crds`"
        );
    }
}
