//! Page-sized reads of a stored org, for consoles and reports: one level of
//! the department tree with counts and leaders, a page of a department's
//! members (leaders first), a search, a person's memberships in every org,
//! a page of a run's change lines filtered by kind and text.
//!
//! Each read touches only the rows its answer needs, never a whole org
//! snapshot, so it stays fast on a 100,000-member org. The statements are
//! written once (the same text on both backends, like the firing
//! statements) and run through one backend primitive,
//! [`CorpStore::read_rows`]; everything else here is shared.

use crate::api::{CorpStore, StoreResult};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One of the store's own read statements. Only this crate makes them, so
/// [`CorpStore::read_rows`] runs no text from outside.
#[derive(Debug, Clone, Copy)]
pub struct ReadSql {
    pub(crate) op: &'static str,
    sql: &'static str,
}

impl ReadSql {
    /// The statement for a backend: `{LIKE}` is a case-insensitive `LIKE`
    /// (SQLite's `LIKE` is, for ASCII; PostgreSQL's `ILIKE`). Lower-casing
    /// every row instead costs a 100,000-member search three times as much.
    pub(crate) fn text(&self, dialect: crate::schema::Dialect) -> std::borrow::Cow<'static, str> {
        match dialect {
            crate::schema::Dialect::Sqlite => self.sql.replace("{LIKE}", "LIKE").into(),
            crate::schema::Dialect::Postgres => self.sql.replace("{LIKE}", "ILIKE").into(),
        }
    }
}

/// A parameter of a [`ReadSql`] statement (`$1`, `$2`, ... in order).
#[derive(Debug, Clone)]
pub enum ReadParam {
    /// A 64-bit integer.
    Int(i64),
    /// Text.
    Text(String),
}

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer (booleans are 0 and 1).
    Int(i64),
    /// Text.
    Text(String),
}

impl Cell {
    fn int(&self) -> i64 {
        match self {
            Cell::Int(i) => *i,
            Cell::Text(t) => t.parse().unwrap_or(0),
            Cell::Null => 0,
        }
    }
    fn opt_int(&self) -> Option<i64> {
        match self {
            Cell::Null => None,
            c => Some(c.int()),
        }
    }
    fn text(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Null => String::new(),
        }
    }
    fn opt_text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            c => Some(c.text()),
        }
    }
}

/// Members of an org by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgCounts {
    /// Member count per status (`active`, `offline`, `disabled`, `not_activated`).
    pub members: BTreeMap<String, u64>,
    /// Stored departments.
    pub depts: u64,
}

/// A department as one node of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeptNode {
    /// Department id.
    pub dept_id: i64,
    /// Parent id (`None` at the top).
    pub parent_id: Option<i64>,
    /// Name.
    pub name: String,
    /// Sub-departments.
    pub children: u64,
    /// Members who are not offline, directly in this department. (A
    /// branch's total is not counted: on a 100,000-member org that reads
    /// every membership below the node, seconds for the root.)
    pub members: u64,
    /// Leaders (member id, name), in platform order.
    pub leaders: Vec<(String, String)>,
}

/// A member as listed (department page, search).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRow {
    /// Member id in the org (WeCom userid, DingTalk userId).
    pub member_id: String,
    /// Name.
    pub name: String,
    /// `active`, `offline`, `disabled` or `not_activated`.
    pub status: String,
    /// Position, when known.
    pub position: Option<String>,
    /// The local user, once bound.
    pub user_id: Option<i64>,
    /// Whether the member leads the department listed (false in searches).
    pub leader: bool,
}

/// A page of a department's members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberPage {
    /// Members `offset..offset+limit`, leaders first.
    pub members: Vec<MemberRow>,
    /// Members of the department in all.
    pub total: u64,
}

/// What a search found in one org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchHits {
    /// Members whose name contains the text, or whose member id or mobile
    /// is it, by member id (so a common text stops at the limit early).
    pub members: Vec<MemberRow>,
    /// Departments whose name contains the text.
    pub depts: Vec<(i64, String)>,
}

/// A local user and where they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    /// The local user id.
    pub user_id: i64,
    /// The name the user was created with.
    pub name: String,
    /// When the user was created (ms since the epoch).
    pub created_at: i64,
    /// Platform identities bound to the user.
    pub bindings: Vec<Binding>,
    /// The user's membership in each org, by org fullName.
    pub memberships: Vec<Membership>,
}

