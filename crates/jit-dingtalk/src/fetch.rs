//! Reading a whole DingTalk organization into a [`CorpSnapshot`], pipelined.

use crate::model::ListedMember;
use crate::{out_of_scope, DingTalkClient};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use jit_apiclient::{read_if, record_admins, ApiError, FetchOptions, Progress, ProgressEvent};
use jit_org::{
    CorpSnapshot, Dept, DeptMembership, FetchFailure, Member, ReadPart, Role, RoleGroup,
};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// 60003: the department vanished between discovering and reading it.
const DEPT_GONE: i64 = 60003;

enum Step {
    Children(i64, Result<Vec<i64>, ApiError>),
    Detail(i64, Result<Dept, ApiError>),
    Members(i64, Result<Vec<ListedMember>, ApiError>),
}

/// What reading the roles gave.
struct RolesRead {
    groups: Vec<RoleGroup>,
    /// Roles whose holders were all read, by role id.
    roles: Vec<Role>,
    /// Roles whose holders could not be read.
    failures: Vec<FetchFailure>,
}

/// Per-department (order, leader) facts gathered from every listing of a member.
type Facts = BTreeMap<i64, (Option<i64>, Option<bool>)>;

#[derive(Default)]
struct Walk {
    depts: BTreeMap<i64, Dept>,
    /// userid → (first profile seen, per-department (order, leader) facts).
    members: BTreeMap<String, (Member, Facts)>,
    gone: HashSet<i64>,
    /// Departments answered 50004: outside the app's contact scope.
    outside: BTreeSet<i64>,
    notes: Vec<String>,
    failures: Vec<FetchFailure>,
}

fn failure(part: ReadPart, what: String, e: &ApiError) -> FetchFailure {
    FetchFailure::new(part, what, e.to_string())
}

fn event(progress: &dyn Progress, unit: &str, discovered: bool) {
    let (unit, count) = (unit.to_string(), 1);
    progress.on_event(&if discovered {
        ProgressEvent::Discovered { unit, count }
    } else {
        ProgressEvent::Done { unit, count }
    });
}

impl Walk {
    /// Files a failed step: out of the contact scope (a note), gone (the
    /// department is removed), or a failed read of `part`.
    fn failed(
        &mut self,
        id: i64,
        e: ApiError,
        part: ReadPart,
        what: &str,
        first_error: &mut Option<ApiError>,
    ) {
        if out_of_scope(&e) {
            if self.outside.insert(id) {
                self.notes.push(format!(
                    "department {id} is outside the app's contact scope ({e})"
                ));
            }
        } else if e.errcode() == Some(DEPT_GONE) {
            self.notes
                .push(format!("department {id} disappeared during the read ({e})"));
            self.gone.insert(id);
        } else {
            self.failures
                .push(failure(part, format!("{what} dept_id={id}"), &e));
            first_error.get_or_insert(e);
        }
    }
}

