//! One build per image at a time within this process: later callers join
//! the running build instead of starting another. The build runs in its own
//! task, so a client that disconnects does not cancel it.

use futures::future::{BoxFuture, FutureExt, Shared};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

type SharedResult<T, E> = Shared<BoxFuture<'static, Result<T, Arc<E>>>>;

pub struct InFlight<T: Clone, E> {
    running: Arc<Mutex<HashMap<String, SharedResult<T, E>>>>,
}

impl<T: Clone, E> Default for InFlight<T, E> {
    fn default() -> Self {
        InFlight {
            running: Arc::default(),
        }
    }
}

impl<T, E> InFlight<T, E>
where
    T: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static + From<tokio::task::JoinError>,
{
    /// Join the build for `key`, or start `make()` as it if none is running.
    pub fn run<F>(&self, key: &str, make: impl FnOnce() -> F) -> SharedResult<T, E>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(fut) = running.get(key) {
            return fut.clone();
        }
        let handle = tokio::spawn(make());
        let (map, owned_key) = (self.running.clone(), key.to_string());
        let fut = async move {
            let result = match handle.await {
                Ok(r) => r.map_err(Arc::new),
                Err(e) => Err(Arc::new(E::from(e))),
            };
            map.lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&owned_key);
            result
        }
        .boxed()
        .shared();
        running.insert(key.to_string(), fut.clone());
        // Drive it even if every caller goes away, so the entry is removed.
        tokio::spawn(fut.clone());
        fut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[derive(Debug)]
    struct E;
    impl From<tokio::task::JoinError> for E {
        fn from(_: tokio::task::JoinError) -> Self {
            E
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let inflight: InFlight<u32, E> = InFlight::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut joins = Vec::new();
        for _ in 0..20 {
            let runs = runs.clone();
            joins.push(inflight.run("k", move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(7)
            }));
        }
        for j in joins {
            assert_eq!(j.await.expect("ok"), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Finished builds are forgotten: the next call runs again.
        let again = inflight.run("k", || async { Ok(8) }).await.expect("ok");
        assert_eq!(again, 8);
    }
}
