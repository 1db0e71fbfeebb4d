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

#[test]
fn no_cluster_is_an_error_not_a_panic() {
    let dir = std::env::temp_dir().join(format!("kubectl-crew-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:9', insecure-skip-tls-verify: true}\n\
         users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u, namespace: team-a}\ncurrent-context: x\n",
    )
    .unwrap();
    let path = kubeconfig.to_string_lossy().to_string();
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