impl DingTalkClient {
    /// Reads the organization: the department tree breadth-first from the
    /// root (or the `syncScope` roots), every member of every department
    /// (all pages), roles with their groups and members, and the admins.
    ///
    /// The walk is pipelined: as soon as a department id is known, its
    /// children (`listsubid`), its detail (`department/get`) and its members
    /// (`v2/user/list`) are requested, while roles and admins are read
    /// alongside. Each API path has its own 20-per-second budget, so the
    /// wall time approaches the largest per-API call count / 20 instead of
    /// the sum over APIs.
    ///
    /// Failed parts go into `snapshot.failures`, each naming the part it
    /// left unread (children, record or members of a department, the role
    /// list, one role's holders), so the engine keeps exactly those as
    /// stored. Departments outside the app's contact scope (50004) are notes.
    /// The snapshot holds what was read as the platform said it — parent
    /// links and memberships included; placing them against what was not
    /// read is the engine's job ([`jit_org::Coverage`]). Only a read that got
    /// no department at all is an error.
    pub async fn fetch_corp(
        &self,
        opts: &FetchOptions,
        progress: &dyn Progress,
    ) -> Result<CorpSnapshot, ApiError> {
        let mut snap = CorpSnapshot::for_read(self.config.corp_id.clone(), opts);
        progress.on_event(&ProgressEvent::Phase("departments and members".into()));
        let roots: Vec<i64> = if opts.scope.is_empty() {
            vec![1]
        } else {
            opts.scope.clone()
        };
        let (walk, roles, admins) = tokio::join!(
            self.walk(&roots, progress),
            read_if(opts.include_roles, self.read_roles(progress)),
            read_if(opts.include_admins, self.list_admin()),
        );
        let walk = walk?;
        snap.notes.extend(walk.notes);
        snap.failures.extend(walk.failures);
        snap.depts = walk.depts;
        snap.outside_range = walk.outside.into_iter().collect();
        for id in &walk.gone {
            snap.depts.remove(id);
        }
        for (id, (mut m, facts)) in walk.members {
            m.depts = m
                .depts
                .iter()
                .map(|d| {
                    let f = facts.get(&d.dept_id).copied().unwrap_or((None, None));
                    DeptMembership {
                        dept_id: d.dept_id,
                        order: f.0.unwrap_or(d.order),
                        is_leader: f.1.unwrap_or(d.is_leader),
                    }
                })
                .collect();
            snap.members.insert(id, m);
        }
        if let Some(result) = roles {
            match result {
                Ok(read) => {
                    for g in read.groups {
                        snap.role_groups.insert(g.group_id.clone(), g);
                    }
                    for r in read.roles {
                        snap.roles.insert(r.role_id.clone(), r);
                    }
                    snap.failures.extend(read.failures);
                }
                Err(e) => {
                    snap.failures
                        .push(failure(ReadPart::Roles, "topapi/role/list".into(), &e))
                }
            }
        }
        // 60011 (permission point missing) and 43007 (token lacks
        // authorisation): the app may not read admins at all.
        record_admins(&mut snap, admins, "topapi/user/listadmin", &[60011, 43007]);
        Ok(snap)
    }