/// A platform identity bound to a local user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    /// `wecom` or `dingtalk`.
    pub provider: String,
    /// The platform's corp id.
    pub corp_id: String,
    /// The member id there.
    pub member_id: String,
    /// DingTalk's unionId.
    pub union_id: Option<String>,
}

/// A person's membership in one org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    /// The org element.
    pub corp: String,
    /// Member id in the org.
    pub member_id: String,
    /// Name in the org.
    pub name: String,
    /// Status in the org.
    pub status: String,
    /// Position, when known.
    pub position: Option<String>,
    /// Mobile, when known.
    pub mobile: Option<String>,
    /// Email, when known.
    pub email: Option<String>,
    /// Departments (id, name, leads it), in the member's order.
    pub depts: Vec<(i64, String, bool)>,
    /// Roles (id, name, origin `upstream`/`local`).
    pub roles: Vec<(String, String, String)>,
    /// Admin rows (level, origin).
    pub admin: Vec<(i64, String)>,
}

/// A change line of a run that touched one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberChange {
    /// The run.
    pub run_id: i64,
    /// When the run started (ms since the epoch).
    pub started_at: i64,
    /// The run's outcome (`applied`, `dry_run`, `refused`, ...).
    pub outcome: String,
    /// What happened (`created`, `updated`, ...).
    pub kind: String,
    /// Why.
    pub reason: String,
}

/// Which change lines of a run to list.
#[derive(Debug, Clone, Default)]
pub struct ChangeFilter {
    /// Only this kind (`created`, `offlined`, ...); empty: every kind.
    pub kind: String,
    /// Only lines whose object id, reason or member name contains this
    /// (case-insensitive for ASCII letters); empty: every line.
    pub text: String,
    /// Lines to skip.
    pub offset: u64,
    /// Lines to return.
    pub limit: u64,
}

/// A change line of a run as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeLine {
    /// Position in the run.
    pub seq: i64,
    /// `dept`, `member`, `role_group`, `role` or `admin`.
    pub object: String,
    /// Object id.
    pub object_id: String,
    /// The member's current name, for member lines of stored members.
    pub name: Option<String>,
    /// What happened.
    pub kind: String,
    /// Why.
    pub reason: String,
}

/// A page of a run's change lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangePage {
    /// The lines of the page.
    pub lines: Vec<ChangeLine>,
    /// Lines matching the filter in all.
    pub total: u64,
}

/// The statements, one text for both backends.
mod sql {
    use super::ReadSql;

    const fn q(op: &'static str, sql: &'static str) -> ReadSql {
        ReadSql { op, sql }
    }

    pub const MEMBER_STATUS: ReadSql = q(
        "count members by status",
        "SELECT status, COUNT(*) FROM members WHERE corp = $1 GROUP BY status",
    );
    pub const DEPT_COUNT: ReadSql = q(
        "count departments",
        "SELECT COUNT(*) FROM depts WHERE corp = $1",
    );
    pub const TOPS: ReadSql = q(
        "read top departments",
        "SELECT d.dept_id FROM depts d WHERE d.corp = $1 AND (d.parent_id IS NULL OR NOT EXISTS \
         (SELECT 1 FROM depts p WHERE p.corp = d.corp AND p.dept_id = d.parent_id)) \
         ORDER BY d.sort_order, d.dept_id",
    );
    /// The tree's shape: children per parent (one pass over the departments).
    pub const CHILD_COUNTS: ReadSql = q(
        "count sub-departments",
        "SELECT parent_id, COUNT(*) FROM depts WHERE corp = $1 AND parent_id IS NOT NULL \
         GROUP BY parent_id",
    );

