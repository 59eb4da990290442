//! Throw-away stores for tests and benchmarks of the crates above the store:
//! an SQLite file in a temporary folder, or a fresh schema in a PostgreSQL
//! database, dropped with the [`ScratchStore`]. Behind the `scratch`
//! feature, so production builds do not carry it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let place = jit_store::scratch::ScratchStore::sqlite();
//! let store = place.open().await;
//! assert!(store.list_runs("corps.Acme", 10).await.unwrap().is_empty());
//! # }
//! ```

use crate::CorpStore;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Where a scratch store lives; [`ScratchStore::open`] may be called more
/// than once for more handles (connections) on the same store.
pub enum ScratchStore {
    /// `org.db` in a temporary folder, removed on drop.
    Sqlite(tempfile::TempDir),
    /// A schema of its own in a PostgreSQL database, dropped on drop.
    Postgres {
        /// The database URL.
        url: String,
        /// The schema's name (unique per process and call).
        schema: String,
    },
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl ScratchStore {
    /// An SQLite store in a fresh temporary folder.
    pub fn sqlite() -> ScratchStore {
        ScratchStore::Sqlite(tempfile::tempdir().expect("a temporary folder can be made"))
    }

    /// A fresh schema named `{prefix}_{pid}_{n}` in the database at
    /// `JIT_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`,
    /// the test server the README names).
    pub fn postgres(prefix: &str) -> ScratchStore {
        let url = std::env::var("JIT_TEST_PG_URL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
        ScratchStore::Postgres {
            url,
            schema: format!(
                "{prefix}_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            ),
        }
    }

    /// Opens (and on first use migrates) the store; panics with the store's
    /// error, as a test would.
    pub async fn open(&self) -> Arc<dyn CorpStore> {
        let opened = match self {
            ScratchStore::Sqlite(dir) => {
                crate::open(&dir.path().join("org.db").to_string_lossy()).await
            }
            ScratchStore::Postgres { url, schema } => {
                crate::open_postgres_in_schema(url, schema).await
            }
        };
        opened.unwrap_or_else(|e| panic!("opening a scratch store: {e}"))
    }
}

impl Drop for ScratchStore {
    fn drop(&mut self) {
        if let ScratchStore::Postgres { url, schema } = self {
            // Drop may run inside a runtime: the schema is dropped on a
            // thread of its own with a runtime of its own.
            let (url, schema) = (url.clone(), schema.clone());
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(crate::drop_postgres_schema(&url, &schema)))
            })
            .join();
        }
    }
}