    fn step_children(&self, id: i64) -> BoxFuture<'_, Step> {
        Box::pin(async move { Step::Children(id, self.department_listsubid(id).await) })
    }

    fn step_detail(&self, id: i64) -> BoxFuture<'_, Step> {
        Box::pin(async move { Step::Detail(id, self.department_get(id).await) })
    }

    fn step_members(&self, id: i64) -> BoxFuture<'_, Step> {
        Box::pin(async move { Step::Members(id, self.user_list(id).await) })
    }

    async fn walk(&self, roots: &[i64], progress: &dyn Progress) -> Result<Walk, ApiError> {
        let mut w = Walk::default();
        let mut seen: HashSet<i64> = HashSet::new();
        let mut inflight = FuturesUnordered::new();
        let mut first_error: Option<ApiError> = None;
        for &r in roots {
            if seen.insert(r) {
                event(progress, "departments", true);
                inflight.push(self.step_children(r));
                inflight.push(self.step_detail(r));
                inflight.push(self.step_members(r));
            }
        }
        while let Some(step) = inflight.next().await {
            match step {
                // A syncScope root may sit below another root: reaching it
                // again is expected.
                Step::Children(id, Ok(kids))
                    if kids
                        .iter()
                        .any(|&k| k == id || (seen.contains(&k) && !roots.contains(&k))) =>
                {
                    // A department listed again (as its own child, or under a
                    // second parent) is no tree: the listing of `id`'s
                    // children is unreadable, and is reported as such.
                    let again = kids
                        .iter()
                        .find(|&&k| k == id || (seen.contains(&k) && !roots.contains(&k)))
                        .copied()
                        .unwrap_or(id);
                    w.failed(
                        id,
                        ApiError::Malformed {
                            path: "/topapi/v2/department/listsubid".into(),
                            message: format!(
                                "department {id} lists department {again} as a child, which the walk already reached (a cycle or a second parent)"
                            ),
                        },
                        ReadPart::DeptChildren { dept_id: id },
                        "department/listsubid",
                        &mut first_error,
                    );
                }
                Step::Children(_, Ok(kids)) => {
                    for k in kids {
                        if seen.insert(k) {
                            event(progress, "departments", true);
                            inflight.push(self.step_children(k));
                            inflight.push(self.step_detail(k));
                            inflight.push(self.step_members(k));
                        }
                    }
                }
                Step::Detail(id, Ok(dept)) => {
                    w.depts.insert(
                        id,
                        Dept {
                            dept_id: id,
                            ..dept
                        },
                    );
                }
                // `user/list` lists a department's direct members: a member
                // whose department list leaves it out makes the answer
                // unbelievable for everyone in it.
                Step::Members(id, Ok(list))
                    if list.iter().any(|l| {
                        !l.member.depts.is_empty()
                            && !l.member.depts.iter().any(|x| x.dept_id == id)
                    }) =>
                {
                    let m = list
                        .iter()
                        .find(|l| !l.member.depts.iter().any(|x| x.dept_id == id))
                        .map(|l| l.member.member_id.clone())
                        .unwrap_or_default();
                    w.failed(
                        id,
                        ApiError::Malformed {
                            path: "/topapi/v2/user/list".into(),
                            message: format!(
                                "department {id} lists member {m:?}, whose departments do not include it"
                            ),
                        },
                        ReadPart::DeptMembers { dept_id: id },
                        "user/list",
                        &mut first_error,
                    );
                }
                Step::Members(_, Ok(list)) => {
                    event(progress, "departments", false);
                    for l in list {
                        if l.member.member_id.is_empty() {
                            continue;
                        }
                        let entry = w
                            .members
                            .entry(l.member.member_id.clone())
                            .or_insert_with(|| (l.member.clone(), BTreeMap::new()));
                        for (d, order, leader) in l.known {
                            let f = entry.1.entry(d).or_default();
                            f.0 = order.or(f.0);
                            f.1 = leader.or(f.1);
                        }
                    }
                }
                Step::Children(id, Err(e)) => w.failed(
                    id,
                    e,
                    ReadPart::DeptChildren { dept_id: id },
                    "department/listsubid",
                    &mut first_error,
                ),
                Step::Detail(id, Err(e)) => w.failed(
                    id,
                    e,
                    ReadPart::Dept { dept_id: id },
                    "department/get",
                    &mut first_error,
                ),
                Step::Members(id, Err(e)) => w.failed(
                    id,
                    e,
                    ReadPart::DeptMembers { dept_id: id },
                    "user/list",
                    &mut first_error,
                ),
            }
        }
        if w.depts.is_empty() {
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        progress.on_event(&ProgressEvent::Done {
            unit: "members".into(),
            count: w.members.len() as u64,
        });
        Ok(w)
    }

    /// Role groups and roles, then every role's members (roles concurrently).
    async fn read_roles(&self, progress: &dyn Progress) -> Result<RolesRead, ApiError> {
        let (groups, roles) = self.role_list().await?;
        progress.on_event(&ProgressEvent::Discovered {
            unit: "roles".into(),
            count: roles.len() as u64,
        });
        let mut failures = Vec::new();
        let mut out = Vec::with_capacity(roles.len());
        let mut pending: FuturesUnordered<_> = roles
            .into_iter()
            .map(|r| async move {
                let members = self.role_members(&r.role_id).await;
                (r, members)
            })
            .collect();
        while let Some((mut role, members)) = pending.next().await {
            event(progress, "roles", false);
            match members {
                Ok(m) => {
                    role.members = m;
                    out.push(role);
                }
                // Left out rather than stored with no members: the read is
                // incomplete, so the planner keeps the stored role as it is.
                Err(e) => failures.push(failure(
                    ReadPart::RoleMembers {
                        role_id: role.role_id.clone(),
                    },
                    format!("role/simplelist role_id={}", role.role_id),
                    &e,
                )),
            }
        }
        out.sort_by(|a, b| a.role_id.cmp(&b.role_id));
        Ok(RolesRead {
            groups,
            roles: out,
            failures,
        })
    }
}
