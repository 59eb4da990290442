//! What an upstream read covered: the one home of the rule "a sync may change
//! only what its read covered".
//!
//! A read is a set of covered departments, member lists and roles. Every part
//! that a platform reader asked for and did not get is a [`FetchFailure`]
//! naming its [`ReadPart`]; a syncScope limits the read to department
//! subtrees. [`Coverage::new`] turns the stored organization, the read and
//! those two facts into answers the planner asks:
//!
//! - may this stored department be updated or removed ([`Coverage::dept_record`])?
//! - are this department's memberships known ([`Coverage::dept_members`])?
//! - may this stored member's absence be taken as a departure ([`Coverage::member`])?
//! - may this stored role be removed, its holders replaced ([`Coverage::role`])?
//!
//! Anything outside coverage is left exactly as stored. A failure whose part
//! is unknown (`part: None`, e.g. from a plugin) covers nothing beyond what was
//! read, which is the safe reading.
//!
//! ```
//! use jit_org::{Coverage, CorpSnapshot, Dept, FetchFailure, ReadPart, Verdict};
//! let mut local = CorpSnapshot::new("ding1");
//! local.depts.insert(1, Dept::new(1, None, "Acme"));
//! local.depts.insert(2, Dept::new(2, Some(1), "R&D"));
//! let mut remote = CorpSnapshot::new("ding1");
//! remote.depts.insert(1, Dept::new(1, None, "Acme"));
//! remote.failures.push(FetchFailure::new(
//!     ReadPart::Dept { dept_id: 2 },
//!     "department/get dept_id=2",
//!     "errcode 60011",
//! ));
//! let cov = Coverage::new(&local, &remote);
//! // Department 2 was listed but its record could not be read: it stays.
//! assert_eq!(cov.dept_record(2), Verdict::Unread);
//! assert_eq!(cov.dept_record(1), Verdict::Covered);
//! ```

use crate::{CorpSnapshot, FetchFailure, Member};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// One part of an organization that a reader asks the platform for.
///
/// A [`FetchFailure`] names the part it left unread, so the planner knows
/// exactly what the read did not cover.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "part", rename_all = "camelCase")]
pub enum ReadPart {
    /// The department tree below `root` (the whole organization when
    /// `None`): every stored department in it that the read did not return
    /// is unread, records and members.
    #[serde(rename_all = "camelCase")]
    DeptTree {
        /// The subtree's root; `None` for the whole organization.
        root: Option<i64>,
    },
    /// The direct children of a department (DingTalk `listsubid`): every
    /// stored department below it that the read did not return is unread.
    #[serde(rename_all = "camelCase")]
    DeptChildren {
        /// The department whose children are unknown.
        dept_id: i64,
    },
    /// One department's own record (name, parent, order, leaders).
    #[serde(rename_all = "camelCase")]
    Dept {
        /// The department.
        dept_id: i64,
    },
    /// One department's member list (any page of it).
    #[serde(rename_all = "camelCase")]
    DeptMembers {
        /// The department.
        dept_id: i64,
    },
    /// The list of roles and role groups.
    Roles,
    /// The holders of one role.
    #[serde(rename_all = "camelCase")]
    RoleMembers {
        /// The role.
        role_id: String,
    },
    /// The admin list.
    Admins,
}

/// Whether the read speaks for one stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The read covered it: what the read says (including its absence) is the truth.
    Covered,
    /// The read asked for it and did not get it (a failed or refused part):
    /// it stays exactly as stored.
    Unread,
    /// Outside the synced subtrees (`syncScope`): not this sync's business;
    /// it stays exactly as stored.
    OutsideScope,
}

impl Verdict {
    /// True for [`Verdict::Covered`].
    pub fn is_covered(self) -> bool {
        self == Verdict::Covered
    }
}

/// What one read covered, relative to the stored organization. Built once per
/// plan by [`Coverage::new`].
#[derive(Debug, Clone)]
pub struct Coverage {
    /// Stored departments outside the synced subtrees (empty when unscoped).
    outside: HashSet<i64>,
    /// Departments whose record the read asked for and did not get.
    unread_records: HashSet<i64>,
    /// Departments whose member list the read asked for and did not get.
    unread_members: HashSet<i64>,
    /// Scope roots: their stored parent lies outside what a scoped read sees.
    scope_roots: HashSet<i64>,
    /// Every member list the read needed was read (failures that were
    /// refusals as out of range aside): only then does a member's absence
    /// mean that the member left.
    members_complete: bool,
    /// The role list was read.
    roles_listed: bool,
    /// Roles whose holders were not (all) read.
    unread_roles: HashSet<String>,
    /// The read ran on a syncScope.
    scoped: bool,
    /// A failure of unknown extent: nothing that was not read is covered.
    unknown_extent: bool,
    /// The department tree was listed whole (no failed listing): only then
    /// does a stored department's absence mean it is gone — otherwise it
    /// may have moved under a part that was not listed.
    tree_complete: bool,
    /// Departments the read returned.
    read: HashSet<i64>,
    /// Departments the platform said are outside the app's visible range.
    known_outside: HashSet<i64>,
}

