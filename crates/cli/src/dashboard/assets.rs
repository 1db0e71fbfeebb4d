//! The front end, embedded at build time from `dashboard/dist` (see `build.rs`).

use super::Dashboard;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};

const INDEX: &str = include_str!(concat!(env!("OUT_DIR"), "/index.html"));
const SCRIPT: &str = include_str!(concat!(env!("OUT_DIR"), "/app.js"));
const STYLE: &str = include_str!(concat!(env!("OUT_DIR"), "/app.css"));
/// Whether the real front end was embedded (not the placeholder that says how to build it).
pub const BUILT: bool = include!(concat!(env!("OUT_DIR"), "/dashboard_built.rs"));

/// The page, with this session's CSRF token for its writes.
pub async fn index(State(d): State<Dashboard>) -> Html<String> {
    Html(INDEX.replace("{{csrf}}", &d.csrf))
}

pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}
