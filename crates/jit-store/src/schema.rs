//! The schema, as one list of migrations shared by both backends.
//!
//! The SQL is written once in a subset both databases accept; the few
//! dialect differences are placeholders filled per backend:
//! - `{id_pk}`: an auto-assigned 64-bit primary key (SQLite's rowid alias
//!   `INTEGER PRIMARY KEY`, PostgreSQL's identity column);
//! - text columns are in byte order on PostgreSQL (`COLLATE "C"`, SQLite's
//!   default): key comparisons become `memcmp` instead of locale collation
//!   (a large share of bulk-insert time), and a `LIKE '/1/5/%'` subtree query
//!   can use the path index. Reads sort in Rust, so no order depends on it;
//! - `{without_rowid}`: SQLite stores the big composite-key tables as
//!   clustered B-trees (one tree per row instead of table + key index),
//!   which halves the work of bulk inserts.
//!
//! Migrations are append-only: a released migration is never edited.

/// One schema step.
pub(crate) struct Migration {
    /// Version reached after this step; strictly increasing from 1.
    pub version: i64,
    /// Statements separated by `;`.
    pub sql: &'static str,
}

/// Which database a statement is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// The version table. Created outside the numbered migrations so that the
/// version can be read before anything else is touched.
pub(crate) const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS jit_schema_version (
    version BIGINT PRIMARY KEY,
    applied_at BIGINT NOT NULL
)";

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: r#"
-- Foreign keys are declared on the small tables only. On the bulk tables
-- (members, memberships, bindings, run changes) each would cost an index
-- lookup per row on a 100,000-member apply; the store writes those rows
-- itself and checks membership -> department once per apply, set-based.

-- The local user pool, shared by every org of the app.
CREATE TABLE users (
    user_id {id_pk},
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Platform identities -> local user. DingTalk rows carry the unionId, which
-- is what identifies a person across DingTalk orgs.
CREATE TABLE auth_bindings (
    provider TEXT NOT NULL,
    corp_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    union_id TEXT,
    user_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (provider, corp_id, member_id)
) {without_rowid};
CREATE INDEX auth_bindings_union ON auth_bindings (provider, union_id) WHERE union_id IS NOT NULL;

CREATE TABLE corps (
    full_name TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    corp_type TEXT NOT NULL,
    provider TEXT NOT NULL,
    corp_id TEXT NOT NULL,
    last_sync_at BIGINT
);

CREATE TABLE depts (
    corp TEXT NOT NULL REFERENCES corps (full_name) ON DELETE CASCADE,
    dept_id BIGINT NOT NULL,
    parent_id BIGINT,
    name TEXT NOT NULL,
    sort_order BIGINT NOT NULL,
    -- Materialized ancestors, e.g. '/1/5/12/'; recomputed on every apply.
    path TEXT NOT NULL,
    -- JSON array of leader member ids, in platform order.
    leaders TEXT NOT NULL,
    PRIMARY KEY (corp, dept_id)
) {without_rowid};
CREATE INDEX depts_path ON depts (corp, path);

CREATE TABLE members (
    corp TEXT NOT NULL,
    member_id TEXT NOT NULL,
    user_id BIGINT,
    union_id TEXT,
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'offline', 'disabled', 'not_activated')),
    -- NULL = unknown (withheld or never fetched); '' = known to be empty.
    position TEXT,
    job_number TEXT,
    main_dept_id BIGINT,
    hired_date BIGINT,
    avatar TEXT,
    mobile TEXT,
    email TEXT,
    -- Raw extension attributes as JSON text (kept verbatim, key order too).
    extra TEXT,
    PRIMARY KEY (corp, member_id)
) {without_rowid};
CREATE INDEX members_user ON members (user_id);

CREATE TABLE dept_members (
    corp TEXT NOT NULL,
    member_id TEXT NOT NULL,
    dept_id BIGINT NOT NULL,
    -- Position in the member's department list (platform order).
    seq BIGINT NOT NULL,
    sort_order BIGINT NOT NULL,
    is_leader BOOLEAN NOT NULL,
    -- No foreign key to depts: a per-row check costs ~1.5 s per 200,000
    -- rows on PostgreSQL. Every apply instead runs one set-based check for
    -- memberships naming a missing department (and fails as a whole), and
    -- removing a department removes its memberships explicitly.
    PRIMARY KEY (corp, member_id, dept_id)
) {without_rowid};
CREATE INDEX dept_members_dept ON dept_members (corp, dept_id);

CREATE TABLE role_groups (
    corp TEXT NOT NULL REFERENCES corps (full_name) ON DELETE CASCADE,
    group_id TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (corp, group_id)
);

CREATE TABLE roles (
    corp TEXT NOT NULL REFERENCES corps (full_name) ON DELETE CASCADE,
    role_id TEXT NOT NULL,
    group_id TEXT,
    name TEXT NOT NULL,
    PRIMARY KEY (corp, role_id)
);