    macro_rules! nodes {
        ($where:literal) => {
            concat!(
                "SELECT d.dept_id, d.parent_id, d.name, d.path FROM depts d WHERE d.corp = $1 AND ",
                $where,
                " ORDER BY d.sort_order, d.dept_id"
            )
        };
    }
    // CROSS JOIN fixes SQLite's join order (departments first, then their
    // memberships, then the members): left to itself, without statistics,
    // it may walk every membership of the org. PostgreSQL plans it as an
    // inner join like any other.
    macro_rules! direct {
        ($where:literal) => {
            concat!(
                "SELECT m.dept_id, COUNT(*) FROM depts d CROSS JOIN dept_members m \
                 CROSS JOIN members p WHERE d.corp = $1 AND ",
                $where,
                " AND m.corp = d.corp AND m.dept_id = d.dept_id AND p.corp = m.corp \
                 AND p.member_id = m.member_id AND p.status <> 'offline' GROUP BY m.dept_id"
            )
        };
    }
    // The department's memberships come from its index (k); reading
    // is_leader takes the row itself (m), looked up by its whole key.
    macro_rules! leaders {
        ($where:literal) => {
            concat!(
                "SELECT d.dept_id, p.member_id, p.name FROM depts d CROSS JOIN dept_members k \
                 CROSS JOIN dept_members m CROSS JOIN members p WHERE d.corp = $1 AND ",
                $where,
                " AND k.corp = d.corp AND k.dept_id = d.dept_id AND m.corp = k.corp \
                 AND m.member_id = k.member_id AND m.dept_id = k.dept_id AND m.is_leader \
                 AND p.corp = m.corp AND p.member_id = m.member_id \
                 ORDER BY d.dept_id, m.sort_order, p.member_id"
            )
        };
    }
    pub const CHILDREN: ReadSql = q("read sub-departments", nodes!("d.parent_id = $2"));
    pub const ONE: ReadSql = q("read a department", nodes!("d.dept_id = $2"));
    pub const CHILDREN_DIRECT: ReadSql = q(
        "count members of sub-departments",
        direct!("d.parent_id = $2"),
    );
    pub const ONE_DIRECT: ReadSql = q("count members of a department", direct!("d.dept_id = $2"));
    pub const CHILDREN_LEADERS: ReadSql = q(
        "read leaders of sub-departments",
        leaders!("d.parent_id = $2"),
    );
    pub const ONE_LEADERS: ReadSql = q("read leaders of a department", leaders!("d.dept_id = $2"));
    pub const DEPT_MEMBERS: ReadSql = q(
        "read a page of a department's members",
        "SELECT p.member_id, p.name, p.status, p.position, p.user_id, m.is_leader \
         FROM (SELECT member_id FROM dept_members WHERE corp = $1 AND dept_id = $2) k \
         CROSS JOIN dept_members m CROSS JOIN members p \
         WHERE m.corp = $1 AND m.member_id = k.member_id AND m.dept_id = $2 \
         AND p.corp = $1 AND p.member_id = k.member_id \
         ORDER BY m.is_leader DESC, m.sort_order, p.member_id LIMIT $3 OFFSET $4",
    );
    pub const DEPT_MEMBER_COUNT: ReadSql = q(
        "count a department's members",
        "SELECT COUNT(*) FROM dept_members WHERE corp = $1 AND dept_id = $2",
    );
    pub const SEARCH_MEMBERS: ReadSql = q(
        "search members",
        "SELECT p.member_id, p.name, p.status, p.position, p.user_id, 0 FROM members p \
         WHERE p.corp = $1 AND (p.name {LIKE} $2 ESCAPE '\\' OR p.member_id = $3 \
         OR p.mobile = $3) ORDER BY p.member_id LIMIT $4",
    );
    pub const SEARCH_DEPTS: ReadSql = q(
        "search departments",
        "SELECT dept_id, name FROM depts WHERE corp = $1 AND name {LIKE} $2 ESCAPE '\\' \
         ORDER BY name, dept_id LIMIT $3",
    );
    pub const USER: ReadSql = q(
        "read a local user",
        "SELECT user_id, name, created_at FROM users WHERE user_id = $1",
    );
    pub const BINDINGS: ReadSql = q(
        "read a user's bindings",
        "SELECT provider, corp_id, member_id, union_id FROM auth_bindings WHERE user_id = $1 \
         ORDER BY provider, corp_id, member_id",
    );
    pub const MEMBERSHIPS: ReadSql = q(
        "read a user's memberships",
        "SELECT corp, member_id, name, status, position, mobile, email FROM members \
         WHERE user_id = $1 ORDER BY corp, member_id",
    );
    pub const MEMBER_DEPTS: ReadSql = q(
        "read a member's departments",
        "SELECT d.dept_id, d.name, m.is_leader FROM dept_members m JOIN depts d \
         ON d.corp = m.corp AND d.dept_id = m.dept_id \
         WHERE m.corp = $1 AND m.member_id = $2 ORDER BY m.seq",
    );
    pub const MEMBER_ROLES: ReadSql = q(
        "read a member's roles",
        "SELECT r.role_id, r.name, rm.origin FROM role_members rm JOIN roles r \
         ON r.corp = rm.corp AND r.role_id = rm.role_id \
         WHERE rm.corp = $1 AND rm.member_id = $2 ORDER BY r.name, r.role_id, rm.origin",
    );
    pub const MEMBER_ADMIN: ReadSql = q(
        "read a member's admin rows",
        "SELECT level, origin FROM admins WHERE corp = $1 AND member_id = $2 ORDER BY origin",
    );
    pub const MEMBER_CHANGES: ReadSql = q(
        "read the changes that touched a member",
        "SELECT r.run_id, r.started_at, r.outcome, c.kind, c.reason FROM run_changes c \
         JOIN sync_runs r ON r.run_id = c.run_id \
         WHERE r.corp = $1 AND c.object_id = $2 AND c.object = 'member' \
         ORDER BY r.run_id DESC, c.seq LIMIT $3",
    );

