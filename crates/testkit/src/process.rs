//! Child processes that die with their parent (PR_SET_PDEATHSIG) and are stopped on drop.

use super::DevClusterError;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Makes the child of `command` receive SIGKILL when the thread that starts it exits.
pub fn die_with_parent(command: &mut Command) {
    signal_at_parent_death(command, libc::SIGKILL);
}

/// Makes the child of `command` receive `signal` when the thread that starts it exits.
pub fn signal_at_parent_death(command: &mut Command, signal: libc::c_int) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A supervised child process.
pub struct Supervised {
    child: Child,
}

impl Supervised {
    /// Starts `program` with `args`, output to `log`. The child receives SIGKILL when the thread that started it
    /// exits, so start long-lived children from a thread that lives as long as they should.
    pub fn spawn(program: &Path, log: &Path, args: &[&str]) -> Result<Self, DevClusterError> {
        Self::spawn_as(program, log, args, None, libc::SIGKILL)
    }

    /// [`Supervised::spawn`], as user and group `ids` when given (a root caller starting PostgreSQL as `postgres`),
    /// sent `death_signal` when the starting thread exits (PostgreSQL shuts down cleanly on SIGINT).
    pub fn spawn_as(
        program: &Path,
        log: &Path,
        args: &[&str],
        ids: Option<(u32, u32)>,
        death_signal: libc::c_int,
    ) -> Result<Self, DevClusterError> {
        // Appended to, so that a restarted process keeps its predecessor's log.
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| DevClusterError::Io(format!("create {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| DevClusterError::Io("clone log handle".into(), e))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if let Some((uid, gid)) = ids {
            command.uid(uid).gid(gid);
        }
        signal_at_parent_death(&mut command, death_signal);
        let child = command
            .spawn()
            .map_err(|e| DevClusterError::Io(format!("start {}", program.display()), e))?;
        Ok(Supervised { child })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, at once; reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL after 5 s; reaps the process.
    pub fn stop(&mut self) {
        self.stop_with(libc::SIGTERM);
    }

    /// `signal`, then SIGKILL after 5 s; reaps the process.
    pub fn stop_with(&mut self, signal: libc::c_int) {
        if !self.alive() {
            return;
        }
        // SAFETY: sending a signal to our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `start` on a thread that then lives as long as the program, so that the process it starts (which dies with
/// the thread that started it) is not killed when the caller's thread ends, e.g. at the end of a test.
pub fn spawn_for_life(
    start: impl FnOnce() -> Result<Supervised, DevClusterError> + Send + 'static,
) -> Result<Supervised, DevClusterError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(start());
        loop {
            std::thread::park();
        }
    });
    rx.recv().map_err(|_| {
        DevClusterError::Io(
            "start a process".into(),
            std::io::Error::other("the starting thread died"),
        )
    })?
}
