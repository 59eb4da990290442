//! Reading a whole WeCom organization into a [`CorpSnapshot`].

use crate::WecomClient;
use futures_util::stream::{self, StreamExt};
use jit_apiclient::{read_if, record_admins, ApiError, FetchOptions, Progress, ProgressEvent};
use jit_org::{Admin, CorpSnapshot, FetchFailure, Member, ReadPart, Role, RoleGroup};
use std::collections::BTreeMap;

/// 60011, "no privilege for the given member/department/tag (outside the
/// visible range)" (reference A.8). Only an answer about something the app
/// named itself — a `syncScope` root, a tag — can mean "outside the range":
/// a department that `department/list` returned is inside it, so 60011 on
/// its members is a failed read. 60020 (caller IP not allow-listed) and
/// 48002 (API not permitted) always are.
const OUT_OF_RANGE: i64 = 60011;
/// The department vanished between listing it and reading its members.
const DEPT_GONE: i64 = 60003;

/// What reading every department's members gave.
struct MembersRead {
    /// Every member, once.
    members: BTreeMap<String, Member>,
    /// Departments that vanished between listing and reading (60003).
    gone: Vec<i64>,
    /// Notes for the run report.
    notes: Vec<String>,
    /// Departments whose members could not be read.
    failures: Vec<FetchFailure>,
}

fn phase(progress: &dyn Progress, name: &str) {
    progress.on_event(&ProgressEvent::Phase(name.to_string()));
}

fn count(progress: &dyn Progress, unit: &str, n: usize, discovered: bool) {
    let (unit, count) = (unit.to_string(), n as u64);
    progress.on_event(&if discovered {
        ProgressEvent::Discovered { unit, count }
    } else {
        ProgressEvent::Done { unit, count }
    });
}

fn failure(part: ReadPart, what: String, e: &ApiError) -> FetchFailure {
    FetchFailure::new(part, what, e.to_string())
}

impl WecomClient {
    /// Reads the organization: departments, every member of every department,
    /// tags as roles and the app's admins.
    ///
    /// Calls: one `department/list` per scope root (one in all for the whole
    /// org), one `user/list` per department, one `tag/list` plus one `tag/get`
    /// per tag, one `agent/get_admin_list`. Departments are read with the
    /// recursive `department/list` rather than `simplelist` + one `get` per
    /// department because it returns the names, orders and leaders of the
    /// whole tree in a single call — N fewer calls for N departments; the
    /// page's "low performance" remark concerns the server, and the call is
    /// made once per sync.
    ///
    /// Parts that fail go into `snapshot.failures`, each naming the part it
    /// left unread (a scope root's tree, a department's members, the tag
    /// list, one tag's members), so the engine keeps exactly those as
    /// stored; a scope root or tag refused as outside the visible range
    /// (60011) is such a part too, but does not make the read incomplete.
    /// The snapshot holds what was read as the platform said it — parent
    /// links and memberships included; placing them against what was not
    /// read is the engine's job ([`jit_org::Coverage`]). Only a failed read
    /// of the department tree itself is an error.
    pub async fn fetch_corp(
        &self,
        opts: &FetchOptions,
        progress: &dyn Progress,
    ) -> Result<CorpSnapshot, ApiError> {
        let mut snap = CorpSnapshot::for_read(self.config.corp_id.clone(), opts);
        // Tags and admins do not depend on the department tree, so they are
        // read beside it: while the tree's one call is in flight the window
        // is otherwise empty. A tree that cannot be read ends the read, and
        // drops those calls with it.
        let tree_and_members = async {
            phase(progress, "departments");
            self.read_departments(opts, &mut snap).await?;
            count(progress, "departments", snap.depts.len(), true);
            let dept_ids: Vec<i64> = snap.depts.keys().copied().collect();
            Ok::<_, ApiError>(self.read_members(&dept_ids, progress).await)
        };
        let (members, tags, admins) = tokio::try_join!(
            tree_and_members,
            async { Ok(read_if(opts.include_roles, self.read_tags(progress)).await) },
            async { Ok(read_if(opts.include_admins, self.get_admin_list()).await) },
        )?;

        for id in members.gone {
            snap.depts.remove(&id);
        }
        snap.notes.extend(members.notes);
        snap.failures.extend(members.failures);
        snap.members = members.members;

        if let Some((roles, notes, failures)) = tags {
            snap.role_groups.insert(
                "tags".into(),
                RoleGroup {
                    group_id: "tags".into(),
                    name: "Tags".into(),
                },
            );
            for r in roles {
                snap.roles.insert(r.role_id.clone(), r);
            }
            snap.notes.extend(notes);
            snap.failures.extend(failures);
        }

        let admins = admins.map(|read| {
            read.map(|mut list: Vec<Admin>| {
                list.sort();
                list
            })
        });
        // 48002 (API not permitted) and 60011 (no privilege): the app may
        // not read admins at all.
        record_admins(&mut snap, admins, "agent/get_admin_list", &[48002, 60011]);
        Ok(snap)
    }