/// Stored descendants of `root` (excluding `root`), by the stored tree.
fn descendants(children: &HashMap<i64, Vec<i64>>, root: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<i64> = children.get(&root).cloned().unwrap_or_default();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue; // a cycle in stored data must not loop forever
        }
        out.push(id);
        if let Some(kids) = children.get(&id) {
            stack.extend(kids.iter().copied());
        }
    }
    out
}

impl Coverage {
    /// What `remote` (a read) covers of `local` (the stored organization).
    pub fn new(local: &CorpSnapshot, remote: &CorpSnapshot) -> Coverage {
        let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
        for d in local.depts.values() {
            if let Some(p) = d.parent_id {
                children.entry(p).or_default().push(d.dept_id);
            }
        }
        let scoped = !remote.scope.is_empty();
        let mut outside = HashSet::new();
        if scoped {
            let mut inside: HashSet<i64> = remote.depts.keys().copied().collect();
            for &root in &remote.scope {
                inside.insert(root);
                inside.extend(descendants(&children, root));
            }
            outside.extend(local.depts.keys().filter(|id| !inside.contains(id)));
        }
        let unread_below = |root: Option<i64>, include_root: bool| -> Vec<i64> {
            let ids: Vec<i64> = match root {
                None => local.depts.keys().copied().collect(),
                Some(r) => {
                    let mut v = descendants(&children, r);
                    if include_root {
                        v.push(r);
                    }
                    v
                }
            };
            ids.into_iter()
                .filter(|id| !remote.depts.contains_key(id))
                .collect()
        };
        let mut cov = Coverage {
            outside,
            unread_records: HashSet::new(),
            unread_members: HashSet::new(),
            scope_roots: remote.scope.iter().copied().collect(),
            members_complete: true,
            roles_listed: true,
            unread_roles: HashSet::new(),
            scoped,
            unknown_extent: false,
            tree_complete: true,
            read: remote.depts.keys().copied().collect(),
            known_outside: remote.outside_range.iter().copied().collect(),
        };
        for f in &remote.failures {
            let counts = !f.out_of_range;
            match &f.part {
                None => {
                    let ids = unread_below(None, true);
                    cov.unread_records.extend(ids.iter().copied());
                    cov.unread_members.extend(ids);
                    cov.members_complete &= !counts;
                    cov.roles_listed = false;
                    cov.unknown_extent = true;
                    cov.tree_complete &= !counts;
                }
                Some(ReadPart::DeptTree { root }) => {
                    cov.unknown_extent |= root.is_none();
                    cov.tree_complete &= !counts;
                    let ids = unread_below(*root, true);
                    cov.unread_records.extend(ids.iter().copied());
                    cov.unread_members.extend(ids);
                    if let Some(r) = root {
                        cov.unread_records.insert(*r);
                        cov.unread_members.insert(*r);
                    }
                    cov.members_complete &= !counts;
                }
                Some(ReadPart::DeptChildren { dept_id }) => {
                    cov.tree_complete &= !counts;
                    let ids = unread_below(Some(*dept_id), false);
                    cov.unread_records.extend(ids.iter().copied());
                    cov.unread_members.extend(ids);
                    cov.members_complete &= !counts;
                }
                Some(ReadPart::Dept { dept_id }) => {
                    cov.unread_records.insert(*dept_id);
                }
                Some(ReadPart::DeptMembers { dept_id }) => {
                    cov.unread_members.insert(*dept_id);
                    cov.members_complete &= !counts;
                }
                Some(ReadPart::Roles) => cov.roles_listed = false,
                // The stored admin list is kept whenever the read has none.
                Some(ReadPart::Admins) => {}
                Some(ReadPart::RoleMembers { role_id }) => {
                    cov.unread_roles.insert(role_id.clone());
                }
            }
        }
        cov
    }

    /// Whether the read speaks for department `id`'s own record: only a
    /// covered stored department may be removed when the read lacks it, and
    /// a department the read lacks is covered only when the tree was listed
    /// whole (a listing that failed may hide a department that moved).
    ///
    /// For a department the store does not hold either, [`Verdict::Unread`]
    /// means it may exist upstream unread (so a new child of it cannot be
    /// placed), [`Verdict::Covered`] that the read did not see it at all.
    pub fn dept_record(&self, id: i64) -> Verdict {
        if self.read.contains(&id) || self.known_outside.contains(&id) {
            Verdict::Covered
        } else if self.unread_records.contains(&id) || self.unknown_extent || !self.tree_complete {
            Verdict::Unread
        } else if self.outside.contains(&id) {
            Verdict::OutsideScope
        } else {
            Verdict::Covered
        }
    }

