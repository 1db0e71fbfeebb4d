//! A refused or failed request as the page shows it: the HTTP status the API server gave (403 stays 403) and a
//! message a user can act on, as JSON `{"message": …}`.

use crate::error::CliError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
}

impl Failure {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
}

impl From<CliError> for Failure {
    fn from(e: CliError) -> Failure {
        let status = match &e {
            CliError::NotFound { .. } => StatusCode::NOT_FOUND,
            CliError::Forbidden { .. } => StatusCode::FORBIDDEN,
            CliError::Usage(_) => StatusCode::BAD_REQUEST,
            // The API server's own refusal of what the page asked (a bad selector: 400; a conflict: 409) keeps its
            // status; its failures and unreachability are a bad gateway.
            CliError::Api {
                code: Some(code), ..
            } if (400..500).contains(code) => {
                StatusCode::from_u16(*code).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            CliError::Unreachable { .. } | CliError::Config(_) | CliError::Api { .. } => {
                StatusCode::BAD_GATEWAY
            }
            CliError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure::new(status, e.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_its_status() {
        let forbidden = CliError::Forbidden {
            verb: "list",
            resource: "crewexecutions.crew.dev",
            place: "in namespace \"b\"".into(),
            message: "no".into(),
        };
        assert_eq!(Failure::from(forbidden).status, StatusCode::FORBIDDEN);
        assert_eq!(
            Failure::from(CliError::Usage("bad".into())).status,
            StatusCode::BAD_REQUEST
        );
        let api = |code| CliError::Api {
            verb: "list",
            resource: "crewexecutions.crew.dev",
            place: String::new(),
            message: "unable to parse requirement".into(),
            code,
        };
        assert_eq!(
            Failure::from(api(Some(400))).status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            Failure::from(api(Some(500))).status,
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(Failure::from(api(None)).status, StatusCode::BAD_GATEWAY);
    }
}
