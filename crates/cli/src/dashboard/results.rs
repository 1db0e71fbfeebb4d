//! A step's posted result for the run page: read from its ConfigMap (owned by the run, checked against the SHA-256
//! its status records) as `kubectl crew result` reads it, or from the archive for an archived run.

use super::failure::Failure;
use super::names;
use super::users::Caller;
use crate::cluster::EXECUTIONS;
use crate::cmd::archived::archived_result;
use crate::cmd::result::posted;
use crate::error::{self, Request};
use axum::Json;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use crew_api::CrewExecution;
use kube::Api;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct ResultQuery {
    #[serde(default)]
    source: Option<String>,
}

pub async fn result(
    c: Caller,
    Path((namespace, name, step)): Path<(String, String, String)>,
    Query(q): Query<ResultQuery>,
) -> Result<Json<serde_json::Value>, Failure> {
    names::namespace(&namespace)?;
    names::object(&name)?;
    names::step(&step)?;
    if q.source.as_deref() == Some("archived") {
        let archive = c.archive()?;
        let answer = archived_result(archive, &namespace, &name, &step).await?;
        return Ok(Json(serde_json::json!({
            "text": String::from_utf8_lossy(&answer.body),
            "contentType": answer.content_type,
        })));
    }
    let api: Api<CrewExecution> = Api::namespaced(c.cluster.client.clone(), &namespace);
    let cx = api.get(&name).await.map_err(|e| {
        error::api(
            &Request::new("get", EXECUTIONS, Some(&namespace)).named(&name),
            e,
        )
    })?;
    let status = cx.status.clone().unwrap_or_default();
    let reference = status
        .steps
        .iter()
        .find(|s| s.name == step)
        .and_then(|s| s.result_ref.as_ref())
        .ok_or_else(|| {
            Failure::new(
                StatusCode::NOT_FOUND,
                format!("step \"{step}\" of \"{name}\" has no posted result"),
            )
        })?;
    let text = posted(&c.cluster, &namespace, &cx, reference).await?;
    Ok(Json(serde_json::json!({
        "text": text,
        "contentType": reference.content_type,
    })))
}
