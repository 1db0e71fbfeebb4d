//! The built binary without a cluster: help, completions, and the errors a user sees when no cluster answers.
//! (Against the real control plane: `crates/e2e/tests/e2e_cli.rs`, which runs this same binary.)

use std::process::Command;

fn crew(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-crew"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run kubectl-crew");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_command() {
    let (code, out, _) = crew(&["--help"]);
    assert_eq!(code, 0);
    for command in [
        "list",
        "describe",
        "watch",
        "history",
        "stats",
        "cancel",
        "suspend",
        "resume",
        "rerun",
        "delete",
        "logs",
        "completion",
    ] {
        assert!(out.contains(command), "{command} missing from:\n{out}");
    }
}

/// A kubeconfig in a fresh directory `dir_name`, for a server nobody listens on (any request fails with "no
/// cluster reachable"); returns the directory and the file's path.
fn unreachable_kubeconfig(dir_name: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("{dir_name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:9', insecure-skip-tls-verify: true}\n\
         users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u, namespace: team-a}\ncurrent-context: x\n",
    )
    .unwrap();
    let path = kubeconfig.to_string_lossy().to_string();
    (dir, path)
}

#[test]
fn no_cluster_is_an_error_not_a_panic() {
    let (dir, path) = unreachable_kubeconfig("kubectl-crew-test");
    let (code, _, err) = crew(&["--kubeconfig", &path, "list"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: no cluster reachable at https://127.0.0.1:9/"),
        "{err}"
    );
    let (code, _, err) = crew(&["--kubeconfig", &path, "--context", "nope", "list"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error: no usable kubeconfig"), "{err}");
    let (code, _, err) = crew(&["--kubeconfig", &path, "-A", "describe", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("use -n instead of -A"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = crew(&["watch", "--timeout", "10x"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown unit"), "{err}");
}

/// An empty filter value (a variable that was not set) or a selection of everything without `--all` is refused
/// before any request: the server here is unreachable, so a request would have said so instead.
#[test]
fn empty_filters_and_everything_without_all_are_refused_before_any_request() {
    let (dir, path) = unreachable_kubeconfig("kubectl-crew-empty-filters");
    let refused = |args: &[&str], code: i32, says: &str| {
        let mut all = vec!["--kubeconfig", path.as_str()];
        all.extend_from_slice(args);
        let (got, out, err) = crew(&all);
        assert_eq!(got, code, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            !err.contains("no cluster reachable"),
            "{args:?} sent a request: {err}"
        );
        assert!(out.is_empty(), "{args:?}: {out}");
    };
    // Empty values: a malformed option, as `--timeout 10x` is (exit 2).
    let empty = "the value is empty";
    refused(&["delete", "--phase", ""], 2, empty);
    refused(&["delete", "-A", "--phase", ""], 2, empty);
    refused(&["delete", "--phase", "Failed,"], 2, empty);
    refused(&["delete", "-l", ""], 2, "the selector is empty");
    refused(&["delete", "-l", " , "], 2, "the selector is empty");
    refused(&["cancel", "--queue", ""], 2, empty);
    refused(&["suspend", "--queue", " "], 2, empty);
    refused(&["resume", "-l", ""], 2, "the selector is empty");
    refused(&["rerun", "--phase", ""], 2, empty);
    refused(&["rerun", "x", "--name", ""], 2, empty);
    refused(&["delete", ""], 2, empty);
    refused(&["-n", "", "delete", "x"], 2, empty);
    refused(&["list", "-l", ""], 2, "the selector is empty");
    refused(&["stats", "--queue", ""], 2, empty);
    refused(&["watch", "-l", ""], 2, "the selector is empty");
    refused(&["logs", "x", "--step", ""], 2, empty);
    // A selection of everything needs --all (exit 1, as every refused selection).
    refused(&["delete"], 1, "say which executions");
    refused(&["cancel", "-A"], 1, "say which executions");
    refused(
        &[
            "delete",
            "--phase",
            "Pending,Queued,Running,Paused,Succeeded,Failed,Cancelled",
        ],
        1,
        "add --all",
    );
    refused(&["delete", "x", "--all"], 1, "not both");
    // With --all, the same command goes on to the server (and finds none here).
    let (code, _, err) = crew(&["--kubeconfig", &path, "delete", "--all", "--dry-run"]);
    assert_eq!(code, 1);
    assert!(err.contains("no cluster reachable"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
