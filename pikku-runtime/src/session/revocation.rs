//! Revoking sessions: ends a session identity's open streams at once and refuses the tokens
//! it was issued before (in this process).
//!
//! A [`SessionService`](crate::SessionService) that supports revocation hands the runtime its
//! [`Revocations`]; every stream opened with a session of identity `id` watches `id`, and
//! [`Revocations::revoke`] (e.g. on logout) ends them with a final `event: session_end`
//! (`{"error":"session_revoked",..}`), which tells the client to log in again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Revoked session identities and the streams watching them.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let revocations = pikku::session::Revocations::new(Duration::from_secs(3600));
/// let issued = SystemTime::now() - Duration::from_secs(1);
/// revocations.revoke("alice");
/// assert!(revocations.is_revoked("alice", issued));
/// assert!(!revocations.is_revoked("bob", issued));
/// ```
#[derive(Debug, Clone)]
pub struct Revocations {
    inner: Arc<Mutex<Inner>>,
    remember: Duration,
}

#[derive(Debug, Default)]
struct Inner {
    /// Open streams by identity: the token that ends them, and how many watch it.
    live: HashMap<String, (CancellationToken, usize)>,
    /// When each identity was last revoked (kept for `remember`, the longest token lifetime).
    revoked_at: HashMap<String, SystemTime>,
}

impl Revocations {
    /// Revocations remembered for `remember` (use the sessions' lifetime: older tokens have
    /// expired anyway).
    pub fn new(remember: Duration) -> Self {
        Self {
            inner: Arc::default(),
            remember,
        }
    }

    /// Revokes `identity`: its open streams end now, and sessions issued until now are
    /// refused by [`is_revoked`](Self::is_revoked).
    pub fn revoke(&self, identity: &str) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let now = SystemTime::now();
        let remember = self.remember;
        inner
            .revoked_at
            .retain(|_, at| now.duration_since(*at).is_ok_and(|age| age < remember));
        inner.revoked_at.insert(identity.to_string(), now);
        if let Some((token, _)) = inner.live.remove(identity) {
            token.cancel();
        }
    }

    /// Whether a session of `identity` issued at `issued_at` has been revoked since.
    pub fn is_revoked(&self, identity: &str, issued_at: SystemTime) -> bool {
        let Ok(inner) = self.inner.lock() else {
            return false;
        };
        inner
            .revoked_at
            .get(identity)
            .is_some_and(|at| issued_at <= *at)
    }

    /// Whether any identity is revoked (lets verification skip the lookup).
    #[cfg_attr(not(feature = "jwt"), allow(dead_code))]
    pub(crate) fn any_revoked(&self) -> bool {
        self.inner.lock().is_ok_and(|i| !i.revoked_at.is_empty())
    }

    /// A watch that resolves when `identity` is revoked; it stops counting when dropped.
    pub(crate) fn watch(&self, identity: &str) -> Option<RevocationWatch> {
        let mut inner = self.inner.lock().ok()?;
        let (token, watchers) = inner
            .live
            .entry(identity.to_string())
            .or_insert_with(|| (CancellationToken::new(), 0));
        *watchers += 1;
        let revoked = token.clone().cancelled_owned();
        Some(RevocationWatch {
            revoked: Box::pin(revoked),
            owner: WatchOwner {
                inner: self.inner.clone(),
                identity: identity.to_string(),
                token: token.clone(),
            },
        })
    }
}

/// One stream's watch on its session identity.
pub(crate) struct RevocationWatch {
    pub revoked: std::pin::Pin<Box<WaitForCancellationFutureOwned>>,
    owner: WatchOwner,
}

struct WatchOwner {
    inner: Arc<Mutex<Inner>>,
    identity: String,
    token: CancellationToken,
}

impl Drop for WatchOwner {
    fn drop(&mut self) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        // Only the entry this watch counted in (a revoke replaced it otherwise).
        if let Some((token, n)) = inner.live.get_mut(&self.identity) {
            if *token == self.token {
                *n -= 1;
                if *n == 0 {
                    inner.live.remove(&self.identity);
                }
            }
        }
    }
}

impl std::fmt::Debug for RevocationWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationWatch")
            .field("identity", &self.owner.identity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn revoking_ends_watches_and_forgets_closed_ones() {
        let r = Revocations::new(Duration::from_secs(60));
        let a = r.watch("alice").unwrap();
        let b = r.watch("bob").unwrap();
        drop(r.watch("carol").unwrap());
        assert_eq!(
            r.inner.lock().unwrap().live.len(),
            2,
            "carol's entry went with its watch"
        );
        r.revoke("alice");
        tokio::time::timeout(Duration::from_secs(1), a.revoked)
            .await
            .unwrap();
        assert!(!b.owner.token.is_cancelled());
    }
}