    /// A page of a run's lines of one kind (or all); names are joined for
    /// the page's lines only.
    pub const RUN_LINES: ReadSql = q(
        "read a page of a run's changes",
        "SELECT c.seq, c.object, c.object_id, p.name, c.kind, c.reason FROM \
         (SELECT seq, object, object_id, kind, reason FROM run_changes \
          WHERE run_id = $1 AND ($3 = '' OR kind = $3) ORDER BY seq LIMIT $4 OFFSET $5) c \
         LEFT JOIN members p ON p.corp = $2 AND p.member_id = c.object_id AND c.object = 'member' \
         ORDER BY c.seq",
    );
    pub const RUN_LINE_COUNT: ReadSql = q(
        "count a run's changes",
        "SELECT COUNT(*) FROM run_changes WHERE run_id = $1 AND ($2 = '' OR kind = $2)",
    );

    /// The lines of a run (of one kind, or all) whose id or reason contains
    /// the text, or that name a member whose name does (those members are
    /// found once, not joined per line).
    macro_rules! run_search {
        ($select:literal, $tail:literal) => {
            concat!(
                $select,
                " FROM run_changes WHERE run_id = $1 AND ($3 = '' OR kind = $3) \
                 AND (object_id {LIKE} $4 ESCAPE '\\' OR reason {LIKE} $4 ESCAPE '\\' \
                 OR (object = 'member' AND object_id IN (SELECT member_id FROM members \
                 WHERE corp = $2 AND name {LIKE} $4 ESCAPE '\\')))",
                $tail
            )
        };
    }
    pub const RUN_SEARCH: ReadSql = q(
        "search a run's changes",
        concat!(
            "SELECT c.seq, c.object, c.object_id, p.name, c.kind, c.reason FROM (",
            run_search!(
                "SELECT seq, object, object_id, kind, reason",
                " ORDER BY seq LIMIT $5 OFFSET $6"
            ),
            ") c LEFT JOIN members p ON p.corp = $2 AND p.member_id = c.object_id \
             AND c.object = 'member' ORDER BY c.seq"
        ),
    );
    pub const RUN_SEARCH_COUNT: ReadSql = q(
        "count a run's changes found",
        run_search!("SELECT COUNT(*)", ""),
    );
}

/// `%text%` for `{LIKE} … ESCAPE '\'`; the wildcards in `text` match
/// themselves.
fn contains_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

fn t(s: &str) -> ReadParam {
    ReadParam::Text(s.to_string())
}

fn int(n: impl TryInto<i64>) -> ReadParam {
    ReadParam::Int(n.try_into().unwrap_or(i64::MAX))
}

/// The number a `SELECT COUNT(*)` answered.
fn count(rows: Vec<Vec<Cell>>) -> u64 {
    rows.first().map_or(0, |r| r[0].int() as u64)
}

fn member_row(r: &[Cell]) -> MemberRow {
    MemberRow {
        member_id: r[0].text(),
        name: r[1].text(),
        status: r[2].text(),
        position: r[3].opt_text(),
        user_id: r[4].opt_int(),
        leader: r[5].int() != 0,
    }
}

impl dyn CorpStore {
    async fn rows(&self, q: ReadSql, params: Vec<ReadParam>) -> StoreResult<Vec<Vec<Cell>>> {
        self.read_rows(q, &params).await
    }

