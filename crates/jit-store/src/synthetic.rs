//! Synthetic organizations for benchmarks and crash tests: deterministic
//! (same input, same plan), no randomness source needed.
//!
//! ```
//! use jit_org::Provider;
//! let org = jit_store::synthetic::creation_plan("corps.Big", Provider::Wecom, 1_000);
//! assert_eq!(org.plan.upsert_members.len(), 1_000);
//! assert_eq!(org.plan.upsert_depts.len(), 50);
//! assert!(org.plan.upsert_members.iter().all(|m| (1..=3).contains(&m.depts.len())));
//! ```

use jit_org::{
    Change, ChangeKind, CorpRecord, Dept, DeptMembership, Member, ObjectKind, Provider, SyncPlan,
};
use serde_json::json;

/// An org record and a plan that creates the whole org.
#[derive(Debug, Clone)]
pub struct SyntheticOrg {
    /// The org.
    pub corp: CorpRecord,
    /// Creates `members` members (each in 1–3 departments) in a tree of
    /// about `members / 20` departments, with one change line per object.
    pub plan: SyncPlan,
}

/// A small linear congruential generator: reproducible and dependency-free.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound.max(1)
    }
}

/// Builds the plan that creates a synthetic org of `members` members.
/// DingTalk orgs get a unionId per member (`union-<n>`), so two synthetic
/// DingTalk orgs of the same size share their people.
pub fn creation_plan(full_name: &str, provider: Provider, members: usize) -> SyntheticOrg {
    let mut rng = Lcg(0x5EED ^ members as u64);
    let n_depts = (members / 20).max(1) as i64;
    let mut plan = SyncPlan::default();
    for id in 1..=n_depts {
        let parent = if id == 1 {
            None
        } else {
            Some(1 + rng.next(id as u64 - 1) as i64)
        };
        let mut d = Dept::new(id, parent, format!("Department {id}"));
        d.order = id * 10;
        plan.upsert_depts.push(d);
        plan.changes.push(Change {
            object: ObjectKind::Dept,
            id: id.to_string(),
            kind: ChangeKind::Created,
            reason: "new department".into(),
        });
    }
    for i in 0..members {
        let member_id = format!("m{i:07}");
        let mut m = Member::new(member_id.clone(), format!("Member {i}"));
        if provider.identity_by_union_id() {
            m.union_id = Some(format!("union-{i}"));
        }
        m.position = Some(["Engineer", "Sales", "Support", "Manager"][i % 4].to_string());
        m.job_number = Some(format!("E{i:06}"));
        m.hired_date = Some(1_600_000_000_000 + i as i64 * 86_400_000);
        m.mobile = Some(format!("138{i:08}"));
        m.email = Some(format!("member{i}@example.com"));
        // Withheld, as WeCom does for apps created after 2022-06-20.
        m.avatar = None;
        if i % 10 == 0 {
            m.extra = json!({"attrs": [{"name": "Floor", "value": (i % 30).to_string()}]});
        }
        let n = 1 + rng.next(3) as usize;
        for k in 0..n {
            let dept_id = 1 + rng.next(n_depts as u64) as i64;
            if m.depts.iter().any(|d| d.dept_id == dept_id) {
                continue;
            }
            m.depts.push(DeptMembership {
                dept_id,
                order: (i * 3 + k) as i64,
                is_leader: i % 20 == 0 && k == 0,
            });
        }
        m.main_dept_id = m.depts.first().map(|d| d.dept_id);
        plan.upsert_members.push(m);
        plan.changes.push(Change {
            object: ObjectKind::Member,
            id: member_id,
            kind: ChangeKind::Created,
            reason: "new member".into(),
        });
    }
    let corp = CorpRecord {
        full_name: full_name.to_string(),
        title: format!("Synthetic {members}"),
        corp_type: match provider {
            Provider::DingTalk => "corps.DDInnerType".to_string(),
            _ => "corps.QywxInnerType".to_string(),
        },
        corp_id: format!("synthetic-{members}"),
        provider,
    };
    SyntheticOrg { corp, plan }
}

/// Rows a [`creation_plan`] writes into an empty store: departments,
/// members, memberships, users and bindings.
pub fn expected_rows(org: &SyntheticOrg) -> u64 {
    let members = org.plan.upsert_members.len() as u64;
    let memberships: u64 = org
        .plan
        .upsert_members
        .iter()
        .map(|m| m.depts.len() as u64)
        .sum();
    org.plan.upsert_depts.len() as u64 + members * 3 + memberships
}
