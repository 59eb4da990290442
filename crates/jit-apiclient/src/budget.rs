//! The client-side rate budget and concurrency bound.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

/// At most `calls` requests in any interval of length `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls allowed per window.
    pub calls: u32,
    /// Window length.
    pub window: Duration,
}

impl RateLimit {
    /// `calls` per `window`.
    pub fn new(calls: u32, window: Duration) -> RateLimit {
        RateLimit { calls, window }
    }

    /// No limit at all (for tests and plugin sources).
    pub fn unlimited() -> RateLimit {
        RateLimit {
            calls: u32::MAX,
            window: Duration::ZERO,
        }
    }
}

/// One path's sliding windows: per limit, the send times of its last
/// `calls` requests.
struct Window {
    limits: Vec<(RateLimit, VecDeque<Instant>)>,
}

impl RateLimit {
    /// Whether this limit limits anything.
    fn binds(&self) -> bool {
        self.calls != u32::MAX && !self.window.is_zero()
    }
}

/// Grants permission to send: a global concurrency bound plus an exact
/// sliding-window budget per API path.
///
/// Why this order of waiting: a task first queues on its path's window
/// (FIFO, one queue per path) and only the head of each path's queue then
/// takes a concurrency permit. So a saturated API (say a thousand
/// `user/list` calls waiting for their budget) holds at most one permit
/// while it waits and never starves the other APIs, which is what lets a
/// fetch run every API at its own rate at the same time. The send time is
/// recorded after the permit is held, right before the request goes out, so
/// the window counts what the server will see. `margin` widens the window a
/// little to absorb jitter between our clock and the server's arrival times.
pub struct Limiter {
    default: RateLimit,
    overrides: HashMap<String, RateLimit>,
    /// Further windows every path keeps besides its own limit (WeCom's
    /// per-hour limit beside its per-minute one).
    also: Vec<RateLimit>,
    margin: Duration,
    windows: StdMutex<HashMap<String, Arc<Mutex<Window>>>>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("default", &self.default)
            .field("overrides", &self.overrides)
            .field("margin", &self.margin)
            .field("available_permits", &self.permits.available_permits())
            .finish()
    }
}

impl Limiter {
    /// A limiter with `concurrency` simultaneous requests, `default` per path,
    /// per-path `overrides`, and the safety `margin` added to every window.
    pub fn new(
        concurrency: usize,
        default: RateLimit,
        overrides: HashMap<String, RateLimit>,
        margin: Duration,
    ) -> Limiter {
        Limiter {
            default,
            overrides,
            also: Vec::new(),
            margin,
            windows: StdMutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Adds windows every path keeps besides its own limit: a platform
    /// with several limits per API (WeCom: 10,000 a minute *and* 150,000 an
    /// hour) is within all of them.
    pub fn with_also(mut self, also: Vec<RateLimit>) -> Limiter {
        self.also = also;
        self
    }

    fn window(&self, path: &str) -> Arc<Mutex<Window>> {
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(path.to_string())
            .or_insert_with(|| {
                let own = self.overrides.get(path).copied().unwrap_or(self.default);
                let limits = std::iter::once(own)
                    .chain(self.also.iter().copied())
                    .filter(RateLimit::binds)
                    .map(|l| (l, VecDeque::new()))
                    .collect();
                Arc::new(Mutex::new(Window { limits }))
            })
            .clone()
    }

    /// Waits until a request on `path` may be sent; returns the concurrency
    /// permit (hold it until the answer is read) and the time spent waiting
    /// for the rate budget.
    pub async fn admit(&self, path: &str) -> (OwnedSemaphorePermit, Duration) {
        let started = Instant::now();
        let window = self.window(path);
        let mut w = window.lock().await;
        loop {
            let now = Instant::now();
            // The latest moment any full window frees a place.
            let mut free_at: Option<Instant> = None;
            for (limit, sent) in &mut w.limits {
                let span = limit.window + self.margin;
                while sent.front().is_some_and(|t| now.duration_since(*t) >= span) {
                    sent.pop_front();
                }
                if (sent.len() as u64) >= u64::from(limit.calls) {
                    let at = sent.front().copied().unwrap_or(now) + span;
                    free_at = Some(free_at.map_or(at, |f| f.max(at)));
                }
            }
            match free_at {
                None => break,
                Some(at) => tokio::time::sleep(at.saturating_duration_since(now)).await,
            }
        }
        // Queueing behind other callers of the same path counts as budget wait.
        let waited = started.elapsed();
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the limiter never closes its semaphore");
        // The oldest entry may have aged out while we waited for the permit;
        // that only makes the window emptier, never fuller.
        let sent_at = Instant::now();
        for (limit, sent) in &mut w.limits {
            sent.push_back(sent_at);
            let cap = limit.calls as usize;
            while sent.len() > cap {
                sent.pop_front();
            }
        }
        (permit, waited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn never_more_than_n_sends_in_any_window() {
        let limiter = Arc::new(Limiter::new(
            8,
            RateLimit::new(5, Duration::from_millis(200)),
            HashMap::new(),
            Duration::ZERO,
        ));
        let start = Instant::now();
        let times = Arc::new(StdMutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..15 {
            let limiter = limiter.clone();
            let times = times.clone();
            tasks.push(tokio::spawn(async move {
                let _p = limiter.admit("/x").await;
                times.lock().unwrap().push(Instant::now());
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut times = times.lock().unwrap().clone();
        times.sort();
        for i in 5..times.len() {
            assert!(
                times[i].duration_since(times[i - 5]) >= Duration::from_millis(200),
                "send {i} came too soon"
            );
        }
        // 15 calls at 5 per 200 ms: the last batch starts after 400 ms.
        assert!(start.elapsed() >= Duration::from_millis(400));
    }

    #[tokio::test]
    async fn a_saturated_path_does_not_block_another_path() {
        let limiter = Arc::new(Limiter::new(
            2,
            RateLimit::new(1, Duration::from_secs(10)),
            HashMap::new(),
            Duration::ZERO,
        ));
        let (p, _) = limiter.admit("/slow").await;
        drop(p);
        let l2 = limiter.clone();
        // This one waits ~10 s for /slow's budget.
        let blocked = tokio::spawn(async move { l2.admit("/slow").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t = Instant::now();
        let _p = limiter.admit("/fast").await;
        assert!(t.elapsed() < Duration::from_millis(500));
        blocked.abort();
    }

    #[tokio::test]
    async fn a_path_stays_within_every_window_it_keeps() {
        // 3 per 100 ms, and also 4 per 400 ms: the fifth call waits for the
        // longer window although the short one has room again.
        let limiter = Limiter::new(
            8,
            RateLimit::new(3, Duration::from_millis(100)),
            HashMap::new(),
            Duration::ZERO,
        )
        .with_also(vec![RateLimit::new(4, Duration::from_millis(400))]);
        let t = Instant::now();
        for _ in 0..4 {
            drop(limiter.admit("/x").await);
        }
        let (_, waited) = limiter.admit("/x").await;
        assert!(
            t.elapsed() >= Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
    }

    #[tokio::test]
    async fn overrides_apply_per_path() {
        let mut o = HashMap::new();
        o.insert(
            "/tight".to_string(),
            RateLimit::new(1, Duration::from_millis(300)),
        );
        let limiter = Limiter::new(4, RateLimit::unlimited(), o, Duration::ZERO);
        let t = Instant::now();
        for _ in 0..20 {
            drop(limiter.admit("/free").await);
        }
        assert!(t.elapsed() < Duration::from_millis(100));
        drop(limiter.admit("/tight").await);
        let (_, waited) = limiter.admit("/tight").await;
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
    }
}