    /// Whether the read asked for department `id`'s record and did not get
    /// it (a failed or refused read of that very department, or a failure
    /// of unknown extent). Unlike [`Coverage::dept_record`], a department
    /// merely not found while the tree listing was incomplete does not
    /// count: a department the read found under it shows that it was
    /// listed, so not reading it means it is outside the visible range.
    pub fn record_failed(&self, id: i64) -> bool {
        !self.read.contains(&id)
            && !self.known_outside.contains(&id)
            && (self.unread_records.contains(&id) || self.unknown_extent)
    }

    /// Whether the read speaks for who belongs to department `id`: stored
    /// memberships in a department that is not covered are kept as stored.
    pub fn dept_members(&self, id: i64) -> Verdict {
        if self.known_outside.contains(&id) {
            Verdict::Covered
        } else if self.unread_members.contains(&id) || self.dept_record(id) == Verdict::Unread {
            Verdict::Unread
        } else if self.outside.contains(&id) {
            Verdict::OutsideScope
        } else {
            Verdict::Covered
        }
    }

    /// Whether the read speaks for stored member `m`, i.e. whether the
    /// member's absence from the read means the member left. A member in a
    /// department whose members were not read, or any member at all while a
    /// member list failed (a mover may sit in the unread list), is
    /// [`Verdict::Unread`]; in a scoped read, a member with no department
    /// inside the synced subtrees is [`Verdict::OutsideScope`].
    pub fn member(&self, m: &Member) -> Verdict {
        if !self.members_complete
            || m.depts
                .iter()
                .any(|d| self.dept_members(d.dept_id) == Verdict::Unread)
        {
            return Verdict::Unread;
        }
        if self.scoped && m.depts.iter().all(|d| self.outside.contains(&d.dept_id)) {
            return Verdict::OutsideScope;
        }
        Verdict::Covered
    }

    /// Whether the read speaks for stored role `id`: a covered role missing
    /// from the read is removed; an unread one is kept as stored.
    pub fn role(&self, id: &str) -> Verdict {
        if !self.roles_listed || self.unread_roles.contains(id) {
            Verdict::Unread
        } else {
            Verdict::Covered
        }
    }

    /// Whether the role list (and so the role groups) was read.
    pub fn roles_listed(&self) -> bool {
        self.roles_listed
    }

    /// Whether `id` is a root of the syncScope (its stored parent is kept).
    pub fn is_scope_root(&self, id: i64) -> bool {
        self.scope_roots.contains(&id)
    }

    /// Whether the read ran on a syncScope.
    pub fn is_scoped(&self) -> bool {
        self.scoped
    }

    /// Whether every member list was read, so absences can mean departures.
    pub fn members_complete(&self) -> bool {
        self.members_complete
    }
}

impl FetchFailure {
    /// A failed read of `part`: `what` names the call (`user/list
    /// department_id=12`), `error` says why (never a secret).
    pub fn new(part: ReadPart, what: impl Into<String>, error: impl Into<String>) -> FetchFailure {
        FetchFailure {
            what: what.into(),
            error: error.into(),
            part: Some(part),
            out_of_range: false,
        }
    }

