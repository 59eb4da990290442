//! The access-token cache: one refresh at a time however many calls wait.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// An access token and how long the platform said it lives.
#[derive(Clone)]
pub struct Token {
    value: String,
    expires_in: Duration,
}

impl Token {
    /// A token valid for `expires_in_secs` seconds from now.
    pub fn new(value: impl Into<String>, expires_in_secs: u64) -> Token {
        Token {
            value: value.into(),
            expires_in: Duration::from_secs(expires_in_secs),
        }
    }

    /// The token text (to put in a query or header; never log it).
    pub fn secret(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &"***")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

struct Cached {
    value: String,
    refresh_at: Instant,
    generation: u64,
}

/// Caches one access token.
///
/// A token is refreshed `margin` before it expires. Refreshes are
/// single-flight: the first caller that finds no usable token fetches one
/// while holding the lock, and everyone else waiting on the lock gets that
/// token. [`TokenCache::invalidate`] drops a token the platform rejected,
/// but only if it is still the cached one, so a burst of calls that all
/// failed with the same stale token causes one refetch, not one each.
pub struct TokenCache {
    slot: Mutex<Option<Cached>>,
    margin: Duration,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("margin", &self.margin)
            .finish_non_exhaustive()
    }
}

/// A token handed out by the cache, with the generation needed to invalidate it.
#[derive(Clone)]
pub struct Lease {
    /// The token text.
    pub value: String,
    /// Which fetch produced it.
    pub generation: u64,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lease(generation {})", self.generation)
    }
}

impl TokenCache {
    /// An empty cache refreshing `margin` before expiry.
    pub fn new(margin: Duration) -> TokenCache {
        TokenCache {
            slot: Mutex::new(None),
            margin,
        }
    }

    /// The cached token, or a fresh one from `fetch` (called by one caller at
    /// a time). Returns the lease and whether this call fetched it.
    pub async fn get<E, F, Fut>(&self, fetch: F) -> Result<(Lease, bool), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(c) = slot.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok((
                    Lease {
                        value: c.value.clone(),
                        generation: c.generation,
                    },
                    false,
                ));
            }
        }
        let generation = slot.as_ref().map_or(1, |c| c.generation + 1);
        let token = fetch().await?;
        // A lifetime shorter than the margin still gets used once rather than
        // refetched in a loop.
        let usable = token
            .expires_in
            .checked_sub(self.margin)
            .unwrap_or(token.expires_in / 2);
        *slot = Some(Cached {
            value: token.value.clone(),
            refresh_at: Instant::now() + usable,
            generation,
        });
        Ok((
            Lease {
                value: token.value,
                generation,
            },
            true,
        ))
    }

    /// Drops the cached token if it is still the one of `lease`.
    pub async fn invalidate(&self, lease: &Lease) {
        let mut slot = self.slot.lock().await;
        if let Some(c) = slot.as_mut() {
            if c.generation == lease.generation {
                // Keep the generation so the next fetch numbers on from it.
                c.refresh_at = Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn concurrent_callers_share_one_refresh() {
        let cache = Arc::new(TokenCache::new(Duration::from_secs(300)));
        let fetches = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let cache = cache.clone();
            let fetches = fetches.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get(|| async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, ()>(Token::new("t1", 7200))
                    })
                    .await
                    .unwrap()
                    .0
                    .value
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), "t1");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn invalidating_a_stale_lease_twice_refetches_once() {
        let cache = TokenCache::new(Duration::from_secs(300));
        let n = AtomicU32::new(0);
        let fetch = || async {
            let i = n.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(Token::new(format!("t{i}"), 7200))
        };
        let (old, _) = cache.get(fetch).await.unwrap();
        cache.invalidate(&old).await;
        let (new, fetched) = cache.get(fetch).await.unwrap();
        assert!(fetched);
        assert_ne!(new.value, old.value);
        // A second caller still holding the old lease must not drop the new token.
        cache.invalidate(&old).await;
        let (again, fetched) = cache.get(fetch).await.unwrap();
        assert!(!fetched);
        assert_eq!(again.value, new.value);
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn token_near_expiry_is_refreshed_before_use() {
        let cache = TokenCache::new(Duration::from_secs(300));
        let n = AtomicU32::new(0);
        let fetch = || async {
            n.fetch_add(1, Ordering::SeqCst);
            // 300 s margin on a 301 s token: refresh after one second.
            Ok::<_, ()>(Token::new("short", 301))
        };
        cache.get(fetch).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (_, fetched) = cache.get(fetch).await.unwrap();
        assert!(fetched);
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn token_debug_hides_the_value() {
        let t = Token::new("SECRET-TOKEN", 10);
        assert!(!format!("{t:?}").contains("SECRET"));
    }
}
