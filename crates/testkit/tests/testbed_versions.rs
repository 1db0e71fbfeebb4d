//! The Kubernetes versions of the test bed are named in three places that must agree: the Go modules that build the
//! control planes, the Makefile's lanes and this crate's default. (No cluster needed.)

use crew_testkit::KUBERNETES_VERSION;
use std::path::Path;

/// A file of the repository, by its path from the repository root.
fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

/// The `k8s.io/kubernetes` version a control-plane module requires.
fn module_version(minor: &str) -> String {
    read(&format!(
        "crates/testkit/control-plane/go/k8s-{minor}/go.mod"
    ))
    .lines()
    .find_map(|l| l.strip_prefix("require k8s.io/kubernetes "))
    .map(|v| v.trim().to_string())
    .unwrap_or_else(|| panic!("no `require k8s.io/kubernetes` in go/k8s-{minor}/go.mod"))
}

/// `NAME ?= value` from the Makefile.
fn make_variable(name: &str) -> String {
    read("Makefile")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ?= ")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no `{name} ?=` in the Makefile"))
}

#[test]
fn the_current_lane_builds_runs_and_defaults_to_one_version() {
    let built = module_version("v1.37");
    assert_eq!(make_variable("K8S_VERSION"), built);
    assert_eq!(KUBERNETES_VERSION, built);
}

#[test]
fn the_oldest_lane_builds_and_runs_one_version() {
    let built = module_version("v1.33");
    assert_eq!(make_variable("K8S_OLDEST_VERSION"), built);
    assert!(
        read("README.md").contains(&format!("**{built}**")),
        "the README names the oldest tested version {built}"
    );
}

#[test]
fn every_staging_module_is_replaced_by_the_release_of_its_minor() {
    for (minor, staging) in [("v1.37", "v0.37."), ("v1.33", "v0.33.")] {
        let go_mod = read(&format!(
            "crates/testkit/control-plane/go/k8s-{minor}/go.mod"
        ));
        let patch = module_version(minor)
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_string();
        let replaces: Vec<&str> = go_mod.lines().filter(|l| l.contains(" => ")).collect();
        assert!(replaces.len() >= 30, "{minor}: {} replaces", replaces.len());
        for line in replaces {
            assert!(
                line.trim().starts_with("k8s.io/") && line.ends_with(&format!("{staging}{patch}")),
                "{minor}: {line}"
            );
        }
    }
}
