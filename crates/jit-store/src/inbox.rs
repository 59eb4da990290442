//! The event inbox: org-change events stored when a receiver gets them and
//! applied later by whichever replica claims the org (see
//! [`crate::CorpStore::inbox_put`] and [`crate::CorpStore::inbox_claim`]),
//! and the named leases that give an org's inbox, or its DingTalk Stream
//! connection, to one replica at a time ([`crate::CorpStore::take_lease`]).

/// Where an inbox event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxState {
    /// Stored and not applied yet (possibly waiting for a retry).
    Pending,
    /// Applied through the engine.
    Applied,
    /// Given up after too many failed attempts (the next full sync is the
    /// backstop).
    Failed,
}

impl InboxState {
    /// The stored form (`pending`, `applied`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            InboxState::Pending => "pending",
            InboxState::Applied => "applied",
            InboxState::Failed => "failed",
        }
    }

    /// Reads the stored form back.
    pub fn parse(s: &str) -> Option<InboxState> {
        Some(match s {
            "pending" => InboxState::Pending,
            "applied" => InboxState::Applied,
            "failed" => InboxState::Failed,
            _ => return None,
        })
    }
}

/// An event as a receiver stores it, already verified and decrypted.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInboxEvent {
    /// The org element's fullName.
    pub corp: String,
    /// `wecom` or `dingtalk`.
    pub platform: String,
    /// WeCom `ChangeType` (`update_user`) or DingTalk `EventType` (`user_add_org`).
    pub event_type: String,
    /// What makes two deliveries the same event (unique per org).
    pub dedupe_key: String,
    /// The decrypted payload as JSON text.
    pub payload: String,
    /// When it was received, milliseconds since the epoch.
    pub received_at: i64,
}

/// What [`crate::CorpStore::inbox_put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxPut {
    /// Stored as a new event with this id.
    Stored(i64),
    /// An event with the same dedupe key is already stored (this id): a
    /// platform's retry, stored once.
    Duplicate(i64),
}

/// One stored event. Times are milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxRow {
    /// Store-assigned id; ids grow in arrival order.
    pub event_id: i64,
    /// The org element's fullName.
    pub corp: String,
    /// `wecom` or `dingtalk`.
    pub platform: String,
    /// The platform's event type.
    pub event_type: String,
    /// The dedupe key.
    pub dedupe_key: String,
    /// The decrypted payload as JSON text.
    pub payload: String,
    /// When it was received.
    pub received_at: i64,
    /// Where it is.
    pub state: InboxState,
    /// Claims so far (a claim whose holder died counts too).
    pub attempts: i64,
    /// Not claimed before this time (back-off after a failure).
    pub next_attempt_at: i64,
    /// The replica that claimed it last.
    pub claimed_by: Option<String>,
    /// Until when that claim holds.
    pub lease_until: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was applied.
    pub applied_at: Option<i64>,
    /// The run that applied it, when the apply recorded one.
    pub run_id: Option<i64>,
}

/// A replica asking for one org's next events.
#[derive(Debug, Clone)]
pub struct InboxClaim {
    /// The org element's fullName.
    pub corp: String,
    /// Who asks (a replica id, unique per process).
    pub holder: String,
    /// The claimer's clock.
    pub now: i64,
    /// How long the org's lease lasts before it must be renewed.
    pub lease_ms: i64,
    /// At most this many events.
    pub limit: usize,
}

/// How claimed events ended.
#[derive(Debug, Clone, PartialEq)]
pub enum InboxOutcome {
    /// Applied (by this run, when one was recorded).
    Applied {
        /// The run that applied them.
        run_id: Option<i64>,
    },
    /// Failed; claimable again from `next_attempt_at`.
    Retry {
        /// Why (no secrets).
        error: String,
        /// When to try again.
        next_attempt_at: i64,
    },
    /// Failed for good.
    Failed {
        /// Why (no secrets).
        error: String,
    },
}

/// A holder reporting how its claimed events ended.
#[derive(Debug, Clone)]
pub struct InboxEnd {
    /// The events (all claimed by `holder`).
    pub event_ids: Vec<i64>,
    /// Their holder; events another replica claimed since are left alone.
    pub holder: String,
    /// The holder's clock.
    pub now: i64,
    /// What happened.
    pub outcome: InboxOutcome,
}

/// How far behind an org's inbox is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxSummary {
    /// Events waiting to be applied.
    pub pending: u64,
    /// Events applied.
    pub applied: u64,
    /// Events given up.
    pub failed: u64,
    /// When the oldest pending event was received (its age is the lag).
    pub oldest_pending_at: Option<i64>,
    /// When the last event was applied.
    pub last_applied_at: Option<i64>,
}
