//! Writes from the page: cancel, suspend, resume and rerun of one run, each the same Kubernetes request as the
//! `kubectl crew` verb (a merge patch guarded by the object's UID, or a create), made with the user's credentials.
//! Off unless `--allow-actions`: then every write answers 403. The session guard has already checked the CSRF
//! header and the origin.

use super::Dashboard;
use super::failure::Failure;
use super::names;
use super::users::Caller;
use crate::cluster::EXECUTIONS;
use crate::cmd::bulk::act as perform;
use crate::cmd::rerun::Rerun;
use crate::error::{self, Request};
use crate::view::bulk::{Change, Operation, Outcome, change};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crew_api::CrewExecution;
use kube::Api;

pub async fn act(
    State(d): State<Dashboard>,
    c: Caller,
    Path((namespace, name, action)): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, Failure> {
    if !d.allow_actions {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "read-only dashboard: start it with --allow-actions to cancel, suspend, resume or rerun",
        ));
    }
    let op = match action.as_str() {
        "cancel" => Operation::Cancel,
        "suspend" => Operation::Suspend,
        "resume" => Operation::Resume,
        "rerun" => Operation::Rerun,
        other => {
            return Err(Failure::new(
                StatusCode::NOT_FOUND,
                format!("no action `{other}`: cancel, suspend, resume or rerun"),
            ));
        }
    };
    names::namespace(&namespace)?;
    names::object(&name)?;
    let api: Api<CrewExecution> = Api::namespaced(c.cluster.client.clone(), &namespace);
    let cx = api.get(&name).await.map_err(|e| {
        error::api(
            &Request::new("get", EXECUTIONS, Some(&namespace)).named(&name),
            e,
        )
    })?;
    if let (false, Change::Already(why)) = (op == Operation::Rerun, change(op, &cx)) {
        return Ok(Json(
            serde_json::json!({ "message": format!("{name}: {why}") }),
        ));
    }
    match perform(&c.cluster, op, cx, &Rerun::default(), false).await {
        Outcome::Changed(line) if !line.is_empty() => {
            Ok(Json(serde_json::json!({ "message": line })))
        }
        Outcome::Changed(_) | Outcome::Unchanged => Ok(Json(
            serde_json::json!({ "message": format!("crewexecution.crew.dev/{name} {}", op.done()) }),
        )),
        Outcome::Failed(_, message) => {
            let status = if message.starts_with("Forbidden") {
                StatusCode::FORBIDDEN
            } else if message.starts_with("Conflict") {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_GATEWAY
            };
            Err(Failure::new(status, message))
        }
    }
}
