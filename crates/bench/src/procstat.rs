//! Memory and CPU of a process from `/proc` (Linux).

use serde::Serialize;

/// Memory and CPU time of one process at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ProcSample {
    /// Peak resident set size so far (`VmHWM`), MiB.
    pub peak_rss_mib: f64,
    /// Resident set size now (`VmRSS`), MiB.
    pub rss_mib: f64,
    /// User + system CPU time so far, seconds.
    pub cpu_seconds: f64,
}

/// Value in MiB of a `Key:   1234 kB` line of `/proc/<pid>/status`.
fn status_mib(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: f64 = line[key.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// utime + stime (clock ticks) from the text of `/proc/<pid>/stat`.
fn stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may contain spaces: count fields after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 3 (state) is fields[0], so utime (14) and stime (15) are fields[11] and fields[12].
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Samples process `pid` (`"self"` works too); `None` when it is gone.
pub fn sample(pid: &str) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(ProcSample {
        peak_rss_mib: status_mib(&status, "VmHWM").unwrap_or(0.0),
        rss_mib: status_mib(&status, "VmRSS").unwrap_or(0.0),
        cpu_seconds: stat_ticks(&stat)? as f64 / clock_ticks_per_second(),
    })
}

/// Sockets process `pid` holds open (its connections to the API server, plus its listeners).
pub fn open_sockets(pid: &str) -> Option<usize> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        fds.filter_map(Result::ok)
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count(),
    )
}

/// Busy CPU time of the whole machine (all CPUs, everything but idle and iowait) from the text of `/proc/stat`,
/// in clock ticks.
fn machine_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal (guest time is already counted in user).
    let busy = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4);
    Some(busy.map(|(_, v)| v).sum())
}

/// Busy CPU seconds of the whole machine so far (all processes, all CPUs).
pub fn machine_busy_seconds() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| machine_busy_ticks(&s))
        .map_or(0.0, |t| t as f64 / clock_ticks_per_second())
}

/// CPU seconds of `pid`, or 0 when it is gone.
pub fn cpu_seconds(pid: &str) -> f64 {
    sample(pid).map_or(0.0, |s| s.cpu_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        let status = "Name:\tcrew-operator\nVmPeak:\t  900000 kB\nVmHWM:\t   65536 kB\nVmRSS:\t   32768 kB\n";
        assert_eq!(status_mib(status, "VmHWM"), Some(64.0));
        assert_eq!(status_mib(status, "VmRSS"), Some(32.0));
        assert_eq!(status_mib(status, "VmSwap"), None);
        let stat =
            "1234 (tokio (rt) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 5 0 100 0 0";
        assert_eq!(stat_ticks(stat), Some(300));
        assert_eq!(stat_ticks("garbage"), None);
        let machine = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 50 2 25 500 10 0 1 1 0 0\n";
        assert_eq!(machine_busy_ticks(machine), Some(161));
    }

    #[test]
    fn samples_this_process() {
        let s = sample("self").unwrap();
        assert!(s.peak_rss_mib > 0.0 && s.rss_mib > 0.0 && s.cpu_seconds >= 0.0);
        assert!(sample("999999999").is_none());
    }
}
