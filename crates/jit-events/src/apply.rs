//! Applying a batch of one org's events through the sync engine.
//!
//! An event only names what changed (WeCom's `update_user` carries the
//! changed fields at most, DingTalk's events carry ids only), so nothing in
//! a payload is stored as such: [`apply_events`] collects the objects the
//! batch names ([`Targets`]), reads each of them from the platform now
//! (`user/get`, `department/get`, `tag/get`, role holders, the admin list)
//! and hands the engine the stored org with those objects replaced
//! ([`jit_sync::ChangeSource`]). The engine plans, checks and applies that
//! in one transaction under the org's sync lock and records it as a run of
//! kind `event`, exactly as a full sync records its own.
//!
//! Because every object is read as it is now, the order in which events
//! arrive and how often one arrives do not matter: a duplicate or a late
//! retry reads the same current state and plans nothing new.
//!
//! A burst (a department of 2,000 people moved at once) is coalesced: the
//! objects named are deduplicated, and members are read by their
//! department's member list once [`COALESCE_MIN`] of them sit in one
//! department, instead of one `user/get` each.

mod read;
mod targets;

pub use read::EventReader;
pub use targets::Targets;

use jit_corps::{CorpClient, CorpElement};
use jit_org::{ChangeCounts, CorpRecord, Platform};
use jit_store::CorpStore;
use jit_sync::{run_change_sync, NoProgress, SyncError, SyncOptions, SyncReport};
use serde_json::Value;

/// Once this many of a batch's members sit in one department, the
/// department's member list is read (one call per page) instead of one
/// `user/get` per member.
pub const COALESCE_MIN: usize = 4;

/// One event as the inbox hands it over, already verified and decrypted.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxEvent {
    /// The inbox row's id.
    pub id: i64,
    /// The org element's fullName.
    pub corp: String,
    /// The platform that sent it.
    pub platform: Platform,
    /// WeCom `ChangeType` (e.g. `update_user`; the `Event` when there is no
    /// ChangeType, e.g. `change_app_admin`) or DingTalk `EventType` (e.g.
    /// `user_add_org`).
    pub event_type: String,
    /// WeCom: the XML's fields as a JSON object of strings. DingTalk: the
    /// decrypted JSON (HTTP push) or the Stream frame's data (same fields).
    pub payload: Value,
    /// When it was received, milliseconds since the epoch.
    pub received_at_ms: i64,
    /// How many times applying it was tried before.
    pub attempts: u32,
}

/// What [`apply_events`] needs: the store, the org and how to read it.
pub struct ApplyContext<'a> {
    /// The app's store.
    pub store: &'a dyn CorpStore,
    /// The org the events belong to.
    pub corp: CorpRecord,
    /// The org's sync options (safety limits, what to read).
    pub options: SyncOptions,
    /// Reads the objects events name.
    pub reader: EventReader,
}

impl<'a> ApplyContext<'a> {
    /// The context of an org element of a built-in org Type: its record,
    /// its config's sync options and its platform client. A batch waits up
    /// to 10 s for a running sync of the org (a full sync holds the lock
    /// while it reads) before it fails as busy (retryable).
    pub fn for_element(
        element: &CorpElement,
        store: &'a dyn CorpStore,
    ) -> Result<ApplyContext<'a>, ApplyError> {
        let client = element.client().map_err(|e| ApplyError::Client {
            corp: element.full_name().to_string(),
            message: e.to_string(),
        })?;
        let mut options = element.sync_options();
        options.lock_wait_secs = options.lock_wait_secs.max(10.0);
        Ok(ApplyContext {
            store,
            corp: element.corp_record(),
            options,
            reader: EventReader::new(client),
        })
    }

    /// A context from parts (a host that built its client itself).
    pub fn new(
        store: &'a dyn CorpStore,
        corp: CorpRecord,
        options: SyncOptions,
        client: CorpClient,
    ) -> ApplyContext<'a> {
        ApplyContext {
            store,
            corp,
            options,
            reader: EventReader::new(client),
        }
    }
}

/// An event of the batch that names nothing to read (a `check_url`, an
/// event type this runtime does not sync) and was passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredEvent {
    /// The inbox row's id.
    pub id: i64,
    /// Its type.
    pub event_type: String,
}

/// What a batch did.
#[derive(Debug, Clone)]
pub struct ApplyOutcome {
    /// The run of kind `event` recorded for the batch and its report;
    /// `None` when no event of the batch named anything to read.
    pub report: Option<SyncReport>,
    /// Events passed over.
    pub ignored: Vec<IgnoredEvent>,
    /// Platform calls spent reading.
    pub api_calls: u64,
}

