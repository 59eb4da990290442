//! The simulated network latency, kept to a fraction of a millisecond.
//!
//! tokio's timer counts in whole milliseconds: a 10 ms `sleep` ends after
//! 10–12.5 ms (11.3 ms median, measured in the 20,000-member benchmark), and
//! every sleep due in the same millisecond wakes at once. A simulator built
//! on it answered each call ~13% later than its configured latency, and in
//! bursts that queued for the CPU, so no client could reach the latency
//! floor the benchmarks compute from that latency.
//!
//! [`Latency`] waits on a thread of its own instead, which sleeps with the
//! operating system's high-resolution timer and releases each waiting call
//! when its own deadline passes: never before it, and on Linux within
//! about 0.1 ms after it.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Holds simulated calls until their latency has passed.
///
/// One thread per simulator, started on the first wait and stopped when the
/// `Latency` is dropped.
pub(crate) struct Latency {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    due: Condvar,
}

#[derive(Default)]
struct State {
    waiting: BinaryHeap<Reverse<Waiting>>,
    /// Breaks ties between equal deadlines (first come, first released).
    seq: u64,
    started: bool,
    stopped: bool,
}

struct Waiting {
    at: Instant,
    seq: u64,
    release: oneshot::Sender<()>,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl Latency {
    /// A latency clock whose thread starts on the first wait.
    pub(crate) fn new() -> Latency {
        Latency {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                due: Condvar::new(),
            }),
        }
    }

    /// Waits `d` from now: never less, and on Linux within about 0.1 ms more.
    pub(crate) async fn wait(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        let at = Instant::now() + d;
        let (release, released) = oneshot::channel();
        if !self.enqueue(at, release) {
            // No thread to be had: tokio's coarser timer still never ends a
            // wait early.
            tokio::time::sleep_until(at.into()).await;
            return;
        }
        // An error means the thread stopped (the simulator is shutting down):
        // the answer no longer matters.
        let _ = released.await;
    }

    /// Queues a release at `at`; false when no thread can release it.
    fn enqueue(&self, at: Instant, release: oneshot::Sender<()>) -> bool {
        let mut st = self.inner.lock();
        if st.stopped {
            // Dropping `release` ends the wait at once: the simulator is
            // shutting down.
            return true;
        }
        if !st.started && !self.start(&mut st) {
            return false;
        }
        let earliest = st.waiting.peek().is_none_or(|w| at < w.0.at);
        st.seq += 1;
        let seq = st.seq;
        st.waiting.push(Reverse(Waiting { at, seq, release }));
        if earliest {
            self.inner.due.notify_one();
        }
        true
    }

    fn start(&self, st: &mut State) -> bool {
        let inner = Arc::clone(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("jit-sim-latency".into())
            .spawn(move || inner.run());
        st.started = spawned.is_ok();
        st.started
    }
}

impl Drop for Latency {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Latency {
    /// Stops the thread and releases every waiting call (the simulator is
    /// shutting down); later waits return at once.
    pub(crate) fn stop(&self) {
        self.inner.lock().stopped = true;
        self.inner.due.notify_one();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the heap half-changed
        // (push and pop are the only changes), so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Releases every call whose deadline has passed, then sleeps until the
    /// next deadline or until an earlier one is added.
    fn run(&self) {
        let mut st = self.lock();
        loop {
            if st.stopped {
                // Dropping the senders releases whoever still waits.
                st.waiting.clear();
                return;
            }
            let now = Instant::now();
            while st.waiting.peek().is_some_and(|w| w.0.at <= now) {
                if let Some(Reverse(w)) = st.waiting.pop() {
                    let _ = w.release.send(());
                }
            }
            st = match st.waiting.peek().map(|w| w.0.at - now) {
                Some(left) => {
                    self.due
                        .wait_timeout(st, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.due.wait(st).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wait_never_ends_before_its_latency() {
        let latency = Arc::new(Latency::new());
        let waits = (0..64u64).map(|i| {
            let latency = Arc::clone(&latency);
            tokio::spawn(async move {
                let d = Duration::from_micros(2_000 + 97 * i);
                let t = Instant::now();
                latency.wait(d).await;
                (d, t.elapsed())
            })
        });
        for w in futures_util::future::join_all(waits).await {
            let (asked, took) = w.expect("wait task");
            assert!(took >= asked, "asked {asked:?}, released after {took:?}");
        }
    }

    // One thread runs the tasks, so they run in the order they are released.
    #[tokio::test]
    async fn calls_due_in_the_same_millisecond_are_released_in_deadline_order() {
        let latency = Arc::new(Latency::new());
        let order = Arc::new(Mutex::new(Vec::new()));
        // Deadlines 0.2 ms apart, added latest first: tokio's timer would
        // wake them together; here each is released at its own time.
        let waits = (0..5u64).rev().map(|i| {
            let (latency, order) = (Arc::clone(&latency), Arc::clone(&order));
            tokio::spawn(async move {
                latency.wait(Duration::from_micros(5_000 + 200 * i)).await;
                order.lock().expect("order").push(i);
            })
        });
        futures_util::future::join_all(waits).await;
        assert_eq!(*order.lock().expect("order"), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_stopped_clock_releases_its_waiters() {
        let latency = Arc::new(Latency::new());
        let waiting = {
            let latency = Arc::clone(&latency);
            tokio::spawn(async move { latency.wait(Duration::from_secs(3600)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // What dropping the simulator's last handle does.
        latency.stop();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiter was released")
            .expect("wait task");
    }
}