    async fn read_departments(
        &self,
        opts: &FetchOptions,
        snap: &mut CorpSnapshot,
    ) -> Result<(), ApiError> {
        if opts.scope.is_empty() {
            for d in self.department_list(None).await? {
                snap.depts.insert(d.dept_id, d);
            }
            if snap.depts.is_empty() {
                // A corp always has its root; an empty tree means the app
                // sees nothing (its visible range) or a broken answer.
                snap.failures.push(FetchFailure::new(
                    ReadPart::DeptTree { root: None },
                    "department/list",
                    "/cgi-bin/department/list returned no departments: the app's visible range is empty, or the answer is wrong",
                ));
            }
        } else {
            let reads = opts
                .scope
                .iter()
                .map(|&root| async move { (root, self.department_list(Some(root)).await) });
            for (root, result) in futures_util::future::join_all(reads).await {
                match result {
                    Ok(list) => {
                        for d in list {
                            snap.depts.insert(d.dept_id, d);
                        }
                    }
                    Err(e) if e.errcode() == Some(OUT_OF_RANGE) => {
                        snap.notes.push(format!(
                            "syncScope department {root} is outside the app's visible range; what is stored of it is kept ({e})"
                        ));
                        snap.failures.push(FetchFailure::out_of_range(
                            ReadPart::DeptTree { root: Some(root) },
                            format!("department/list id={root}"),
                            e.to_string(),
                        ));
                    }
                    Err(e) => snap.failures.push(failure(
                        ReadPart::DeptTree { root: Some(root) },
                        format!("department/list id={root}"),
                        &e,
                    )),
                }
            }
            if let Some(f) = snap
                .failures
                .iter()
                .find(|f| !f.out_of_range)
                .filter(|_| snap.depts.is_empty())
            {
                // Nothing at all could be read: that is an error, not a partial read.
                return Err(ApiError::Malformed {
                    path: "/cgi-bin/department/list".into(),
                    message: format!("no syncScope department could be read: {}", f.error),
                });
            }
        }
        Ok(())
    }