-- Role holders may lie outside a sync scope, so no reference to members.
CREATE TABLE role_members (
    corp TEXT NOT NULL,
    role_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    PRIMARY KEY (corp, role_id, member_id),
    FOREIGN KEY (corp, role_id) REFERENCES roles (corp, role_id) ON DELETE CASCADE
);
CREATE INDEX role_members_member ON role_members (corp, member_id);

CREATE TABLE admins (
    corp TEXT NOT NULL REFERENCES corps (full_name) ON DELETE CASCADE,
    member_id TEXT NOT NULL,
    level INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (corp, member_id)
);

CREATE TABLE signatures (
    corp TEXT NOT NULL,
    member_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (corp, member_id),
    FOREIGN KEY (corp, member_id) REFERENCES members (corp, member_id) ON DELETE CASCADE
);

-- Runs are recorded even for an org that never made it into the store
-- (a failed first sync), so no reference to corps.
CREATE TABLE sync_runs (
    run_id {id_pk},
    corp TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    counts TEXT NOT NULL,
    error TEXT,
    notes TEXT NOT NULL,
    rows_written BIGINT NOT NULL
);
CREATE INDEX sync_runs_corp ON sync_runs (corp, run_id);

CREATE TABLE run_changes (
    run_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    object TEXT NOT NULL,
    object_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) {without_rowid}
"#,
    },
    Migration {
        version: 2,
        sql: r#"
-- Role holdings and admins get an origin: 'upstream' (written by a sync's
-- plan) or 'local' (setUserRole / setAdmin). A sync replaces only upstream
-- rows, so local assignments survive it. One member may hold a role (or be
-- an admin) both ways, so the origin is part of the key; SQLite cannot
-- change a key in place, hence new tables. Existing rows came from syncs
-- or from local calls indistinguishably; they become 'upstream', which is
-- what they were treated as until now.
CREATE TABLE role_members_v2 (
    corp TEXT NOT NULL,
    role_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    origin TEXT NOT NULL CHECK (origin IN ('upstream', 'local')),
    PRIMARY KEY (corp, role_id, member_id, origin),
    FOREIGN KEY (corp, role_id) REFERENCES roles (corp, role_id) ON DELETE CASCADE
);
INSERT INTO role_members_v2 (corp, role_id, member_id, origin)
    SELECT corp, role_id, member_id, 'upstream' FROM role_members;
DROP TABLE role_members;
ALTER TABLE role_members_v2 RENAME TO role_members;
CREATE INDEX role_members_member ON role_members (corp, member_id);

CREATE TABLE admins_v2 (
    corp TEXT NOT NULL REFERENCES corps (full_name) ON DELETE CASCADE,
    member_id TEXT NOT NULL,
    level INTEGER NOT NULL,
    -- Position within the rows of the same origin.
    seq BIGINT NOT NULL,
    origin TEXT NOT NULL CHECK (origin IN ('upstream', 'local')),
    PRIMARY KEY (corp, origin, member_id)
);
INSERT INTO admins_v2 (corp, member_id, level, seq, origin)
    SELECT corp, member_id, level, seq, 'upstream' FROM admins;
DROP TABLE admins;
ALTER TABLE admins_v2 RENAME TO admins
"#,
    },
    Migration {
        version: 3,
        sql: r#"
-- Task firings: one row per (task, scheduled slot), whatever happened to it.
-- The unique key is what makes a slot run once across replicas: every
-- replica tries to insert the slot's row and only one insert succeeds.
-- state: running | succeeded | failed | skipped. A running row belongs to
-- `holder` until `lease_until` (milliseconds since the epoch); the holder
-- renews the lease while the call runs. Once it has expired another replica
-- may take the row over: `attempt` goes up and `note` says whose lease
-- expired, so a re-run is visible. Only the holder of the current attempt
-- can finish a row.
CREATE TABLE task_firings (
    firing_id {id_pk},
    task TEXT NOT NULL,
    scheduled_at BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'skipped')),
    holder TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    finished_at BIGINT,
    result TEXT,
    error TEXT,
    note TEXT,
    UNIQUE (task, scheduled_at)
);
CREATE INDEX task_firings_running ON task_firings (state, lease_until)
"#,
    },
    Migration {
        version: 4,
        sql: r#"
-- Login sessions (auths.loginTypes.*). Session tokens are signed, not
-- stored; the store holds only what every replica must agree on.
-- Signing keys, by generation: the newest signs, older ones still verify
-- the sessions they signed until those expire (rotation logs nobody out).
-- The generation is the key so that two replicas generating the first key
-- (or rotating) together insert one row: the loser's insert conflicts.
CREATE TABLE login_keys (
    generation BIGINT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
-- Sessions ended by logout before their expiry; a row is kept until the
-- session would have expired anyway.
CREATE TABLE login_revocations (
    session_id TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
-- Browser login flows started and not finished: the OAuth `state`, bound
-- to the browser that started it (a hash of its binding cookie), used once
-- (taken with DELETE ... RETURNING), expiring.
CREATE TABLE login_states (
    state_id TEXT PRIMARY KEY,
    login TEXT NOT NULL,
    browser_hash TEXT NOT NULL,
    redirect TEXT NOT NULL,
    expires_at BIGINT NOT NULL
)
"#,
    },
    Migration {
        version: 5,
        sql: r#"
-- The event inbox: org-change events (WeCom callbacks, DingTalk push and
-- Stream) stored when received and applied later by whichever replica
-- claims them. The dedupe key (DingTalk's eventId, a hash of a WeCom
-- event's decrypted payload) is unique per org: a platform's retry of a
-- stored event is recognised and stored once.
CREATE TABLE event_inbox (
    event_id {id_pk},
    corp TEXT NOT NULL,
    platform TEXT NOT NULL,
    event_type TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'applied', 'failed')),
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    claimed_by TEXT,
    lease_until BIGINT,
    last_error TEXT,
    applied_at BIGINT,
    run_id BIGINT,
    UNIQUE (corp, dedupe_key)
);
CREATE INDEX event_inbox_pending ON event_inbox (state, next_attempt_at);
CREATE INDEX event_inbox_corp ON event_inbox (corp, state, event_id);
-- Named leases: who applies an org's inbox, who holds an org's DingTalk
-- Stream connection. A lease whose holder stopped renewing it expires and
-- may be taken by another replica.
CREATE TABLE event_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    lease_until BIGINT NOT NULL
)
"#,
    },
    Migration {
        version: 6,
        sql: r#"
-- What started a run: a full sync ('sync') or a batch of platform events
-- ('event'). Runs recorded before are full syncs.
ALTER TABLE sync_runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'sync';
-- Reconciliation: for a full sync of an org that receives events, how many
-- differences it found that the events had missed (NULL otherwise).
ALTER TABLE sync_runs ADD COLUMN missed_by_events BIGINT
"#,
    },
    Migration {
        version: 7,
        sql: r#"
-- The platform API calls a run made (calls, retries, throttled answers,
-- failures, throttling waits) as a JSON object; NULL for runs recorded
-- before and runs that read nothing.
ALTER TABLE sync_runs ADD COLUMN calls TEXT
"#,
    },
];