impl ApplyOutcome {
    /// Change lines per kind of the run (empty without a run).
    pub fn counts(&self) -> ChangeCounts {
        self.report
            .as_ref()
            .map(|r| r.counts.clone())
            .unwrap_or_default()
    }
}

/// Why a batch was not applied. Nothing of the batch was written but,
/// where one was recorded, its run.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// An event's payload cannot be read (a member event without a user id,
    /// an id that is not a number ...). Permanent: the same payload will
    /// never apply; the rest of the batch applies without it.
    #[error("event {event_id} ({event_type}) for {corp} is malformed: {reason}")]
    Malformed {
        /// Org fullName.
        corp: String,
        /// The inbox row.
        event_id: i64,
        /// Its type.
        event_type: String,
        /// What is wrong, without the payload's values.
        reason: String,
    },
    /// The event belongs to another org or platform than the context's.
    #[error("event {event_id} is for {event_corp} ({platform}), not for {corp}")]
    WrongOrg {
        /// The context's org.
        corp: String,
        /// The inbox row.
        event_id: i64,
        /// The event's org.
        event_corp: String,
        /// The event's platform.
        platform: Platform,
    },
    /// The org's platform client could not be built from its config.
    #[error("cannot read {corp} for its events: {message}")]
    Client {
        /// Org fullName.
        corp: String,
        /// Why (no secret).
        message: String,
    },
    /// The engine did not apply: reading failed, the org's sync lock was
    /// busy, the store failed, or the safety checks refused the plan.
    #[error(transparent)]
    Sync(Box<SyncError>),
}

impl From<SyncError> for ApplyError {
    fn from(e: SyncError) -> ApplyError {
        ApplyError::Sync(Box::new(e))
    }
}

impl ApplyError {
    /// Whether applying the same events later may succeed: a failed read,
    /// a busy lock or a failing store. A malformed event, a wrong org, a
    /// broken config and a safety refusal are permanent until someone acts.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApplyError::Sync(e) => matches!(
                **e,
                SyncError::Fetch { .. } | SyncError::Busy(_) | SyncError::Store { .. }
            ),
            ApplyError::Malformed { .. }
            | ApplyError::WrongOrg { .. }
            | ApplyError::Client { .. } => false,
        }
    }

    /// The one event this error is about (malformed or misaddressed), so a
    /// worker can set it aside and apply the rest.
    pub fn event_id(&self) -> Option<i64> {
        match self {
            ApplyError::Malformed { event_id, .. } | ApplyError::WrongOrg { event_id, .. } => {
                Some(*event_id)
            }
            _ => None,
        }
    }
}

/// Checks one event's payload without reading anything: what a receiver
/// can call before persisting it.
pub fn check_event(event: &InboxEvent) -> Result<(), ApplyError> {
    Targets::default().add(event).map(|_| ())
}

/// Applies a batch of one org's events (in arrival order) through the
/// engine: reads what they name, plans, checks and applies it in one
/// transaction recorded as a run of kind `event`.
///
/// A malformed or misaddressed event fails the whole batch before anything
/// is read ([`ApplyError::event_id`] names it); a failed read, a busy lock
/// or a failing store changes nothing and is retryable
/// ([`ApplyError::is_retryable`]).
pub async fn apply_events(
    ctx: &ApplyContext<'_>,
    events: &[InboxEvent],
) -> Result<ApplyOutcome, ApplyError> {
    let mut targets = Targets::default();
    let mut ignored = Vec::new();
    let platform = ctx.reader.platform();
    for e in events {
        if e.corp != ctx.corp.full_name || e.platform != platform {
            return Err(ApplyError::WrongOrg {
                corp: ctx.corp.full_name.clone(),
                event_id: e.id,
                event_corp: e.corp.clone(),
                platform: e.platform,
            });
        }
        if !targets.add(e)? {
            ignored.push(IgnoredEvent {
                id: e.id,
                event_type: e.event_type.clone(),
            });
        }
    }
    if targets.is_empty() {
        return Ok(ApplyOutcome {
            report: None,
            ignored,
            api_calls: 0,
        });
    }
    let source = ctx.reader.changes(targets);
    let report = run_change_sync(&source, ctx.store, &ctx.corp, &ctx.options, &NoProgress).await?;
    let api_calls = report.fetch_stats.total_calls();
    Ok(ApplyOutcome {
        report: Some(report),
        ignored,
        api_calls,
    })
}
