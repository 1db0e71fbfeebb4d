//! The processes a run starts besides the control plane (the operator), and plain-HTTP GETs
//! to the operator's `/readyz` and `/metrics`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// A child process, killed when dropped. Started with a parent-death signal, so it never outlives the
/// benchmark (start it from the main thread, which lives as long as the benchmark).
pub struct ChildProcess {
    name: String,
    child: Child,
}

impl ChildProcess {
    /// Starts `program args` with `KUBECONFIG=kubeconfig`, `RUST_LOG=log_filter` and output to `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        kubeconfig: &Path,
        log: &Path,
        log_filter: &str,
    ) -> Result<Self, String> {
        let out =
            std::fs::File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("clone log handle: {e}"))?;
        let mut command = std::process::Command::new(program);
        command
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        crew_testkit::process::die_with_parent(&mut command);
        let mut command = Command::from(command);
        command.kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|e| format!("start {}: {e}", program.display()))?;
        Ok(ChildProcess {
            name: name.to_string(),
            child,
        })
    }

    /// Process id (0 once reaped).
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            // SAFETY: signalling our own child.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            eprintln!("{} did not stop within {grace:?}; killing it", self.name);
            let _ = self.child.kill().await;
        }
    }
}

/// The release binary `name` next to this benchmark's executable.
pub fn sibling_binary(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let path = exe
        .parent()
        .map(|dir| dir.join(name))
        .ok_or_else(|| format!("no directory around {}", exe.display()))?;
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: run `cargo build --release --bin crew-operator` (or `make bench`)",
            path.display()
        ))
    }
}

/// A free local TCP port.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("free port: {e}"))
}

/// `GET path` over plain HTTP/1.1; returns the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let request = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .map_err(|_| format!("GET {path}: timed out"))?
        .map_err(|e| format!("GET {path}: {e}"))?;
    parse_response(&String::from_utf8_lossy(&response))
        .ok_or_else(|| format!("GET {path}: bad response"))
}

/// Status code and body of an HTTP/1.1 response (`Content-Length` or `chunked` bodies).
fn parse_response(text: &str) -> Option<(u16, String)> {
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Some((code, body))
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// Polls `GET path` until it answers 200, the process dies, or `limit` passes.
pub async fn wait_http_ok(
    process: &mut ChildProcess,
    addr: SocketAddr,
    path: &str,
    limit: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        if !process.alive() {
            return Err(format!(
                "{} exited before {path} answered 200",
                process.name
            ));
        }
        match http_get(addr, path).await {
            Ok((200, _)) => return Ok(()),
            Ok((code, body)) => last = format!("{code} {}", body.trim()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "{} {path} not 200 within {limit:?}: {last}",
        process.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        assert_eq!(
            parse_response("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
            Some((200, "ok".to_string()))
        );
        assert_eq!(
            parse_response(
                "HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n4\r\nnot \r\n5\r\nready\r\n0\r\n\r\n"
            ),
            Some((503, "not ready".to_string()))
        );
        assert_eq!(parse_response("garbage"), None);
    }
}
