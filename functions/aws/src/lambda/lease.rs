//! A build lease that is given back unless the builder took it over: released explicitly on
//! a failed invocation, and on drop if the task holding it is cancelled or panics.

use nixery_core::storage::Index;
use std::sync::Arc;

pub(super) struct LeaseGuard {
    held: Option<(Arc<dyn Index>, String, String)>,
}

impl LeaseGuard {
    pub(super) fn new(index: Arc<dyn Index>, key: &str, owner: &str) -> Self {
        LeaseGuard {
            held: Some((index, key.to_string(), owner.to_string())),
        }
    }

    /// The builder has the lease now (or may have it): leave it alone.
    pub(super) fn disarm(mut self) {
        self.held = None;
    }

    pub(super) async fn release(mut self) {
        if let Some((index, key, owner)) = self.held.take() {
            if let Err(e) = index.release_lease(&key, &owner).await {
                tracing::warn!(error = %e, "releasing a build lease failed; it will expire");
            }
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let Some((index, key, owner)) = self.held.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = index.release_lease(&key, &owner).await;
            });
        }
    }
}
