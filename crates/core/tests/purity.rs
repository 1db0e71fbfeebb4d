//! The pure core reaches no Kubernetes client, no HTTP stack and no async runtime: not in its own code (it depends
//! on `kube-core`'s traits and types, not on `kube`, so `kube::Client` does not compile here) and not through any
//! dependency (the API types use `kube` with its derive macros only). A new dependency that pulls one in fails this
//! test.

use std::collections::BTreeSet;
use std::process::Command;

/// Crates that mean I/O: a client, an HTTP/TLS stack, an async runtime.
const IO_CRATES: &[&str] = &[
    "kube-client",
    "kube-runtime",
    "tokio",
    "mio",
    "hyper",
    "hyper-util",
    "tower",
    "reqwest",
    "rustls",
    "openssl",
];

/// The names of the crates `package` depends on at run time (no dev- or build-dependencies), itself included.
fn runtime_dependencies(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--locked",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn assert_no_io(package: &str, expected: &[&str]) {
    let crates = runtime_dependencies(package);
    for name in expected {
        assert!(
            crates.contains(*name),
            "{package} should depend on {name}: {crates:?}"
        );
    }
    let io: Vec<&&str> = IO_CRATES.iter().filter(|c| crates.contains(**c)).collect();
    assert!(io.is_empty(), "{package} reaches I/O crates {io:?}");
}

#[test]
fn the_core_reaches_no_client_and_no_runtime() {
    assert_no_io(
        "crew-core",
        &["crew-core", "crew-api", "kube-core", "k8s-openapi"],
    );
}

#[test]
fn the_api_types_reach_no_client_and_no_runtime() {
    assert_no_io(
        "crew-api",
        &["crew-api", "kube", "kube-derive", "k8s-openapi"],
    );
}
