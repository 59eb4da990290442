//! Reading a whole WeCom organization into a [`CorpSnapshot`].

use crate::WecomClient;
use futures_util::stream::{self, StreamExt};
use jit_apiclient::{ApiError, FetchOptions, Progress, ProgressEvent};
use jit_org::{Admin, CorpSnapshot, FetchFailure, Member, Role, RoleGroup};
use std::collections::BTreeMap;

/// "No privilege" for a department/member/tag outside the app's visible range.
const OUT_OF_RANGE: [i64; 2] = [60011, 60020];
/// The department vanished between listing it and reading its members.
const DEPT_GONE: i64 = 60003;

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

fn failure(what: String, e: &ApiError) -> FetchFailure {
    FetchFailure {
        what,
        error: e.to_string(),
    }
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
    /// Parts that fail go into `snapshot.failures` (the sync then offlines
    /// nobody); departments outside the app's visible range (60011) are
    /// notes, not failures. Only a failed read of the department tree itself
    /// is an error.
    pub async fn fetch_corp(
        &self,
        opts: &FetchOptions,
        progress: &dyn Progress,
    ) -> Result<CorpSnapshot, ApiError> {
        let mut snap = CorpSnapshot::new(self.config.corp_id.clone());
        snap.scope = opts.scope.clone();
        phase(progress, "departments");
        self.read_departments(opts, &mut snap).await?;
        count(progress, "departments", snap.depts.len(), true);

        let dept_ids: Vec<i64> = snap.depts.keys().copied().collect();
        let (members, tags, admins) = tokio::join!(
            self.read_members(&dept_ids, progress),
            async {
                if opts.include_roles {
                    Some(self.read_tags(progress).await)
                } else {
                    None
                }
            },
            async {
                if opts.include_admins {
                    Some(self.get_admin_list().await)
                } else {
                    None
                }
            },
        );

        let (members, gone, notes, failures) = members;
        for id in gone {
            snap.depts.remove(&id);
        }
        snap.notes.extend(notes);
        snap.failures.extend(failures);
        for (id, mut m) in members {
            // Memberships in departments the read did not cover (outside the
            // visible range or the scope) are not ours to write.
            m.depts.retain(|d| snap.depts.contains_key(&d.dept_id));
            snap.members.insert(id, m);
        }

        if let Some((roles, notes, failures)) = tags {
            snap.role_groups.insert(
                "tags".into(),
                RoleGroup {
                    group_id: "tags".into(),
                    name: "Tags".into(),
                },
            );
            for mut r in roles {
                r.members.retain(|u| snap.members.contains_key(u));
                snap.roles.insert(r.role_id.clone(), r);
            }
            snap.notes.extend(notes);
            snap.failures.extend(failures);
        }

        match admins {
            Some(Ok(list)) => {
                let mut list: Vec<Admin> = list;
                list.sort();
                snap.admins = Some(list);
            }
            Some(Err(e)) => snap.notes.push(format!(
                "admin list not read ({e}); the stored admin list is kept"
            )),
            None => {}
        }
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
                    Err(e) if e.errcode().is_some_and(|c| OUT_OF_RANGE.contains(&c)) => {
                        snap.notes.push(format!(
                            "syncScope department {root} is outside the app's visible range and was skipped ({e})"
                        ));
                    }
                    Err(e) => snap
                        .failures
                        .push(failure(format!("department/list id={root}"), &e)),
                }
            }
            if snap.depts.is_empty() && !snap.failures.is_empty() {
                // Nothing at all could be read: that is an error, not a partial read.
                let f = &snap.failures[0];
                return Err(ApiError::Malformed {
                    path: "/cgi-bin/department/list".into(),
                    message: format!("no syncScope department could be read: {}", f.error),
                });
            }
        }
        let known: Vec<i64> = snap.depts.keys().copied().collect();
        for d in snap.depts.values_mut() {
            if let Some(p) = d.parent_id {
                if !known.contains(&p) {
                    // The parent is outside the visible range or the scope:
                    // this department is a root of what we can see.
                    if opts.scope.is_empty() {
                        snap.notes.push(format!(
                            "department {} has parent {p} outside the app's visible range; stored as a top-level department",
                            d.dept_id
                        ));
                    }
                    d.parent_id = None;
                }
            }
        }
        Ok(())
    }

    /// `user/list` for every department, concurrently within the budget;
    /// each member is assembled once (the object lists all its departments).
    #[allow(clippy::type_complexity)]
    async fn read_members(
        &self,
        dept_ids: &[i64],
        progress: &dyn Progress,
    ) -> (
        BTreeMap<String, Member>,
        Vec<i64>,
        Vec<String>,
        Vec<FetchFailure>,
    ) {
        phase(progress, "members");
        let mut members = BTreeMap::new();
        let mut gone = Vec::new();
        let mut notes = Vec::new();
        let mut failures = Vec::new();
        let mut results = stream::iter(dept_ids.iter().copied())
            .map(|d| async move { (d, self.user_list(d).await) })
            .buffer_unordered(self.config.concurrency.max(1));
        while let Some((d, result)) = results.next().await {
            count(progress, "departments", 1, false);
            match result {
                Ok(list) => {
                    for m in list {
                        if m.member_id.is_empty() {
                            continue;
                        }
                        members.entry(m.member_id.clone()).or_insert(m);
                    }
                }
                Err(e) if e.errcode().is_some_and(|c| OUT_OF_RANGE.contains(&c)) => {
                    notes.push(format!(
                        "members of department {d} are outside the app's visible range ({e})"
                    ));
                }
                Err(e) if e.errcode() == Some(DEPT_GONE) => {
                    notes.push(format!("department {d} disappeared during the read ({e})"));
                    gone.push(d);
                }
                Err(e) => failures.push(failure(format!("user/list department_id={d}"), &e)),
            }
        }
        count(progress, "members", members.len(), false);
        (members, gone, notes, failures)
    }

    /// Tags as roles of the single group `tags`.
    async fn read_tags(
        &self,
        progress: &dyn Progress,
    ) -> (Vec<Role>, Vec<String>, Vec<FetchFailure>) {
        phase(progress, "roles");
        let tags = match self.tag_list().await {
            Ok(t) => t,
            Err(e) => return (Vec::new(), Vec::new(), vec![failure("tag/list".into(), &e)]),
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
            .buffer_unordered(self.config.concurrency.max(1));
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
                Err(e) if e.errcode().is_some_and(|c| OUT_OF_RANGE.contains(&c)) => {
                    notes.push(format!(
                        "tag {} is outside the app's visible range ({e})",
                        tag.tag_id
                    ));
                }
                Err(e) => failures.push(failure(format!("tag/get tagid={}", tag.tag_id), &e)),
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
