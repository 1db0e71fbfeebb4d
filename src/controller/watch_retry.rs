//! How a watch is retried after an error: each watch waits on its own, short backoff, and its errors stop there
//! (logged), so that they never reach the controller. kube-runtime's controller puts its own backoff on the merged
//! stream of all its triggers: one failing watch would pause every trigger, Job completions included, for as
//! long as that backoff had grown.
//!
//! kube-runtime's default doubles from 0.8 s up to 30 s (plus up to 100% jitter) and keeps its grown delay for
//! 120 s. After an API-server outage of a few seconds every watch then sleeps up to a minute after the server is
//! back, and a 410 Gone on the first watch after a restart (the new server's watch cache starts at the current
//! etcd revision) adds another grown delay: runs stalled for one to two minutes with their Jobs long finished. A
//! watch retry costs one request, so this policy stays short: 250 ms doubling to at most 4 s, with up to 25%
//! jitter so that watches do not retry in step, and back to 250 ms on the first event that arrives.

use futures::{Stream, StreamExt};
use kube::runtime::utils::{Backoff, StreamBackoff};
use kube::runtime::watcher;
use std::time::Duration;

/// `watch` retried under [`WatchBackoff`], its errors logged (`what` names the watch) and dropped. A 410 Gone
/// skips the backoff: the watcher lists again at once, as client-go's reflector does; after an API-server restart
/// it is the first answer every watch gets, and waiting on it would only delay catching up.
pub fn retried<S, T>(watch: S, what: &'static str) -> impl Stream<Item = S::Item> + Send
where
    S: Stream<Item = Result<T, watcher::Error>> + Send,
    T: Send,
{
    let relist_at_once = watch.filter(move |item| {
        let expired = item.as_ref().is_err_and(is_expired);
        if expired {
            tracing::debug!(watch = what, "watch expired (410 Gone); listing again");
        }
        futures::future::ready(!expired)
    });
    StreamBackoff::new(relist_at_once, WatchBackoff::default()).filter(move |item| {
        if let Err(error) = item {
            tracing::warn!(watch = what, %error, "watch failed; retrying");
        }
        futures::future::ready(item.is_ok())
    })
}

/// 410 Gone: the resource version the watch resumed from is no longer served; the watcher lists again by itself.
fn is_expired(error: &watcher::Error) -> bool {
    matches!(error, watcher::Error::WatchError(status) if status.code == 410)
}

const FIRST: Duration = Duration::from_millis(250);
/// The longest wait: a watch is back within this long (plus its jitter) of the API server.
pub const LONGEST: Duration = Duration::from_secs(4);

/// The watch retry policy (see the module documentation).
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    next: Duration,
    seed: u64,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9, |d| d.subsec_nanos().into());
        WatchBackoff { next: FIRST, seed }
    }
}

impl WatchBackoff {
    /// A fraction in [0, 1) from a xorshift generator: jitter needs no better randomness.
    fn fraction(&mut self) -> f64 {
        let mut x = self.seed | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let base = self.next;
        self.next = (base * 2).min(LONGEST);
        Some(base.mul_f64(1.0 + 0.25 * self.fraction()))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn expired() -> watcher::Error {
        watcher::Error::WatchError(
            Status::failure("too old resource version", "Expired")
                .with_code(410)
                .boxed(),
        )
    }

    fn unavailable() -> watcher::Error {
        watcher::Error::WatchError(
            Status::failure("unavailable", "ServiceUnavailable")
                .with_code(503)
                .boxed(),
        )
    }

    #[tokio::test]
    async fn errors_stop_here_and_only_a_410_skips_the_backoff() {
        let items = futures::stream::iter(vec![
            Ok(1),
            Err(expired()),
            Ok(2),
            Err(unavailable()),
            Ok(3),
        ]);
        let mut stream = std::pin::pin!(retried(items, "test"));
        let start = std::time::Instant::now();
        assert_eq!(stream.next().await.and_then(Result::ok), Some(1));
        assert_eq!(stream.next().await.and_then(Result::ok), Some(2));
        assert!(
            start.elapsed() < Duration::from_millis(200),
            "a 410 waited {:?}",
            start.elapsed()
        );
        assert_eq!(stream.next().await.and_then(Result::ok), Some(3));
        assert!(
            start.elapsed() >= FIRST,
            "a 503 did not wait: {:?}",
            start.elapsed()
        );
        assert!(stream.next().await.is_none());
    }

    #[test]
    fn doubles_from_a_quarter_second_to_four_seconds_with_a_quarter_jitter() {
        let mut backoff = WatchBackoff::default();
        let delays: Vec<Duration> = backoff.by_ref().take(10).collect();
        let bases = [250, 500, 1000, 2000, 4000, 4000, 4000, 4000, 4000, 4000];
        for (delay, base) in delays.iter().zip(bases) {
            let base = Duration::from_millis(base);
            assert!(
                *delay >= base && *delay <= base.mul_f64(1.25),
                "{delay:?} for {base:?}"
            );
        }
        backoff.reset();
        assert!(
            backoff
                .next()
                .is_some_and(|d| d < Duration::from_millis(320))
        );
    }

    #[test]
    fn jitter_differs_between_retries() {
        let mut backoff = WatchBackoff::default();
        let delays: std::collections::BTreeSet<Duration> = (0..20)
            .map(|_| backoff.next().unwrap_or_default())
            .collect();
        assert!(delays.len() > 10, "{delays:?}");
    }
}
