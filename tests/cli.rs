//! The operator binary's command line, as the container image and the Helm chart call it. (No cluster needed.)

use std::process::Command;

#[test]
fn operator_binary_help_lists_run() {
    let output = Command::new(env!("CARGO_BIN_EXE_crew-operator"))
        .arg("--help")
        .output()
        .expect("run crew-operator --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.lines().any(|l| l.trim_start().starts_with("run ")),
        "{help}"
    );
    // What the Dockerfile's CMD runs, with the chart's flags.
    let output = Command::new(env!("CARGO_BIN_EXE_crew-operator"))
        .args(["run", "--help"])
        .output()
        .expect("run crew-operator run --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--namespace",
        "--max-running",
        "--log-format",
        "--metrics-addr",
        "--log-level",
        "--leader-election",
        "--lease-name",
        "--lease-namespace",
    ] {
        assert!(help.contains(flag), "run --help lacks {flag}:\n{help}");
    }
    // The environment the chart's Deployment passes is what the binary reads.
    for env in [
        "CREW_LEADER_ELECTION",
        "CREW_LEASE_NAME",
        "CREW_LEASE_NAMESPACE",
        "POD_NAME",
        "POD_NAMESPACE",
    ] {
        assert!(help.contains(env), "run --help does not mention {env}");
    }
}
