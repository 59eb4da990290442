//! A few PostgreSQL sessions per store, opened when needed and replaced
//! when the server has closed them.
//!
//! One session per store made every operation fail after a database restart
//! until the process restarted. Now a session found closed when taken is
//! dropped; and an operation whose first statement finds the session gone
//! (the server ended it while it sat idle, before anything was sent) runs
//! again on a new one: reads always, writes while their transaction had not
//! begun. A transaction that loses its session midway still fails with
//! [`crate::StoreErrorKind::ConnectionLost`] (the server rolls it back, so
//! nothing of it is kept), and the next operation opens a new session.
//!
//! The sync lock does not use the pool: each lock is a session of its own
//! (see [`crate::CorpStore::lock_sync`]).

use super::tls::Target;
use crate::api::{StoreError, StoreResult};
use std::sync::Mutex;
use tokio_postgres::Client;

/// At most this many sessions per store: operations beyond that wait for
/// one to be free. A handful is enough for a `jit serve` replica (writes of
/// one org are serialized by its sync lock anyway) and keeps many replicas
/// well under the server's `max_connections`.
pub(crate) const SIZE: usize = 4;

/// The sessions of one store.
pub(crate) struct Pool {
    /// Where and how to connect (may hold a password: never in a message).
    pub(crate) target: Target,
    /// The store's location, without password, for messages.
    location: String,
    /// Run on every new session: the store's `search_path`, when its
    /// tables live in a schema of their own.
    setup: Option<String>,
    /// Open sessions not in use.
    idle: Mutex<Vec<Client>>,
    /// One permit per session that may be in use.
    permits: tokio::sync::Semaphore,
}

/// A session taken from the pool; given back when dropped, unless closed.
pub(crate) struct Conn<'a> {
    /// `None` once discarded.
    client: Option<Client>,
    pool: &'a Pool,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Pool {
    /// A pool holding `first` (the session that migrated the store).
    pub(crate) fn new(
        target: Target,
        location: String,
        setup: Option<String>,
        first: Client,
    ) -> Pool {
        Pool {
            target,
            location,
            setup,
            idle: Mutex::new(vec![first]),
            permits: tokio::sync::Semaphore::new(SIZE),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        // A poisoned list is still a list of sessions.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A session: an idle one still open, else a new one.
    pub(crate) async fn get(&self) -> StoreResult<Conn<'_>> {
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        let idle = loop {
            match self.idle().pop() {
                Some(c) if c.is_closed() => continue,
                other => break other,
            }
        };
        let client = match idle {
            Some(c) => c,
            None => self.open().await?,
        };
        Ok(Conn {
            client: Some(client),
            pool: self,
            _permit: permit,
        })
    }

    /// A new session, after one was found lost. The idle ones are dropped
    /// too: what ended one (a restart, a failover) most likely ended them
    /// all, and each would cost an operation a failed attempt.
    pub(crate) async fn fresh(&self) -> StoreResult<Conn<'_>> {
        self.idle().clear();
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        Ok(Conn {
            client: Some(self.open().await?),
            pool: self,
            _permit: permit,
        })
    }

    async fn open(&self) -> StoreResult<Client> {
        let client = super::connect(&self.target, &self.location).await?;
        if let Some(setup) = &self.setup {
            client
                .batch_execute(setup)
                .await
                .map_err(|e| StoreError::Open {
                    location: self.location.clone(),
                    message: "select the store's schema".to_string(),
                    cause: Some(e.into()),
                })?;
        }
        Ok(client)
    }
}

impl Conn<'_> {
    /// Closes the session instead of giving it back (it was lost, or is in
    /// a state the next user must not inherit).
    pub(crate) fn discard(&mut self) {
        self.client = None;
    }
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a discarded session is not used again")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("a discarded session is not used again")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            if !c.is_closed() {
                self.pool.idle().push(c);
            }
        }
    }
}
