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
mod names;
mod queues;
mod recent;
mod results;
mod run;
mod runs;
mod stats;
mod users;
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
    /// Becomes `true` on Ctrl-C: live streams end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The queue page's last answer (2 s).
    pub queues: Arc<recent::Recent>,
    /// Live statistics' last answer (10 s).
    pub stats: Arc<recent::Recent>,
    /// Many users (`--in-cluster`): how each request's token is admitted.
    pub gate: Option<Arc<users::Gate>>,
}

pub async fn run(target: &Target, args: &DashboardArgs) -> Result<Exit, CliError> {
    let config = cluster::config_of(target).await?;
    let server = config.cluster_url.to_string();
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let gate = match args.in_cluster {
        true => {
            let reviews = kube::Client::try_from(config.clone())
                .map_err(|e| CliError::Config(format!("cannot build a client: {e}")))?;
            let reviewer = Box::new(users::KubeReviewer(reviews));
            let server = target.archive_server.clone();
            Some(Arc::new(users::Gate::new(
                reviewer,
                config.clone(),
                target.chunk_size,
                server,
            )))
        }
        false => None,
    };
    let cluster = Cluster::of(config, target)?;
    // With many users the archive is asked as each of them (their Caller's), never as the dashboard.
    let archive = match (&target.archive_server, &gate) {
        (Some(_), None) => Some(Arc::new(Archive::connect(target).await?)),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.address)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.address)))?;
    let address = listener.local_addr()?;
    let session = guard::Session::new(address)?;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let dashboard = Dashboard {
        cluster,
        archive,
        allow_actions: args.allow_actions,
        namespace,
        server,
        watches: Arc::new(Semaphore::new(MAX_WATCHES)),
        csrf: session.csrf().to_string(),
        shutdown,
        queues: Arc::new(recent::Recent::new(std::time::Duration::from_secs(2))),
        stats: Arc::new(recent::Recent::new(std::time::Duration::from_secs(10))),
        gate: gate.clone(),
    };
    let many = gate.is_some();
    let app = router(dashboard, (!many).then(|| session.clone()));
    if !address.ip().is_loopback() && !many {
        note(&format!(
            "WARNING: listening on {address}, beyond this machine: anyone who can reach it and obtains the link acts \
             with your credentials, over plain HTTP. Prefer a loopback address.\n"
        ));
    }
    let mode = if args.allow_actions {
        "actions allowed: cancel, suspend, resume and rerun act with your credentials"
    } else {
        "read-only"
    };
    let opened = !many && !args.no_browser && open_browser(session.link());
    if many {
        crate::output::print(&format!(
            "Dashboard for many users at http://{address}/ (each request made with its user's token; {mode}; \
             Ctrl-C stops it)\n"
        ))?;
    } else if opened {
        crate::output::print(&format!(
            "Dashboard at http://{address}/ opened in your browser ({mode}; Ctrl-C stops it)\n"
        ))?;
    } else {
        // The link works once: the browser that opens it gets the session.
        crate::output::print(&format!(
            "Dashboard at {}\n(the link works once; {mode}; Ctrl-C stops it)\n",
            session.link()
        ))?;
    }
    if !assets::BUILT {
        note(
            "(this kubectl-crew was built without the dashboard's front end: run `make dashboard`, then build it again)\n",
        );
    }
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = tokio::signal::ctrl_c().await;
        // Live streams end with the server, not when their tabs close.
        let _ = stop.send(true);
    });
    tokio::select! {
        served = std::future::IntoFuture::into_future(serve) => served?,
        // A page that does not let go (a proxy holding a stream) does not keep the server up past a few seconds.
        () = async {
            let _ = tokio::signal::ctrl_c().await;
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        } => {}
    }
    Ok(Exit::Ok)
}

/// The routes, behind the session guard (one user: `session`) or the users' gate (`--in-cluster`).
fn router(dashboard: Dashboard, session: Option<guard::Session>) -> Router {
    let routes = Router::new()
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
        .route("/api/login", post(users::login))
        .route("/api/logout", post(users::logout))
        .with_state(dashboard.clone());
    match session {
        Some(session) => routes.layer(axum::middleware::from_fn_with_state(session, guard::check)),
        None => routes.layer(axum::middleware::from_fn_with_state(
            dashboard,
            users::check,
        )),
    }
}

async fn context(State(d): State<Dashboard>) -> axum::Json<wire::Context> {
    axum::Json(wire::Context {
        namespace: d.namespace.clone(),
        server: d.server.clone(),
        archive: d.archive.is_some() || d.gate.as_ref().is_some_and(|g| g.has_archive()),
        actions: d.allow_actions,
        users: d.gate.is_some(),
    })
}

/// Opens `link` in the desktop's browser (`$BROWSER`, else xdg-open / open) through a file only this user can read
/// that redirects to it, so the link's token is on no command line (another user could read it there); false when
/// no browser could be started.
fn open_browser(link: &str) -> bool {
    let opener = std::env::var("BROWSER").ok().unwrap_or_else(|| {
        if cfg!(target_os = "macos") {
            "open".into()
        } else {
            "xdg-open".into()
        }
    });
    let page = match redirect_file(link) {
        Ok(page) => page,
        Err(e) => {
            note(&format!(
                "(no browser opened: cannot write the redirect page: {e})\n"
            ));
            return false;
        }
    };
    let spawned = std::process::Command::new(&opener)
        .arg(&page)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    // The browser reads the page at once; it goes after a minute (the token inside works once anyway).
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        let _ = std::fs::remove_file(&page);
    });
    if spawned.is_err() {
        note(&format!(
            "(no browser opened: `{opener}` is not available)\n"
        ));
    }
    spawned.is_ok()
}

/// A new HTML file, readable by this user only, that sends the browser to `link`.
fn redirect_file(link: &str) -> std::io::Result<std::path::PathBuf> {
    use std::io::Write;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| std::io::Error::other(e.to_string()))?;
    let name: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let path = std::env::temp_dir().join(format!("crew-dashboard-{name}.html"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path)?;
    write!(
        file,
        "<!doctype html><meta charset=utf-8><meta name=referrer content=no-referrer>\
         <meta http-equiv=refresh content=\"0;url={link}\"><title>crew dashboard</title>\
         <a href=\"{link}\">Open the dashboard</a>"
    )?;
    Ok(path)
}

#[cfg(test)]
mod tests;
