//! The operator's archive read API (`--archive-server`), asked through kube's client with the kubeconfig's own
//! credentials (token, token file or exec plugin, refreshed as kube does): the API checks them with a TokenReview
//! and every read with a SubjectAccessReview, so `--archived` shows exactly what `kubectl` would let you read.

use crate::args::Target;
use crate::error::CliError;
use http_body_util::BodyExt;
use kube::Client;
use serde::de::DeserializeOwned;

/// A client of the archive read API.
pub struct Archive {
    client: Client,
    server: String,
}

/// What a successful read returned: its content type and body.
pub struct Answer {
    pub content_type: String,
    pub sha256: Option<String>,
    pub body: Vec<u8>,
}

impl Archive {
    /// Connects to `--archive-server` with the kubeconfig's credentials.
    pub async fn connect(target: &Target) -> Result<Archive, CliError> {
        let server = target.archive_server.clone().ok_or_else(|| {
            CliError::Usage(
                "--archived needs the operator's archive read API: --archive-server URL (or CREW_ARCHIVE_SERVER), \
                 e.g. `kubectl -n crew-system port-forward svc/crew-operator-archive 8082` and \
                 --archive-server http://127.0.0.1:8082"
                    .into(),
            )
        })?;
        Archive::with_config(crate::cluster::config_of(target).await?, &server)
    }

    /// The archive read API at `server`, asked with `config`'s credentials.
    pub fn with_config(mut config: kube::Config, server: &str) -> Result<Archive, CliError> {
        config.cluster_url = server
            .parse()
            .map_err(|e| CliError::Usage(format!("--archive-server {server}: {e}")))?;
        // The kubeconfig's CA signs the API server's certificate, not the archive's.
        config.root_cert = None;
        config.tls_server_name = None;
        let client = Client::try_from(config)
            .map_err(|e| CliError::Config(format!("cannot build a client for {server}: {e}")))?;
        Ok(Archive {
            client,
            server: server.to_string(),
        })
    }

    /// `GET path`, refusals turned into messages a user can act on.
    pub async fn get(&self, path: &str) -> Result<Answer, CliError> {
        let request = http::Request::get(path)
            .body(kube::client::Body::empty())
            .map_err(|e| CliError::Usage(format!("bad request {path}: {e}")))?;
        let response = self
            .client
            .send(request)
            .await
            .map_err(|e| CliError::Unreachable {
                server: self.server.clone(),
                cause: e.to_string(),
            })?;
        let status = response.status();
        // Read in a block of its own: a closure borrowing the response across the body's await would keep the
        // future from being `Send`, which the dashboard's handlers need.
        let (content_type, sha256) = {
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            (
                header("content-type").unwrap_or_default(),
                header("x-crew-result-sha256"),
            )
        };
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| CliError::Unreachable {
                server: self.server.clone(),
                cause: e.to_string(),
            })?
            .to_bytes()
            .to_vec();
        if status.is_success() {
            return Ok(Answer {
                content_type,
                sha256,
                body,
            });
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        Err(match status.as_u16() {
            404 => CliError::Usage(format!("not in the archive: {message}")),
            401 => CliError::Config(format!(
                "the archive at {} refused your credentials: {message} (it needs a bearer token in your kubeconfig)",
                self.server
            )),
            403 => CliError::Config(format!("forbidden by the archive: {message}")),
            code => CliError::Config(format!(
                "the archive at {} answered {code}: {message}",
                self.server
            )),
        })
    }

    /// `GET path` as JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let answer = self.get(path).await?;
        serde_json::from_slice(&answer.body).map_err(|e| {
            CliError::Config(format!(
                "the archive answered {path} with something unreadable: {e}"
            ))
        })
    }
}

/// `text` made safe inside a URL query or path segment.
pub fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn escape_keeps_unreserved_characters_only() {
        assert_eq!(super::escape("team=a,tier=gpu"), "team%3Da%2Ctier%3Dgpu");
        assert_eq!(super::escape("run-1.x_y~"), "run-1.x_y~");
    }
}
