//! Creating objects as fast as the API server accepts them: transient failures (429, 5xx, transport) are
//! retried with a short backoff, and `AlreadyExists` after a retry counts as created.

use std::future::Future;
use std::time::Duration;

const TRIES: u32 = 8;

fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Whether the object was not there (a delete retried after it went through).
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

fn already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 409 && status.reason == "AlreadyExists")
}

/// Runs `create` until it succeeds, fails permanently or has been tried [`TRIES`] times.
pub async fn with_retry<F, Fut, T>(mut create: F) -> Result<(), kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(100);
    let mut tries = 0;
    loop {
        tries += 1;
        match create().await {
            Ok(_) => return Ok(()),
            Err(e) if tries > 1 && already_exists(&e) => return Ok(()),
            Err(e) if tries < TRIES && transient(&e) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}
