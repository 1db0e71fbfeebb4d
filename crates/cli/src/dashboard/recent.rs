//! The last answer of an expensive read (the queue page lists every unfinished run and its Jobs; live statistics
//! list every run), kept a few seconds and computed by one request at a time: tabs polling the same page, or a
//! flood of requests, cost the API server one read per interval, never one each.

use super::failure::Failure;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub struct Recent {
    ttl: Duration,
    /// (key, when, answer) of the last read; the lock also makes reads one at a time.
    last: Mutex<Option<(String, Instant, serde_json::Value)>>,
}

impl Recent {
    pub fn new(ttl: Duration) -> Recent {
        Recent {
            ttl,
            last: Mutex::new(None),
        }
    }

    /// The answer for `key`: the kept one when fresh, else `read`'s (then kept).
    pub async fn get<F, Fut>(&self, key: &str, read: F) -> Result<serde_json::Value, Failure>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<serde_json::Value, Failure>>,
    {
        let mut last = self.last.lock().await;
        if let Some((_, _, value)) = last
            .as_ref()
            .filter(|(k, at, _)| k == key && at.elapsed() < self.ttl)
        {
            return Ok(value.clone());
        }
        let value = read().await?;
        *last = Some((key.to_string(), Instant::now(), value.clone()));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_fresh_answer_is_reused_and_reads_are_one_at_a_time() {
        let recent = Arc::new(Recent::new(Duration::from_secs(60)));
        let reads = Arc::new(AtomicU32::new(0));
        let read = |reads: Arc<AtomicU32>| async move {
            reads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(serde_json::json!(1))
        };
        let tabs: Vec<_> = (0..8)
            .map(|_| {
                let (recent, reads) = (recent.clone(), reads.clone());
                tokio::spawn(async move { recent.get("team-a", || read(reads)).await.unwrap() })
            })
            .collect();
        for tab in tabs {
            tab.await.unwrap();
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1, "eight tabs, one read");
        recent.get("team-b", || read(reads.clone())).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 2, "another scope is read");
    }
}
