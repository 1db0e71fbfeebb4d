//! Working directories of control planes under the system's temp directory. A test binary's control plane lives
//! until the process exits, so nothing removes its directory (etcd data, logs: ~150 MB); the next start of any
//! tool sweeps the directories of processes that no longer run, so repeated test runs do not fill the disk.

use std::path::{Path, PathBuf};

/// `<tmp>/<prefix>-<this pid>[-<label>]`, emptied, after removing every `<prefix>-<pid>…` directory whose process
/// is gone.
pub fn scratch_dir(prefix: &str, label: Option<&str>) -> PathBuf {
    let tmp = std::env::temp_dir();
    sweep(&tmp, prefix);
    let name = match label {
        Some(label) => format!("{prefix}-{}-{label}", std::process::id()),
        None => format!("{prefix}-{}", std::process::id()),
    };
    let dir = tmp.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn sweep(tmp: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some(pid) = owner_pid(&name.to_string_lossy(), prefix)
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The pid in `<prefix>-<pid>` or `<prefix>-<pid>-<label>`.
fn owner_pid(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    rest.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_reads_the_pid_after_the_prefix() {
        assert_eq!(owner_pid("crew-test-123", "crew-test"), Some(123));
        assert_eq!(
            owner_pid("crew-bench-9-operator-10x1", "crew-bench"),
            Some(9)
        );
        assert_eq!(owner_pid("crew-test-x", "crew-test"), None);
        assert_eq!(owner_pid("crew-testing-1", "crew-test"), None);
        assert_eq!(owner_pid("other-1", "crew-test"), None);
    }

    #[test]
    fn sweep_removes_dirs_of_dead_processes_only() {
        let tmp = std::env::temp_dir().join(format!("scratch-sweep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let dead = tmp.join("crew-x-4000000000"); // above any pid_max
        let live = tmp.join(format!("crew-x-{}", std::process::id()));
        std::fs::create_dir_all(dead.join("etcd")).unwrap();
        std::fs::create_dir_all(&live).unwrap();
        sweep(&tmp, "crew-x");
        assert!(!dead.exists());
        assert!(live.exists());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