    /// `user/list` for every department, concurrently within the budget;
    /// each member is assembled once (the object lists all its departments).
    async fn read_members(&self, dept_ids: &[i64], progress: &dyn Progress) -> MembersRead {
        phase(progress, "members");
        let mut members = BTreeMap::new();
        let mut gone = Vec::new();
        let mut notes = Vec::new();
        let mut failures = Vec::new();
        let mut results = stream::iter(dept_ids.iter().copied())
            .map(|d| async move { (d, self.user_list(d).await) })
            .buffer_unordered(self.config.tuning.concurrency.max(1));
        while let Some((d, result)) = results.next().await {
            count(progress, "departments", 1, false);
            // `user/list` lists a department's direct members, so each one's
            // departments include it; an answer that says otherwise is not
            // to be believed about anyone in it.
            let result = result.and_then(|list| {
                match list
                    .iter()
                    .find(|m| !m.depts.is_empty() && !m.depts.iter().any(|x| x.dept_id == d))
                {
                    Some(m) => Err(ApiError::Malformed {
                        path: "/cgi-bin/user/list".into(),
                        message: format!(
                            "department {d} lists member {:?}, whose departments {:?} do not include it",
                            m.member_id,
                            m.depts.iter().map(|x| x.dept_id).collect::<Vec<_>>()
                        ),
                    }),
                    None => Ok(list),
                }
            });
            match result {
                Ok(list) => {
                    for m in list {
                        if m.member_id.is_empty() {
                            continue;
                        }
                        members.entry(m.member_id.clone()).or_insert(m);
                    }
                }
                Err(e) if e.errcode() == Some(DEPT_GONE) => {
                    notes.push(format!("department {d} disappeared during the read ({e})"));
                    gone.push(d);
                }
                // department/list returned it, so whatever the code (60011
                // included) this is a failed read, not an empty department.
                Err(e) => failures.push(failure(
                    ReadPart::DeptMembers { dept_id: d },
                    format!("user/list department_id={d}"),
                    &e,
                )),
            }
        }
        count(progress, "members", members.len(), false);
        MembersRead {
            members,
            gone,
            notes,
            failures,
        }
    }

    /// Tags as roles of the single group `tags`.
    async fn read_tags(
        &self,
        progress: &dyn Progress,
    ) -> (Vec<Role>, Vec<String>, Vec<FetchFailure>) {
        phase(progress, "roles");
        let tags = match self.tag_list().await {
            Ok(t) => t,
            Err(e) => {
                return (
                    Vec::new(),
                    Vec::new(),
                    vec![failure(ReadPart::Roles, "tag/list".into(), &e)],
                )
            }
        };
        count(progress, "roles", tags.len(), true);
        let mut roles = Vec::new();
        let mut notes = Vec::new();
        let mut failures = Vec::new();
        // Tags that also hold whole departments, reported in one note.
        let mut department_tags = Vec::new();
        let mut results = stream::iter(tags)
            .map(|t| async move {
                let r = self.tag_get(t.tag_id).await;
                (t, r)
            })
            .buffer_unordered(self.config.tuning.concurrency.max(1));
        while let Some((tag, result)) = results.next().await {
            count(progress, "roles", 1, false);
            match result {
                Ok(detail) => {
                    let mut members = detail.user_ids;
                    members.sort();
                    members.dedup();
                    if !detail.party_ids.is_empty() {
                        department_tags.push(format!("{} {:?}", tag.tag_id, detail.party_ids));
                    }
                    roles.push(Role {
                        role_id: tag.tag_id.to_string(),
                        group_id: Some("tags".into()),
                        name: detail.name.unwrap_or(tag.name),
                        members,
                    });
                }
                Err(e) => {
                    let part = ReadPart::RoleMembers {
                        role_id: tag.tag_id.to_string(),
                    };
                    let what = format!("tag/get tagid={}", tag.tag_id);
                    if e.errcode() == Some(OUT_OF_RANGE) {
                        notes.push(format!(
                            "tag {} is outside the app's visible range; what is stored of it is kept ({e})",
                            tag.tag_id
                        ));
                        failures.push(FetchFailure::out_of_range(part, what, e.to_string()));
                    } else {
                        failures.push(failure(part, what, &e));
                    }
                }
            }
        }
        if !department_tags.is_empty() {
            department_tags.sort();
            notes.push(format!(
                "{} tag(s) also tag whole departments (tag [departments]: {}); only their individual members are synced as role members",
                department_tags.len(),
                department_tags.join(", ")
            ));
        }
        (roles, notes, failures)
    }
}