    /// Members by status and the number of departments of an org.
    pub async fn org_counts(&self, corp: &str) -> StoreResult<OrgCounts> {
        let members = self
            .rows(sql::MEMBER_STATUS, vec![t(corp)])
            .await?
            .iter()
            .map(|r| (r[0].text(), r[1].int() as u64))
            .collect();
        let depts = self.rows(sql::DEPT_COUNT, vec![t(corp)]).await?;
        Ok(OrgCounts {
            members,
            depts: depts.first().map_or(0, |r| r[0].int() as u64),
        })
    }

    /// The top departments of an org (those without a stored parent), or
    /// the sub-departments of `parent`, with counts and leaders.
    pub async fn dept_children(
        &self,
        corp: &str,
        parent: Option<i64>,
    ) -> StoreResult<Vec<DeptNode>> {
        match parent {
            Some(p) => {
                self.nodes(
                    corp,
                    p,
                    [sql::CHILDREN, sql::CHILDREN_DIRECT, sql::CHILDREN_LEADERS],
                )
                .await
            }
            None => {
                let mut out = Vec::new();
                for top in self.rows(sql::TOPS, vec![t(corp)]).await? {
                    out.extend(self.dept(corp, top[0].int()).await?);
                }
                Ok(out)
            }
        }
    }

    /// One department with counts and leaders; `None` if not stored.
    pub async fn dept(&self, corp: &str, dept_id: i64) -> StoreResult<Option<DeptNode>> {
        Ok(self
            .nodes(corp, dept_id, [sql::ONE, sql::ONE_DIRECT, sql::ONE_LEADERS])
            .await?
            .pop())
    }

    async fn nodes(&self, corp: &str, key: i64, q: [ReadSql; 3]) -> StoreResult<Vec<DeptNode>> {
        let params = || vec![t(corp), int(key)];
        let rows = self.rows(q[0], params()).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let children: HashMap<i64, u64> = self
            .rows(sql::CHILD_COUNTS, vec![t(corp)])
            .await?
            .iter()
            .map(|r| (r[0].int(), r[1].int() as u64))
            .collect();
        let direct: HashMap<i64, u64> = self
            .rows(q[1], params())
            .await?
            .iter()
            .map(|r| (r[0].int(), r[1].int() as u64))
            .collect();
        let mut leaders: HashMap<i64, Vec<(String, String)>> = HashMap::new();
        for r in self.rows(q[2], params()).await? {
            leaders
                .entry(r[0].int())
                .or_default()
                .push((r[1].text(), r[2].text()));
        }
        Ok(rows
            .iter()
            .map(|r| {
                let id = r[0].int();
                DeptNode {
                    dept_id: id,
                    parent_id: r[1].opt_int(),
                    name: r[2].text(),
                    children: children.get(&id).copied().unwrap_or(0),
                    members: direct.get(&id).copied().unwrap_or(0),
                    leaders: leaders.remove(&id).unwrap_or_default(),
                }
            })
            .collect())
    }

    /// Members `offset..offset+limit` of a department, leaders first, then
    /// in the platform's order.
    pub async fn dept_members(
        &self,
        corp: &str,
        dept_id: i64,
        offset: u64,
        limit: u64,
    ) -> StoreResult<MemberPage> {
        let members = self
            .rows(
                sql::DEPT_MEMBERS,
                vec![t(corp), int(dept_id), int(limit), int(offset)],
            )
            .await?
            .iter()
            .map(|r| member_row(r))
            .collect();
        let total = self
            .rows(sql::DEPT_MEMBER_COUNT, vec![t(corp), int(dept_id)])
            .await?;
        Ok(MemberPage {
            members,
            total: total.first().map_or(0, |r| r[0].int() as u64),
        })
    }

