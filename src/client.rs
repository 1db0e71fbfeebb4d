//! The operator's API client: kube's default stack, optionally with a bound on the requests in flight.
//!
//! kube's client speaks HTTP/1.1, one request per connection at a time, and its pool opens a new TLS connection
//! whenever all are busy. Unbounded, a burst of reconciles opened one connection (and one TLS handshake on the
//! API server) per request in flight: hundreds of sockets, their buffers in the operator's memory, and handshake
//! CPU on an API server that was already the bottleneck. Bounded, requests wait in a first-come-first-served
//! queue in the operator and reuse a few warm connections. The bound covers a request until its response
//! headers arrive, so long-running watches hold no slot.
//!
//! The bound is off by default. At N = 10 000 executions created at once, a bound of 32 queued so many requests
//! in the operator that its memory doubled and the first Job came minutes later. HTTP/2 (one multiplexed
//! connection, as client-go uses) was tried too: 5 sockets instead of 462 at N = 5 000, but the peak memory was
//! only 13 % lower and the first Job came 7x later (BENCHMARKS.md).

use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tower::limit::ConcurrencyLimitLayer;

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig could not be read.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// Neither a kubeconfig nor in-cluster configuration was found.
    #[error("no Kubernetes configuration: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    /// The client stack could not be built (e.g. bad TLS material).
    #[error("client: {0}")]
    Build(#[from] kube::Error),
}

/// A client from the kubeconfig `context` (default: the current context, else in-cluster configuration) with
/// at most `max_requests` requests in flight (`None`: unbounded, kube's default).
pub async fn connect(
    context: Option<&str>,
    max_requests: Option<usize>,
) -> Result<Client, ClientError> {
    let config = match context {
        Some(context) => {
            let options = KubeConfigOptions {
                context: Some(context.to_string()),
                ..Default::default()
            };
            Config::from_custom_kubeconfig(Kubeconfig::read()?, &options).await?
        }
        None => Config::infer().await?,
    };
    Ok(match max_requests {
        Some(max_requests) => bounded(config, max_requests)?,
        None => Client::try_from(config)?,
    })
}

/// A client for `config` with at most `max_requests` (at least 1) requests in flight.
pub fn bounded(config: Config, max_requests: usize) -> Result<Client, kube::Error> {
    Ok(ClientBuilder::try_from(config)?
        .with_layer(&ConcurrencyLimitLayer::new(max_requests.max(1)))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[derive(Default)]
    struct InFlight {
        now: AtomicUsize,
        most: AtomicUsize,
        served: AtomicUsize,
    }

    async fn slow_api_server(counts: Arc<InFlight>) -> std::net::SocketAddr {
        let app = axum::Router::new().fallback(move || {
            let counts = counts.clone();
            async move {
                let now = counts.now.fetch_add(1, Ordering::SeqCst) + 1;
                counts.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                counts.now.fetch_sub(1, Ordering::SeqCst);
                counts.served.fetch_add(1, Ordering::SeqCst);
                (
                    [("content-type", "application/json")],
                    r#"{"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "x"}}"#,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    #[tokio::test]
    async fn requests_beyond_the_bound_wait_their_turn_and_all_complete() {
        let counts = Arc::new(InFlight::default());
        let addr = slow_api_server(counts.clone()).await;
        let config = Config::new(format!("http://{addr}").parse().unwrap());
        let client = bounded(config, 3).unwrap();
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
        let gets = (0..20).map(|_| namespaces.get("x"));
        let results = futures::future::join_all(gets).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(counts.served.load(Ordering::SeqCst), 20);
        let most = counts.most.load(Ordering::SeqCst);
        assert!(
            (1..=3).contains(&most),
            "{most} requests were in flight at once"
        );
    }
}
