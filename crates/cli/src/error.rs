//! Errors a user can act on: what failed, on which object, and what to do.

use thiserror::Error;

/// What a request was doing, to say so when it fails.
#[derive(Clone, Debug)]
pub struct Request {
    /// The API verb (`get`, `list`, `patch`, ...).
    pub verb: &'static str,
    /// The resource (`crewexecutions.crew.dev`, `pods`, ...).
    pub resource: &'static str,
    /// The object's name, if one.
    pub name: Option<String>,
    /// The namespace, `None` for every namespace.
    pub namespace: Option<String>,
}

impl Request {
    pub fn new(verb: &'static str, resource: &'static str, namespace: Option<&str>) -> Request {
        Request {
            verb,
            resource,
            name: None,
            namespace: namespace.map(str::to_string),
        }
    }

    pub fn named(mut self, name: &str) -> Request {
        self.name = Some(name.to_string());
        self
    }

    fn place(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("in namespace \"{ns}\""),
            None => "in any namespace".to_string(),
        }
    }
}

#[derive(Debug, Error)]
pub enum CliError {
    #[error("{kind} \"{name}\" not found {place}")]
    NotFound {
        kind: &'static str,
        name: String,
        place: String,
    },
    #[error("forbidden: you may not {verb} {resource} {place} ({message})")]
    Forbidden {
        verb: &'static str,
        resource: &'static str,
        place: String,
        message: String,
    },
    #[error(
        "no cluster reachable at {server}: {cause}\n(check --kubeconfig / --context, or that the API server is up)"
    )]
    Unreachable { server: String, cause: String },
    #[error("{0}")]
    Config(String),
    #[error("{verb} {resource} {place}: {message}")]
    Api {
        verb: &'static str,
        resource: &'static str,
        place: String,
        message: String,
        /// The API server's HTTP status, when it answered.
        code: Option<u16>,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Exit status of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok,
    /// Something failed (a request, a target of a bulk operation, a watched execution).
    Failed,
    /// `watch --timeout` expired.
    TimedOut,
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::TimedOut => 2,
        }
    }
}

/// Context for the server address in "unreachable" errors.
static SERVER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Records the API server's address for error messages.
pub fn set_server(server: &str) {
    let _ = SERVER.set(server.to_string());
}

/// The API error of `request` as the user should read it.
pub fn api(request: &Request, error: kube::Error) -> CliError {
    let place = request.place();
    match error {
        kube::Error::Api(status) => {
            let code = status.code;
            let message = status.message.clone();
            match (code, &request.name) {
                (404, Some(name)) => CliError::NotFound {
                    kind: kind_of(request.resource),
                    name: name.clone(),
                    place,
                },
                (403, _) => CliError::Forbidden {
                    verb: request.verb,
                    resource: request.resource,
                    place,
                    message,
                },
                _ => CliError::Api {
                    verb: request.verb,
                    resource: request.resource,
                    place,
                    message: if message.is_empty() {
                        format!("HTTP {code}")
                    } else {
                        message
                    },
                    code: Some(code),
                },
            }
        }
        other if unreachable(&other) => CliError::Unreachable {
            server: SERVER
                .get()
                .cloned()
                .unwrap_or_else(|| "the API server".into()),
            cause: root_cause(&other),
        },
        other => CliError::Api {
            verb: request.verb,
            resource: request.resource,
            place,
            message: root_cause(&other),
            code: None,
        },
    }
}

/// The HTTP status of an API error, if it is one.
pub fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "crewexecutions.crew.dev" => "CrewExecution",
        "crewqueues.crew.dev" => "CrewQueue",
        "pods" => "Pod",
        "jobs" => "Job",
        _ => "object",
    }
}

fn unreachable(error: &kube::Error) -> bool {
    matches!(
        error,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_)
    )
}

/// The innermost message of an error chain (the one that names the cause: "Connection refused").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut messages = vec![error.to_string()];
    let mut source = error.source();
    while let Some(inner) = source {
        messages.push(inner.to_string());
        source = inner.source();
    }
    messages.dedup();
    messages.last().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn status(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status::failure(message, "x").with_code(code)))
    }

    #[test]
    fn not_found_names_the_object_and_namespace() {
        let request =
            Request::new("get", "crewexecutions.crew.dev", Some("team-a")).named("nightly");
        let error = api(
            &request,
            status(404, "crewexecutions.crew.dev \"nightly\" not found"),
        );
        assert_eq!(
            error.to_string(),
            "CrewExecution \"nightly\" not found in namespace \"team-a\""
        );
    }

    #[test]
    fn forbidden_names_verb_and_resource() {
        let request = Request::new("patch", "crewexecutions.crew.dev", Some("team-a"));
        let error = api(&request, status(403, "user \"bob\" cannot patch"));
        assert_eq!(
            error.to_string(),
            "forbidden: you may not patch crewexecutions.crew.dev in namespace \"team-a\" (user \"bob\" cannot patch)"
        );
    }
}