    /// Members whose name contains `text` (ASCII case-insensitive) or whose
    /// member id or mobile is `text`, and departments whose name contains
    /// it; at most `limit` of each.
    pub async fn search_org(&self, corp: &str, text: &str, limit: u64) -> StoreResult<SearchHits> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(SearchHits {
                members: Vec::new(),
                depts: Vec::new(),
            });
        }
        let pattern = contains_pattern(text);
        let members = self
            .rows(
                sql::SEARCH_MEMBERS,
                vec![t(corp), t(&pattern), t(text), int(limit)],
            )
            .await?
            .iter()
            .map(|r| member_row(r))
            .collect();
        let depts = self
            .rows(sql::SEARCH_DEPTS, vec![t(corp), t(&pattern), int(limit)])
            .await?
            .iter()
            .map(|r| (r[0].int(), r[1].text()))
            .collect();
        Ok(SearchHits { members, depts })
    }

    /// A local user with every binding and every membership (status,
    /// departments, roles, admin rows) in every org; `None` if no such user.
    pub async fn person(&self, user_id: i64) -> StoreResult<Option<Person>> {
        let Some(user) = self
            .rows(sql::USER, vec![int(user_id)])
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let bindings = self
            .rows(sql::BINDINGS, vec![int(user_id)])
            .await?
            .iter()
            .map(|r| Binding {
                provider: r[0].text(),
                corp_id: r[1].text(),
                member_id: r[2].text(),
                union_id: r[3].opt_text(),
            })
            .collect();
        let mut memberships = Vec::new();
        for r in self.rows(sql::MEMBERSHIPS, vec![int(user_id)]).await? {
            let (corp, member) = (r[0].text(), r[1].text());
            let key = || vec![t(&corp), t(&member)];
            let depts = self.rows(sql::MEMBER_DEPTS, key()).await?;
            let roles = self.rows(sql::MEMBER_ROLES, key()).await?;
            let admin = self.rows(sql::MEMBER_ADMIN, key()).await?;
            memberships.push(Membership {
                name: r[2].text(),
                status: r[3].text(),
                position: r[4].opt_text(),
                mobile: r[5].opt_text(),
                email: r[6].opt_text(),
                depts: depts
                    .iter()
                    .map(|d| (d[0].int(), d[1].text(), d[2].int() != 0))
                    .collect(),
                roles: roles
                    .iter()
                    .map(|x| (x[0].text(), x[1].text(), x[2].text()))
                    .collect(),
                admin: admin.iter().map(|a| (a[0].int(), a[1].text())).collect(),
                corp,
                member_id: member,
            });
        }
        Ok(Some(Person {
            user_id: user[0].int(),
            name: user[1].text(),
            created_at: user[2].int(),
            bindings,
            memberships,
        }))
    }

    /// The newest `limit` change lines of runs of `corp` that touched the
    /// member, newest run first.
    pub async fn member_changes(
        &self,
        corp: &str,
        member_id: &str,
        limit: u64,
    ) -> StoreResult<Vec<MemberChange>> {
        Ok(self
            .rows(sql::MEMBER_CHANGES, vec![t(corp), t(member_id), int(limit)])
            .await?
            .iter()
            .map(|r| MemberChange {
                run_id: r[0].int(),
                started_at: r[1].int(),
                outcome: r[2].text(),
                kind: r[3].text(),
                reason: r[4].text(),
            })
            .collect())
    }

    /// A page of a run's change lines matching `filter`, in run order;
    /// member lines carry the member's current name (from `corp`).
    pub async fn run_change_page(
        &self,
        run_id: i64,
        corp: &str,
        filter: &ChangeFilter,
    ) -> StoreResult<ChangePage> {
        let text = filter.text.trim();
        let kind = || t(&filter.kind);
        // A first page shorter than the limit is all there is: no count.
        let all_here =
            |rows: &[Vec<Cell>]| filter.offset == 0 && (rows.len() as u64) < filter.limit;
        let (rows, total) = if text.is_empty() {
            let rows = vec![
                int(run_id),
                t(corp),
                kind(),
                int(filter.limit),
                int(filter.offset),
            ];
            let rows = self.rows(sql::RUN_LINES, rows).await?;
            let total = if all_here(&rows) {
                rows.len() as u64
            } else {
                count(
                    self.rows(sql::RUN_LINE_COUNT, vec![int(run_id), kind()])
                        .await?,
                )
            };
            (rows, total)
        } else {
            let pattern = contains_pattern(text);
            let base = || vec![int(run_id), t(corp), kind(), t(&pattern)];
            let mut params = base();
            params.extend([int(filter.limit), int(filter.offset)]);
            let rows = self.rows(sql::RUN_SEARCH, params).await?;
            let total = if all_here(&rows) {
                rows.len() as u64
            } else {
                count(self.rows(sql::RUN_SEARCH_COUNT, base()).await?)
            };
            (rows, total)
        };
        let lines = rows
            .iter()
            .map(|r| ChangeLine {
                seq: r[0].int(),
                object: r[1].text(),
                object_id: r[2].text(),
                name: r[3].opt_text(),
                kind: r[4].text(),
                reason: r[5].text(),
            })
            .collect();
        Ok(ChangePage { lines, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_in_search_text_match_themselves() {
        assert_eq!(contains_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
