//! The per-org sync lock ([`crate::CorpStore::lock_sync`]): what a held lock
//! is on each backend, and the pieces both backends share (polling, the
//! busy error, the message for runs left running).
//!
//! A lock must outlive nothing but its holder: if the process dies, the
//! operating system (file lock) or the server (session advisory lock) frees
//! it, so a crashed sync never blocks the next one.

use crate::api::{StoreError, StoreResult};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a waiting [`crate::CorpStore::lock_sync`] tries again.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// The error stored on runs found `running` when the lock is taken.
pub(crate) const INTERRUPTED: &str =
    "interrupted: the process running this sync stopped before it finished";

/// A held per-org sync lock. Dropping it releases the lock.
///
/// Take it before [`crate::CorpStore::begin_run`]: taking it marks every run
/// of the org still `running` as failed (its process is gone, or it would
/// still hold the lock).
pub struct SyncLock {
    corp: String,
    held: Held,
}

/// What keeps a lock held; dropping it releases the lock.
pub(crate) enum Held {
    /// An exclusive `flock` on a lock file beside the SQLite database,
    /// released when the file is closed (or the process dies).
    File {
        /// Keeps the lock; closed on drop.
        _file: std::fs::File,
        /// The lock file, for `Debug`.
        path: PathBuf,
    },
    /// An entry in [`MEMORY_LOCKS`] (in-memory SQLite stores).
    Memory {
        /// The store instance the entry belongs to.
        store: u64,
    },
    /// A dedicated PostgreSQL session holding `pg_advisory_lock(key)`. Closing
    /// the session releases it; the server does the same when the
    /// connection drops (a killed process).
    Postgres {
        /// The session; dropping it closes the connection (and frees the lock).
        session: tokio_postgres::Client,
        /// The advisory-lock key, for `Debug`.
        key: i64,
    },
}

impl SyncLock {
    pub(crate) fn new(corp: &str, held: Held) -> SyncLock {
        SyncLock {
            corp: corp.to_string(),
            held,
        }
    }

    /// The org (element fullName) this lock is for.
    pub fn corp(&self) -> &str {
        &self.corp
    }

    /// Whether the lock was lost while held: on PostgreSQL its session
    /// ended (a database restart, a failover, a terminated backend), and the
    /// server released the advisory lock with it, so another holder may
    /// have it now. A holder that finds it lost must stop acting as the
    /// org's one syncer (take the lock again before writing). The store's
    /// own operations reconnect; a lock cannot, since another holder may
    /// have taken it in between. File and in-memory locks (SQLite) end only
    /// with the guard or the process: never lost.
    pub fn is_lost(&self) -> bool {
        match &self.held {
            Held::Postgres { session, .. } => session.is_closed(),
            Held::File { .. } | Held::Memory { .. } => false,
        }
    }
}

impl std::fmt::Debug for SyncLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("SyncLock");
        d.field("corp", &self.corp);
        match &self.held {
            Held::File { path, .. } => d.field("file", path),
            Held::Memory { store } => d.field("memory_store", store),
            Held::Postgres { key, .. } => d.field("advisory_key", key),
        };
        d.finish()
    }
}

impl Drop for SyncLock {
    fn drop(&mut self) {
        if let Held::Memory { store } = &self.held {
            memory_locks().remove(&(*store, self.corp.clone()));
        }
        // File and Postgres release by closing what they hold, which the
        // fields' own drops do.
    }
}

/// Held locks of in-memory SQLite stores: (store instance, corp).
static MEMORY_LOCKS: Mutex<Option<HashSet<(u64, String)>>> = Mutex::new(None);

/// A guard-free view of [`MEMORY_LOCKS`]; a poisoned table is still a
/// valid table (inserts and removes cannot be half done).
fn memory_locks() -> MemoryTable {
    MemoryTable(MEMORY_LOCKS.lock().unwrap_or_else(|p| p.into_inner()))
}

