//! `kubectl crew dashboard`: a web page served on this machine that reads the cluster with the user's own
//! kubeconfig credentials, so it shows exactly what `kubectl` would (and archived runs from `--archive-server`
//! with the same credentials).
//!
//! Layout: [`guard`] (the session token, Host and CSRF checks), [`runs`] (the list and its pages), [`watch`] (the
//! live list as Server-Sent Events), [`run`] (one run), [`results`] (a step's posted result), [`queues`],
//! [`stats`], [`actions`] (writes, off unless `--allow-actions`), [`wire`] (the JSON shapes), [`assets`] (the
//! embedded front end, built from `crates/cli/dashboard/`).

mod actions;
mod assets;
mod failure;
mod guard;
mod queues;
mod results;
mod run;
mod runs;
mod stats;
mod watch;
mod wire;

use crate::archive::Archive;
use crate::args::{DashboardArgs, Target};
use crate::cluster::{self, Cluster};
use crate::error::{CliError, Exit};
use crate::output::note;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Live watches at once (each an open watch on the API server): a page has one or two; more means runaway tabs.
const MAX_WATCHES: usize = 32;

/// What every handler reads.
#[derive(Clone)]
pub struct Dashboard {
    pub cluster: Cluster,
    pub archive: Option<Arc<Archive>>,
    pub allow_actions: bool,
    /// The kubeconfig context's namespace.
    pub namespace: String,
    pub server: String,
    pub watches: Arc<Semaphore>,
    pub csrf: String,
}

pub async fn run(target: &Target, args: &DashboardArgs) -> Result<Exit, CliError> {
    let config = cluster::config_of(target).await?;
    let server = config.cluster_url.to_string();
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let cluster = Cluster::of(config, target)?;
    let archive = match &target.archive_server {
        Some(_) => Some(Arc::new(Archive::connect(target).await?)),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.address)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.address)))?;
    let address = listener.local_addr()?;
    let session = guard::Session::new(address)?;
    let dashboard = Dashboard {
        cluster,
        archive,
        allow_actions: args.allow_actions,
        namespace,
        server,
        watches: Arc::new(Semaphore::new(MAX_WATCHES)),
        csrf: session.csrf().to_string(),
    };
    let app = router(dashboard, session.clone());
    let link = session.link();
    crate::output::print(&format!(
        "Dashboard at {link}\n({}; Ctrl-C stops it)\n",
        if args.allow_actions {
            "actions allowed: cancel, suspend, resume and rerun act with your credentials"
        } else {
            "read-only"
        }
    ))?;
    if !assets::BUILT {
        note(
            "(this kubectl-crew was built without the dashboard's front end: run `make dashboard`, then build it again)\n",
        );
    }
    if !args.no_browser {
        open_browser(&link);
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(Exit::Ok)
}

fn router(dashboard: Dashboard, session: guard::Session) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/app.js", get(assets::script))
        .route("/assets/app.css", get(assets::style))
        .route("/api/context", get(context))
        .route("/api/runs", get(runs::list))
        .route("/api/watch", get(watch::stream))
        .route("/api/runs/{namespace}/{name}", get(run::detail))
        .route("/api/runs/{namespace}/{name}/{action}", post(actions::act))
        .route(
            "/api/runs/{namespace}/{name}/results/{step}",
            get(results::result),
        )
        .route("/api/queues", get(queues::lines))
        .route("/api/stats", get(stats::figures))
        .with_state(dashboard)
        .layer(axum::middleware::from_fn_with_state(session, guard::check))
}

async fn context(State(d): State<Dashboard>) -> axum::Json<wire::Context> {
    axum::Json(wire::Context {
        namespace: d.namespace.clone(),
        server: d.server.clone(),
        archive: d.archive.is_some(),
        actions: d.allow_actions,
    })
}

/// Opens `link` in the desktop's browser (`$BROWSER`, else xdg-open / open); says so when it cannot.
fn open_browser(link: &str) {
    let opener = std::env::var("BROWSER").ok().unwrap_or_else(|| {
        if cfg!(target_os = "macos") {
            "open".into()
        } else {
            "xdg-open".into()
        }
    });
    let spawned = std::process::Command::new(&opener)
        .arg(link)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if spawned.is_err() {
        note(&format!(
            "(no browser opened: `{opener}` is not available; open the link above)\n"
        ));
    }
}

#[cfg(test)]
mod tests;