    /// A part the platform refused as outside the app's visible range: kept
    /// as stored like a failure, but the read still counts as complete.
    pub fn out_of_range(
        part: ReadPart,
        what: impl Into<String>,
        error: impl Into<String>,
    ) -> FetchFailure {
        FetchFailure {
            out_of_range: true,
            ..FetchFailure::new(part, what, error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dept, DeptMembership};

    fn tree() -> CorpSnapshot {
        let mut s = CorpSnapshot::new("c");
        for (id, parent) in [(1, None), (2, Some(1)), (3, Some(2)), (4, Some(1))] {
            s.depts.insert(id, Dept::new(id, parent, format!("d{id}")));
        }
        let mut m = Member::new("u", "U");
        m.depts.push(DeptMembership {
            dept_id: 3,
            order: 0,
            is_leader: false,
        });
        s.members.insert("u".into(), m);
        s
    }

    fn read_of(local: &CorpSnapshot, ids: &[i64]) -> CorpSnapshot {
        let mut r = CorpSnapshot::new("c");
        for id in ids {
            r.depts.insert(*id, local.depts[id].clone());
        }
        r
    }

    #[test]
    fn a_complete_read_covers_everything() {
        let local = tree();
        let cov = Coverage::new(&local, &read_of(&local, &[1, 2, 3, 4]));
        assert!(cov.dept_record(3).is_covered());
        assert!(cov.member(&local.members["u"]).is_covered());
        assert!(cov.role("x").is_covered());
    }

    #[test]
    fn failed_children_listing_leaves_the_stored_subtree_unread() {
        let local = tree();
        let mut r = read_of(&local, &[1, 2, 4]);
        r.failures.push(FetchFailure::new(
            ReadPart::DeptChildren { dept_id: 2 },
            "listsubid dept_id=2",
            "busy",
        ));
        let cov = Coverage::new(&local, &r);
        assert_eq!(cov.dept_record(2), Verdict::Covered);
        assert_eq!(cov.dept_record(3), Verdict::Unread);
        assert_eq!(cov.dept_members(3), Verdict::Unread);
        assert_eq!(cov.member(&local.members["u"]), Verdict::Unread);
    }

    #[test]
    fn a_failed_listing_anywhere_keeps_every_stored_department_it_did_not_find() {
        // Department 4 moved upstream under 3, whose children failed to list:
        // its absence from the read proves nothing.
        let local = tree();
        let mut r = read_of(&local, &[1, 2, 3]);
        r.failures.push(FetchFailure::new(
            ReadPart::DeptChildren { dept_id: 2 },
            "listsubid dept_id=2",
            "busy",
        ));
        let cov = Coverage::new(&local, &r);
        assert_eq!(cov.dept_record(4), Verdict::Unread);
    }

    #[test]
    fn a_department_answered_outside_the_range_is_not_ours_even_in_a_partial_read() {
        let local = tree();
        let mut r = read_of(&local, &[1, 2, 3]);
        r.outside_range = vec![4];
        r.failures.push(FetchFailure::new(
            ReadPart::DeptChildren { dept_id: 2 },
            "listsubid dept_id=2",
            "busy",
        ));
        let cov = Coverage::new(&local, &r);
        assert_eq!(cov.dept_record(4), Verdict::Covered);
        assert_eq!(cov.dept_members(4), Verdict::Covered);
        assert!(!cov.record_failed(4));
    }

    #[test]
    fn a_failed_member_list_makes_every_absence_unproven() {
        let local = tree();
        let mut r = read_of(&local, &[1, 2, 3, 4]);
        r.failures.push(FetchFailure::new(
            ReadPart::DeptMembers { dept_id: 4 },
            "user/list department_id=4",
            "busy",
        ));
        let cov = Coverage::new(&local, &r);
        assert_eq!(cov.dept_members(4), Verdict::Unread);
        assert_eq!(cov.dept_members(3), Verdict::Covered);
        // u sits in 3, but a mover could be in the unread list of 4.
        assert_eq!(cov.member(&local.members["u"]), Verdict::Unread);
    }

    #[test]
    fn a_refusal_as_out_of_range_keeps_its_part_but_not_the_rest() {
        let local = tree();
        let mut r = read_of(&local, &[1, 2, 3, 4]);
        r.failures.push(FetchFailure::out_of_range(
            ReadPart::DeptMembers { dept_id: 4 },
            "user/list department_id=4",
            "60011",
        ));
        assert!(r.is_complete());
        let cov = Coverage::new(&local, &r);
        assert_eq!(cov.dept_members(4), Verdict::Unread);
        assert_eq!(cov.member(&local.members["u"]), Verdict::Covered);
    }

    #[test]
    fn an_unknown_failure_covers_nothing_that_was_not_read() {
        let local = tree();
        let mut r = read_of(&local, &[1]);
        r.failures.push(FetchFailure {
            what: "plugin".into(),
            error: "partial export".into(),
            part: None,
            out_of_range: false,
        });
        let cov = Coverage::new(&local, &r);
        assert_eq!(cov.dept_record(1), Verdict::Covered);
        assert_eq!(cov.dept_record(2), Verdict::Unread);
        assert_eq!(cov.role("r"), Verdict::Unread);
    }

    #[test]
    fn a_scoped_read_leaves_other_subtrees_outside() {
        let local = tree();
        let mut r = read_of(&local, &[2, 3]);
        r.scope = vec![2];
        let cov = Coverage::new(&local, &r);
        assert_eq!(cov.dept_record(4), Verdict::OutsideScope);
        assert_eq!(cov.dept_record(3), Verdict::Covered);
        assert!(cov.is_scope_root(2));
        let mut out = local.members["u"].clone();
        out.depts[0].dept_id = 4;
        assert_eq!(cov.member(&out), Verdict::OutsideScope);
    }

    #[test]
    fn failed_role_holders_keep_that_role_only() {
        let local = tree();
        let mut r = read_of(&local, &[1, 2, 3, 4]);
        r.failures.push(FetchFailure::new(
            ReadPart::RoleMembers {
                role_id: "7".into(),
            },
            "role/simplelist role_id=7",
            "busy",
        ));
        let cov = Coverage::new(&local, &r);
        assert_eq!(cov.role("7"), Verdict::Unread);
        assert_eq!(cov.role("8"), Verdict::Covered);
        assert!(cov.member(&local.members["u"]).is_covered());
    }
}