struct MemoryTable(std::sync::MutexGuard<'static, Option<HashSet<(u64, String)>>>);

impl MemoryTable {
    fn insert(&mut self, key: (u64, String)) -> bool {
        self.0.get_or_insert_with(HashSet::new).insert(key)
    }
    fn remove(&mut self, key: &(u64, String)) {
        if let Some(set) = self.0.as_mut() {
            set.remove(key);
        }
    }
}

/// Takes the in-memory lock of `corp` in store instance `store`, if free.
pub(crate) fn try_memory_lock(store: u64, corp: &str) -> Option<Held> {
    memory_locks()
        .insert((store, corp.to_string()))
        .then_some(Held::Memory { store })
}

/// The lock file of `corp` beside the database `db`:
/// `<db>.sync-<corp>.lock`, the corp name reduced to `[A-Za-z0-9._-]` (with
/// a hash of the real name appended when anything was replaced, so that two
/// names never share a file).
pub(crate) fn lock_file_path(db: &Path, corp: &str) -> PathBuf {
    let clean: String = corp
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = if clean == corp {
        clean
    } else {
        format!("{clean}-{:016x}", crate::logic::lock_key(&[corp]) as u64)
    };
    let mut file = db.as_os_str().to_owned();
    file.push(format!(".sync-{name}.lock"));
    PathBuf::from(file)
}

/// Tries once to take the file lock at `path` (creating the file).
/// `Ok(None)`: another holder has it.
pub(crate) fn try_file_lock(path: &Path) -> std::io::Result<Option<Held>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Held::File {
            _file: file,
            path: path.to_path_buf(),
        })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Retries `attempt` every [`POLL`] until it yields a lock or `wait` has
/// passed (at least one attempt is made). `Ok(None)`: still busy.
pub(crate) async fn poll<T, F, Fut>(wait: Duration, mut attempt: F) -> StoreResult<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<Option<T>>>,
{
    let deadline = Instant::now() + wait;
    loop {
        if let Some(held) = attempt().await? {
            return Ok(Some(held));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}

/// The busy error, from the newest `running` run of the corp (if any).
pub(crate) fn busy(corp: &str, newest_running: Option<(i64, i64)>) -> StoreError {
    StoreError::SyncBusy {
        corp: corp.to_string(),
        run_id: newest_running.map(|(id, _)| id),
        started_at: newest_running.map(|(_, at)| at).filter(|at| *at > 0),
    }
}

/// The parenthesis of the busy message: what is known of the running run.
pub(crate) fn busy_detail(run_id: Option<i64>, started_at: Option<i64>) -> String {
    let mut parts = Vec::new();
    if let Some(id) = run_id {
        parts.push(format!("run {id}"));
    }
    if let Some(at) = started_at {
        parts.push(format!("started at {}", utc_timestamp(at)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC, seconds).
pub(crate) fn utc_timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_can_move_between_threads_and_tasks() {
        fn send_sync<T: Send + Sync + std::fmt::Debug>() {}
        send_sync::<SyncLock>();
    }

    #[test]
    fn timestamps_are_utc_seconds() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(1_700_000_000_999), "2023-11-14T22:13:20Z");
        assert_eq!(utc_timestamp(1_803_670_803_000), "2027-02-26T19:40:03Z");
        assert_eq!(utc_timestamp(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn busy_message_leaves_out_what_is_unknown() {
        let msg = |run_id, started_at| {
            StoreError::SyncBusy {
                corp: "corps.X".into(),
                run_id,
                started_at,
            }
            .to_string()
        };
        assert_eq!(
            msg(Some(12), Some(1_700_000_000_000)),
            "a sync of corps.X is already running (run 12, started at 2023-11-14T22:13:20Z)"
        );
        assert_eq!(
            msg(Some(12), None),
            "a sync of corps.X is already running (run 12)"
        );
        assert_eq!(msg(None, None), "a sync of corps.X is already running");
    }

    #[test]
    fn lock_files_sit_beside_the_database_one_per_corp() {
        let db = Path::new("/data/.jit/org.db");
        assert_eq!(
            lock_file_path(db, "corps.Acme"),
            Path::new("/data/.jit/org.db.sync-corps.Acme.lock")
        );
        let odd = lock_file_path(db, "corps/Acme");
        let other = lock_file_path(db, "corps:Acme");
        assert!(odd
            .to_str()
            .unwrap()
            .starts_with("/data/.jit/org.db.sync-corps_Acme-"));
        assert_ne!(
            odd, other,
            "names that clean up alike still get their own file"
        );
    }
}