/// Highest version the binary knows.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// The statements of a migration for one dialect, placeholders filled.
pub(crate) fn statements(m: &Migration, dialect: Dialect) -> Vec<String> {
    let (id_pk, text, without_rowid) = match dialect {
        Dialect::Sqlite => ("INTEGER PRIMARY KEY", " TEXT", "WITHOUT ROWID"),
        Dialect::Postgres => (
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            " TEXT COLLATE \"C\"",
            "",
        ),
    };
    // Comments go first: they may contain ';'.
    let sql: Vec<&str> = m
        .sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    sql.join("\n")
        .replace("{id_pk}", id_pk)
        .replace(" TEXT", text)
        .replace("{without_rowid}", without_rowid)
        .split(';')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
        }
    }

    #[test]
    fn rows_from_before_origins_become_upstream() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        for s in statements(&MIGRATIONS[0], Dialect::Sqlite) {
            c.execute_batch(&s).unwrap();
        }
        c.execute_batch(
            "INSERT INTO corps VALUES ('corps.A', 'A', 't', 'wecom', 'ww', NULL);
             INSERT INTO roles VALUES ('corps.A', 'r1', NULL, 'Role');
             INSERT INTO role_members VALUES ('corps.A', 'r1', 'alice');
             INSERT INTO admins VALUES ('corps.A', 'bob', 1, 0);",
        )
        .unwrap();
        for s in statements(&MIGRATIONS[1], Dialect::Sqlite) {
            c.execute_batch(&s).unwrap();
        }
        let origin = |sql: &str| c.query_row(sql, [], |r| r.get::<_, String>(0)).unwrap();
        assert_eq!(origin("SELECT origin FROM role_members"), "upstream");
        assert_eq!(origin("SELECT origin FROM admins"), "upstream");
        // The role's foreign key still holds on the rebuilt table.
        c.execute_batch("DELETE FROM roles").unwrap();
        let left: i64 = c
            .query_row("SELECT COUNT(*) FROM role_members", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn placeholders_are_filled_for_both_dialects() {
        for m in MIGRATIONS {
            for d in [Dialect::Sqlite, Dialect::Postgres] {
                for s in statements(m, d) {
                    assert!(!s.contains('{'), "unfilled placeholder in {s}");
                }
            }
        }
    }
}
