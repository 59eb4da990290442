//! The seeded fault-injection suite, for both platforms.
//!
//! Every seed is a scenario: a small simulated org (12–20 departments in up
//! to four levels, 40–80 members, roles with holders, admins) is synced into
//! an embedded SQLite store through an org element of a fixture app, first
//! without faults, then for [`ROUNDS`] rounds in which the org changes
//! upstream (hires, leavers, moves, renames, new and removed departments,
//! role holders, admins, sometimes the app's visible range) and the
//! simulator faults at least 10 % of the calls (busy, 5xx, dropped
//! connections, stalls, malformed bodies, token revocation mid-walk,
//! permission errors — random and sticky on one or two departments — and
//! whole-round outages of single requests), and finally once more without
//! faults.
//!
//! The invariant, checked after every sync over facts of the org (a
//! department exists, its parent, its name; a member's status and name; a
//! membership; a role, its name, a holding; an admin entry): every fact the
//! sync changed now has its true value, so a sync may only move the store
//! toward the truth and a failed read changes nothing it did not read. A
//! sync that reports a complete read must leave the store equal to the
//! truth. The last, fault-free sync must too.
//!
//! The offline guard is fully open (`sync.maxOfflineRatio` 1.0): only the
//! engine's read-coverage rules protect the store.
//!
//! Environment:
//! - `JIT_FAULT_SEEDS` — seeds per platform (default 50);
//! - `JIT_FAULT_ONLY` — `wecom:17` or `dingtalk:3`: replay one seed;
//! - `JIT_FAULT_JOBS` — seeds run at once per platform (default 8);
//! - `JIT_FAULT_VIA` — by default every sync is the element's own
//!   `syncCorp`, as a host calls it (the org config sets short time-outs and
//!   retries: `sync.timeoutSecs`, `sync.retries`, `sync.retryBaseMs`);
//!   `engine` runs the engine directly with a client built here instead.
//!
//! A violation fails the test with the platform, seed, round, the first
//! fact that broke the invariant with its before/after/true values, the
//! faults of that round, and the command that replays the seed. Passing or
//! not, each platform writes one summary line to stderr (outside the test
//! harness's capture): seeds, syncs, calls, faults by kind, complete and
//! partial reads.

use jit_apiclient::{ClientTuning, NoProgress, RateLimit, RetryPolicy};
use jit_core::{App, LoadOptions, TypeRegistry};
use jit_corps::CorpElement;
use jit_dingtalk::{DingTalkClient, DingTalkConfig};
use jit_org::{CorpSnapshot, MemberStatus};
use jit_sim::{
    AdminSpec, DeptRefusal, FaultKind, FaultSettings, MembershipSpec, Mutation, OrgRef, SimConfig,
    SimHandle, SimStats, SimStatus, Simulator,
};
use jit_store::CorpStore;
use jit_sync::{run_sync, CorpSource};
use jit_wecom::{WecomClient, WecomConfig};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Faulted rounds per seed (between the first and the last, fault-free sync).
const ROUNDS: u64 = 4;
/// The element's fullName in the fixture app.
const ELEMENT: &str = "corps.Org";
/// A client gives up on an answer after this long...
const CLIENT_TIMEOUT_MS: u64 = 250;
/// ...so a stalled answer, held this long, always times out.
const STALL_MS: u64 = 350;

// ---------------------------------------------------------------- platforms

use jit_org::Platform;

/// What the suite needs of a platform beyond its name.
trait Simulated {
    fn label(self) -> &'static str;
    fn org(self) -> OrgRef;
    fn truth(self, sim: &SimHandle) -> CorpSnapshot;
}

impl Simulated for Platform {
    fn label(self) -> &'static str {
        self.as_str()
    }

    /// The simulated org (WeCom corp, or DingTalk org 0) and its stats label.
    fn org(self) -> OrgRef {
        match self {
            Platform::Wecom => OrgRef::Wecom,
            Platform::DingTalk => OrgRef::Dingtalk(0),
        }
    }

    fn truth(self, sim: &SimHandle) -> CorpSnapshot {
        match self {
            Platform::Wecom => sim.wecom_truth(),
            Platform::DingTalk => sim.dingtalk_truth(0),
        }
    }
}

// ---------------------------------------------------------------- randomness

/// SplitMix64: the scenario of a seed is the same on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, platform: Platform) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((platform as u64 + 1) * 0x5151))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------- facts

/// One fact of an org, as the invariant compares them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Fact {
    Dept(i64),
    DeptParent(i64),
    DeptName(i64),
    MemberStatus(String),
    MemberName(String),
    Membership(String, i64),
    Role(String),
    RoleName(String),
    RoleHolder(String, String),
    Admin(String),
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fact::Dept(d) => write!(f, "dept {d}"),
            Fact::DeptParent(d) => write!(f, "dept {d} parent"),
            Fact::DeptName(d) => write!(f, "dept {d} name"),
            Fact::MemberStatus(u) => write!(f, "member {u} status"),
            Fact::MemberName(u) => write!(f, "member {u} name"),
            Fact::Membership(u, d) => write!(f, "membership ({u}, dept {d})"),
            Fact::Role(r) => write!(f, "role {r}"),
            Fact::RoleName(r) => write!(f, "role {r} name"),
            Fact::RoleHolder(r, u) => write!(f, "role {r} holder {u}"),
            Fact::Admin(u) => write!(f, "admin {u}"),
        }
    }
}

/// An org as facts with their values; a fact that is not there has the
/// value [`absent`] of its kind.
type Facts = BTreeMap<Fact, String>;

/// The value of a fact an org does not hold: members are never deleted, so
/// a member the store never had or the platform no longer shows is offline.
fn absent(f: &Fact) -> &'static str {
    match f {
        Fact::MemberStatus(_) => "offline",
        _ => "absent",
    }
}

fn value(facts: &Facts, f: &Fact) -> String {
    facts
        .get(f)
        .cloned()
        .unwrap_or_else(|| absent(f).to_string())
}

/// The facts of an org (the store's or the simulator's truth). An offline
/// member's memberships and role holdings are kept by the store as history,
/// so they are facts only of members who are not offline.
fn facts(s: &CorpSnapshot) -> Facts {
    let mut out = Facts::new();
    for d in s.depts.values() {
        out.insert(Fact::Dept(d.dept_id), "present".into());
        out.insert(
            Fact::DeptParent(d.dept_id),
            d.parent_id.map_or("none".into(), |p| p.to_string()),
        );
        out.insert(Fact::DeptName(d.dept_id), d.name.clone());
    }
    let live = |u: &str| {
        s.members
            .get(u)
            .is_some_and(|m| m.status != MemberStatus::Offline)
    };
    for m in s.members.values() {
        out.insert(
            Fact::MemberStatus(m.member_id.clone()),
            m.status.as_str().to_string(),
        );
        if !live(&m.member_id) {
            continue;
        }
        out.insert(Fact::MemberName(m.member_id.clone()), m.name.clone());
        for d in &m.depts {
            out.insert(
                Fact::Membership(m.member_id.clone(), d.dept_id),
                "yes".into(),
            );
        }
    }
    for r in s.roles.values() {
        out.insert(Fact::Role(r.role_id.clone()), "present".into());
        out.insert(Fact::RoleName(r.role_id.clone()), r.name.clone());
        for u in r.members.iter().filter(|u| live(u)) {
            out.insert(Fact::RoleHolder(r.role_id.clone(), u.clone()), "yes".into());
        }
    }
    for a in s.admins.iter().flatten() {
        out.insert(
            Fact::Admin(a.member_id.clone()),
            format!("level {}", a.level),
        );
    }
    out
}

/// The first fact that breaks the invariant, with its before/after/true values.
struct Broken {
    fact: Fact,
    before: String,
    after: String,
    truth: String,
    rule: &'static str,
}

/// Every fact the sync changed must now be true; after a complete read
/// every fact must be true.
fn check(before: &Facts, after: &Facts, truth: &Facts, complete: bool) -> Option<Broken> {
    let keys: BTreeSet<&Fact> = before
        .keys()
        .chain(after.keys())
        .chain(truth.keys())
        .collect();
    for f in keys {
        let (b, a, t) = (value(before, f), value(after, f), value(truth, f));
        let rule = if a != b && a != t {
            "the sync changed a fact to something other than the truth"
        } else if complete && a != t {
            "a complete read left a fact different from the truth"
        } else {
            continue;
        };
        return Some(Broken {
            fact: f.clone(),
            before: b,
            after: a,
            truth: t,
            rule,
        });
    }
    None
}

// ---------------------------------------------------------------- fixture

/// An app folder with one org element on the simulator and its own store.
struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn CorpStore>,
    app: App,
}

fn org_config(platform: Platform, sim: &SimHandle) -> Value {
    // Short time-outs; the offline guard fully open; a client budget the
    // unthrottled simulator never needs.
    let sync = |rate_key: &str, budget: u32| {
        json!({"maxOfflineRatio": 1.0, "timeoutSecs": CLIENT_TIMEOUT_MS as f64 / 1000.0,
               "concurrency": 8, "retries": 2, "retryBaseMs": 5, rate_key: budget})
    };
    match platform {
        Platform::Wecom => {
            let w = sim.info().wecom;
            json!({"corpId": w.corp_id, "agentId": w.agent_id.to_string(), "secret": w.secret,
                   "apiBase": w.api_base_url, "sync": sync("rateLimitPerMinute", 600_000)})
        }
        Platform::DingTalk => {
            let d = &sim.info().dingtalk[0];
            json!({"authConfig": {"corpId": d.corp_id, "agentId": d.agent_id, "appKey": d.app_key,
                   "appSecret": d.app_secret, "apiBase": d.api_base_url},
                   "sync": sync("rateLimitPerSecond", 10_000)})
        }
    }
}

async fn fixture(platform: Platform, sim: &SimHandle) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |rel: &str, v: Value| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    };
    write(
        "app.json",
        json!({"appId": "t.faultsuite", "title": "Fault suite app"}),
    );
    let type_name = match platform {
        Platform::Wecom => "corps.QywxInnerType",
        Platform::DingTalk => "corps.DDInnerType",
    };
    write(
        "corps/Org/e.json",
        json!({"title": "Faulted org", "type": type_name}),
    );
    write("corps/Org/Org.json", org_config(platform, sim));
    let store = jit_store::open(dir.path().join("org.db").to_str().unwrap())
        .await
        .expect("sqlite store opens");
    let mut registry = TypeRegistry::new();
    jit_corps::register_builtins_with_store(&mut registry, store.clone());
    let app = App::load(
        dir.path(),
        LoadOptions {
            registry,
            env: None,
            skip_startup: true,
        },
    )
    .expect("app loads");
    assert!(
        !app.diagnostics().has_errors(),
        "{:?}",
        app.diagnostics().iter().collect::<Vec<_>>()
    );
    Fixture {
        _dir: dir,
        store,
        app,
    }
}

/// A client of the element's org with short retries: three attempts a few
/// milliseconds apart, so a request in an outage fails its read quickly.
fn fast_client(platform: Platform, sim: &SimHandle) -> Arc<dyn CorpSource> {
    let tuning = ClientTuning {
        concurrency: 8,
        rate_limit: RateLimit::unlimited(),
        timeout: Duration::from_millis(CLIENT_TIMEOUT_MS),
        retry: RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(40),
            throttle_delay: Duration::from_millis(10),
        },
    };
    match platform {
        Platform::Wecom => {
            let w = sim.info().wecom;
            let mut c = WecomConfig::new(&w.corp_id, w.agent_id.to_string(), &w.secret);
            c.api_base = w.api_base_url.clone();
            c.tuning = tuning;
            Arc::new(WecomClient::new(c).expect("client"))
        }
        Platform::DingTalk => {
            let d = &sim.info().dingtalk[0];
            let mut c = DingTalkConfig::new(
                &d.corp_id,
                d.agent_id.to_string(),
                &d.app_key,
                &d.app_secret,
            );
            c.api_base = d.api_base_url.clone();
            c.oapi_base = d.oapi_base_url.clone();
            c.tuning = tuning;
            Arc::new(DingTalkClient::new(c).expect("client"))
        }
    }
}

/// The ids of the roles a round may hand out: all but DingTalk's two admin
/// roles (主管理员, 子管理员), which follow the admin list.
fn plain_roles(whole: &CorpSnapshot) -> Vec<i64> {
    whole
        .roles
        .values()
        .filter(|r| !matches!(r.name.as_str(), "主管理员" | "子管理员"))
        .filter_map(|r| r.role_id.parse().ok())
        .collect()
}

/// What one sync reported.
struct Synced {
    complete: bool,
    /// Failed parts of the read, or why the whole sync failed.
    failures: Vec<String>,
    notes: Vec<String>,
}

/// One seed's world: the simulator, the fixture app with its store, the
/// client the syncs read with, and what the scenario has set upstream.
struct Scenario {
    platform: Platform,
    seed: u64,
    sim: SimHandle,
    fx: Fixture,
    client: Arc<dyn CorpSource>,
    via_element: bool,
    rng: Rng,
    /// The visible range in force (`None` = whole org).
    range: Option<Vec<i64>>,
    refused: Vec<DeptRefusal>,
    hires: u64,
}

impl Scenario {
    async fn sync(&self) -> Synced {
        if self.via_element {
            let h = self.fx.app.get_element(ELEMENT).expect("element builds");
            return match h.call("syncCorp", Value::Null).await {
                Ok(r) => Synced {
                    complete: r["complete"] == true,
                    failures: r["failures"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|f| format!("{}: {}", f["what"], f["error"]))
                        .collect(),
                    notes: r["notes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|n| n.to_string())
                        .collect(),
                },
                Err(e) => Synced {
                    complete: false,
                    failures: vec![format!("syncCorp failed: {e}")],
                    notes: vec![],
                },
            };
        }
        // The app caches the element: one element per seed, as a host has it.
        let h = self.fx.app.get_element(ELEMENT).expect("element builds");
        let corp = h.downcast_ref::<CorpElement>().expect("a built-in org");
        let record = corp.corp_record();
        self.fx
            .store
            .upsert_corp(&record)
            .await
            .expect("corp record");
        match run_sync(
            self.client.as_ref(),
            self.fx.store.as_ref(),
            &record,
            &corp.sync_options(),
            &NoProgress,
        )
        .await
        {
            Ok(r) => Synced {
                complete: r.is_complete(),
                failures: r
                    .failures
                    .iter()
                    .map(|f| format!("{}: {}", f.what, f.error))
                    .collect(),
                notes: r.notes.clone(),
            },
            Err(e) => Synced {
                complete: false,
                failures: vec![format!("sync failed: {e}")],
                notes: vec![],
            },
        }
    }

    async fn stored(&self) -> CorpSnapshot {
        self.fx
            .store
            .load_snapshot(ELEMENT)
            .await
            .expect("store loads")
    }

    /// The whole org, outside the visible range too (to pick mutations from).
    fn whole_org(&self) -> CorpSnapshot {
        let org = self.platform.org();
        if self.range.is_none() {
            return self.platform.truth(&self.sim);
        }
        self.sim.set_visible_range(org, None).expect("range");
        let whole = self.platform.truth(&self.sim);
        self.sim
            .set_visible_range(org, self.range.clone())
            .expect("range");
        whole
    }

    fn mutate(&self, m: Mutation) -> bool {
        self.sim.mutate(self.platform.org(), m).is_ok()
    }

    /// More role holders than the generator gives a small org.
    fn seed_role_holders(&mut self) {
        let whole = self.whole_org();
        let roles: Vec<i64> = plain_roles(&whole);
        let users: Vec<String> = whole.members.keys().cloned().collect();
        for _ in 0..4 {
            let role = *self.rng.pick(&roles);
            let n = self.rng.range(2, 4);
            let userids = (0..n).map(|_| self.rng.pick(&users).clone()).collect();
            let _ = self.mutate(Mutation::AddRoleMembers {
                role_id: role,
                userids,
            });
        }
    }

    fn some_depts(&mut self, whole: &CorpSnapshot) -> Vec<MembershipSpec> {
        let ids: Vec<i64> = whole.depts.keys().copied().collect();
        let mut out: Vec<MembershipSpec> = Vec::new();
        for _ in 0..self.rng.range(1, 2) {
            let d = *self.rng.pick(&ids);
            if out.iter().all(|m| m.dept_id != d) {
                out.push(MembershipSpec {
                    dept_id: d,
                    order: self.rng.below(100) as i64,
                    leader: self.rng.chance(0.1),
                });
            }
        }
        out
    }

    /// 2–5 upstream changes; returns what was applied, for the report.
    fn upstream_changes(&mut self, round: u64) -> Vec<String> {
        let mut done = Vec::new();
        let n = self.rng.range(2, 5);
        let mut tries = 0;
        while (done.len() as u64) < n && tries < 30 {
            tries += 1;
            let whole = self.whole_org();
            let users: Vec<String> = whole
                .members
                .values()
                .filter(|m| m.status != MemberStatus::Offline)
                .map(|m| m.member_id.clone())
                .collect();
            let depts: Vec<i64> = whole.depts.keys().copied().collect();
            let roles: Vec<i64> = plain_roles(&whole);
            if users.len() < 5 {
                break;
            }
            let who = self.rng.pick(&users).clone();
            let (label, m) = match self.rng.below(11) {
                0 | 1 => {
                    self.hires += 1;
                    let userid = format!("hire{}r{round}n{}", self.seed, self.hires);
                    let depts = self.some_depts(&whole);
                    (
                        format!("hire {userid}"),
                        Mutation::add_member(userid.clone(), format!("新人{}", self.hires), depts),
                    )
                }
                2 => {
                    // WeCom keeps a leaver listed with status 5 or removes them.
                    let m = if self.platform == Platform::Wecom && self.rng.chance(0.5) {
                        Mutation::set_member_status(who.clone(), SimStatus::Left)
                    } else {
                        Mutation::RemoveMember {
                            userid: who.clone(),
                        }
                    };
                    (format!("leaver {who}"), m)
                }
                3 | 4 => {
                    let depts = self.some_depts(&whole);
                    (
                        format!("move {who}"),
                        Mutation::MoveMember {
                            userid: who.clone(),
                            depts,
                            main_dept: None,
                        },
                    )
                }
                5 => (
                    format!("rename {who}"),
                    Mutation::rename_member(
                        who.clone(),
                        format!("改名{round}-{}", self.rng.below(1000)),
                    ),
                ),
                6 => {
                    let d = *self.rng.pick(&depts);
                    (
                        format!("rename dept {d}"),
                        Mutation::RenameDept {
                            dept_id: d,
                            name: format!("部门{round}-{}", self.rng.below(1000)),
                        },
                    )
                }
                7 => {
                    let p = *self.rng.pick(&depts);
                    let r = self.rng.below(1000);
                    (
                        format!("new dept under {p}"),
                        Mutation::add_dept(p, format!("新部门{round}-{r}")),
                    )
                }
                8 => {
                    let d = *self.rng.pick(&depts);
                    let p = *self.rng.pick(&depts);
                    if self.rng.chance(0.3) {
                        (
                            format!("remove dept {d}"),
                            Mutation::RemoveDept { dept_id: d },
                        )
                    } else {
                        (
                            format!("move dept {d} under {p}"),
                            Mutation::MoveDept {
                                dept_id: d,
                                parent_id: p,
                            },
                        )
                    }
                }
                9 => {
                    let role = *self.rng.pick(&roles);
                    let holders: Vec<String> = whole.roles[&role.to_string()].members.clone();
                    if !holders.is_empty() && self.rng.chance(0.5) {
                        let u = self.rng.pick(&holders).clone();
                        (
                            format!("role {role} loses {u}"),
                            Mutation::RemoveRoleMembers {
                                role_id: role,
                                userids: vec![u],
                            },
                        )
                    } else {
                        (
                            format!("role {role} gains {who}"),
                            Mutation::AddRoleMembers {
                                role_id: role,
                                userids: vec![who.clone()],
                            },
                        )
                    }
                }
                _ => {
                    let levels: &[i64] = match self.platform {
                        Platform::Wecom => &[1, 0],
                        Platform::DingTalk => &[1, 2],
                    };
                    let mut admins: Vec<AdminSpec> = Vec::new();
                    for _ in 0..self.rng.range(1, 3) {
                        let u = self.rng.pick(&users).clone();
                        if admins.iter().all(|a| a.userid != u) {
                            let level = *self.rng.pick(levels);
                            admins.push(AdminSpec { userid: u, level });
                        }
                    }
                    ("admins".into(), Mutation::SetAdmins { admins })
                }
            };
            if self.mutate(m) {
                done.push(label);
            }
        }
        // Sometimes the app's visible range changes too.
        if self.rng.chance(0.25) {
            let whole = self.whole_org();
            let below_root: Vec<i64> = whole
                .depts
                .values()
                .filter(|d| d.parent_id.is_some())
                .map(|d| d.dept_id)
                .collect();
            let before = self.range.clone();
            self.range = if self.range.is_some() && self.rng.chance(0.5) {
                None
            } else {
                let mut roots = vec![*self.rng.pick(&below_root)];
                if self.rng.chance(0.5) {
                    roots.push(*self.rng.pick(&below_root));
                }
                Some(roots)
            };
            self.sim
                .set_visible_range(self.platform.org(), self.range.clone())
                .expect("range of existing departments");
            // An app that sees nobody is refused by the engine's empty-read
            // guard, which is not what this suite is about: such a range
            // is not applied.
            if self.platform.truth(&self.sim).members.len() < 5 {
                self.range = before;
                self.sim
                    .set_visible_range(self.platform.org(), self.range.clone())
                    .expect("the previous range");
            } else {
                done.push(format!("visible range {:?}", self.range));
            }
        }
        done
    }

    /// This round's faults: ≥ 10 % of attempts, a random mix of kinds,
    /// sticky refusals of one or two departments the app can see in most rounds.
    fn faults(&mut self, round: u64) -> FaultSettings {
        let mut kinds: Vec<FaultKind> = FaultKind::ALL
            .into_iter()
            .filter(|_| self.rng.chance(0.6))
            .collect();
        // Permission and revocation draws do not apply to every call: keep a
        // kind that does, so the rate of faulted calls stays ≥ 10 %.
        if !kinds
            .iter()
            .any(|k| FaultKind::TRANSPORT.contains(k) && *k != FaultKind::Stall)
        {
            kinds.push(FaultKind::Busy);
        }
        let visible: Vec<i64> = self
            .platform
            .truth(&self.sim)
            .depts
            .keys()
            .copied()
            .collect();
        // Sticky refusals in three rounds of four, sometimes the same as in
        // the round before (a misconfiguration lasts); the other rounds may
        // read completely, so the complete-read rule is exercised under
        // faults too.
        if self.rng.chance(0.25) {
            self.refused.clear();
        } else if self.refused.is_empty() || self.rng.chance(0.7) {
            self.refused.clear();
            for _ in 0..self.rng.range(1, 2) {
                let errcode = match self.platform {
                    Platform::Wecom if self.rng.chance(0.5) => 60020,
                    _ => 60011,
                };
                self.refused.push(DeptRefusal {
                    dept_id: *self.rng.pick(&visible),
                    errcode,
                });
            }
        }
        self.sim
            .set_refused_depts(self.platform.org(), self.refused.clone())
            .expect("refusals");
        let settings = FaultSettings {
            rate: 0.12 + self.rng.below(13) as f64 / 100.0,
            kinds,
            outage_rate: self.rng.below(5) as f64 / 100.0,
            stall_ms: STALL_MS,
            round,
        };
        self.sim
            .set_fault_settings(settings.clone())
            .expect("valid");
        settings
    }

    fn no_faults(&mut self, round: u64) {
        self.refused.clear();
        self.sim
            .set_refused_depts(self.platform.org(), vec![])
            .expect("refusals");
        self.sim
            .set_fault_settings(FaultSettings {
                round,
                ..FaultSettings::default()
            })
            .expect("valid");
    }
}

// ---------------------------------------------------------------- one seed

/// Counters of one seed (and, summed, of a platform).
#[derive(Default)]
struct Tally {
    seeds: u64,
    syncs: u64,
    complete: u64,
    partial: u64,
    calls: u64,
    faulted_round_calls: u64,
    faults: BTreeMap<FaultKind, u64>,
    failed_seeds: Vec<u64>,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.seeds += o.seeds;
        self.syncs += o.syncs;
        self.complete += o.complete;
        self.partial += o.partial;
        self.calls += o.calls;
        self.faulted_round_calls += o.faulted_round_calls;
        for (k, n) in &o.faults {
            *self.faults.entry(*k).or_insert(0) += n;
        }
        self.failed_seeds.extend(&o.failed_seeds);
    }
}

fn calls_of(st: &SimStats, app: &str) -> u64 {
    st.total_calls(app)
}

fn kinds_delta(before: &SimStats, after: &SimStats, app: &str) -> BTreeMap<FaultKind, u64> {
    let b = before.faults_by_kind(app);
    after
        .faults_by_kind(app)
        .into_iter()
        .map(|(k, n)| (k, n - b.get(&k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn replay(platform: Platform, seed: u64) -> String {
    format!(
        "JIT_FAULT_SEEDS={} JIT_FAULT_ONLY={}:{seed} cargo test -p jit-corps --test tests fault_suite:: -- --nocapture",
        seeds(),
        platform.label()
    )
}

#[allow(clippy::too_many_arguments)]
fn violation(
    sc: &Scenario,
    round: &str,
    b: &Broken,
    synced: &Synced,
    settings: Option<&FaultSettings>,
    injected: &BTreeMap<FaultKind, u64>,
    changes: &[String],
) -> String {
    let faults = match settings {
        None => "none".to_string(),
        Some(f) => format!(
            "rate {:.2}, outage rate {:.2}, kinds [{}], refused depts {:?}; injected {}",
            f.rate,
            f.outage_rate,
            f.kinds
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            sc.refused
                .iter()
                .map(|r| (r.dept_id, r.errcode))
                .collect::<Vec<_>>(),
            fmt_kinds(injected)
        ),
    };
    format!(
        "fault suite: {} seed {} round {round} broke the invariant\n  \
         fact: {}\n  before: {:?}  after: {:?}  truth: {:?}\n  rule: {}\n  \
         read: {} ({} failure(s)){}\n  notes: {:?}\n  upstream changes: {:?}\n  faults: {faults}\n  \
         replay: {}",
        sc.platform.label(),
        sc.seed,
        b.fact,
        b.before,
        b.after,
        b.truth,
        b.rule,
        if synced.complete {
            "complete"
        } else {
            "partial"
        },
        synced.failures.len(),
        synced
            .failures
            .iter()
            .take(6)
            .map(|f| format!("\n    - {f}"))
            .collect::<String>(),
        synced.notes.iter().take(6).collect::<Vec<_>>(),
        changes,
        replay(sc.platform, sc.seed)
    )
}

fn fmt_kinds(k: &BTreeMap<FaultKind, u64>) -> String {
    if k.is_empty() {
        return "none".into();
    }
    k.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs one seed; the tally counts its calls and faults even when it failed.
async fn run_seed(platform: Platform, seed: u64, via_element: bool) -> (Tally, Option<String>) {
    let mut rng = Rng::new(seed, platform);
    let depts = rng.range(12, 20) as usize;
    let users = rng.range(40, 80) as usize;
    let sim = Simulator::start(SimConfig {
        seed,
        depts,
        users,
        dingtalk_depts: Some(depts),
        dingtalk_users: Some(users),
        max_depth: 3,
        fan_out: 3,
        dingtalk_orgs: 1,
        // No rate limits: throttling is not a fault this suite injects, and
        // the suite must be fast.
        wecom_rate_per_minute: 0,
        wecom_rate_per_hour: 0,
        dingtalk_rate_per_second: 0,
        stall_ms: STALL_MS,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let fx = fixture(platform, &sim).await;
    let client = fast_client(platform, &sim);
    let mut sc = Scenario {
        platform,
        seed,
        sim,
        fx,
        client,
        via_element,
        rng,
        range: None,
        refused: Vec::new(),
        hires: 0,
    };
    let mut tally = Tally {
        seeds: 1,
        ..Tally::default()
    };
    let failure = rounds(&mut sc, &mut tally).await.err();
    let st = sc.sim.stats();
    let app = platform.org().label();
    tally.calls = calls_of(&st, &app);
    tally.faults = st.faults_by_kind(&app);
    if failure.is_some() {
        tally.failed_seeds.push(seed);
    }
    (tally, failure)
}

/// The scenario of one seed: a fault-free first sync, the faulted rounds,
/// a fault-free last sync; the first violation ends it.
async fn rounds(sc: &mut Scenario, tally: &mut Tally) -> Result<(), String> {
    let (platform, seed) = (sc.platform, sc.seed);
    let app = platform.org().label();
    sc.seed_role_holders();

    // Round 0: no faults, a complete read, the store becomes the truth.
    sc.no_faults(0);
    let before = facts(&sc.stored().await);
    let truth = facts(&sc.platform.truth(&sc.sim));
    let synced = sc.sync().await;
    tally.syncs += 1;
    let after = facts(&sc.stored().await);
    if !synced.complete {
        return Err(format!(
            "fault suite: {} seed {seed}: the fault-free first sync was not complete: {:?}\n  replay: {}",
            platform.label(),
            synced.failures,
            replay(platform, seed)
        ));
    }
    tally.complete += 1;
    if let Some(b) = check(&before, &after, &truth, true) {
        return Err(violation(
            sc,
            "0 (first, fault-free)",
            &b,
            &synced,
            None,
            &BTreeMap::new(),
            &[],
        ));
    }

    for round in 1..=ROUNDS {
        let changes = sc.upstream_changes(round);
        let settings = sc.faults(round);
        let stats0 = sc.sim.stats();
        let before = facts(&sc.stored().await);
        let truth = facts(&sc.platform.truth(&sc.sim));
        let synced = sc.sync().await;
        tally.syncs += 1;
        let stats1 = sc.sim.stats();
        let injected = kinds_delta(&stats0, &stats1, &app);
        tally.faulted_round_calls += calls_of(&stats1, &app) - calls_of(&stats0, &app);
        let after = facts(&sc.stored().await);
        if synced.complete {
            tally.complete += 1;
        } else {
            tally.partial += 1;
        }
        if let Some(b) = check(&before, &after, &truth, synced.complete) {
            return Err(violation(
                sc,
                &round.to_string(),
                &b,
                &synced,
                Some(&settings),
                &injected,
                &changes,
            ));
        }
    }

    // The last round: no faults, a complete read, the store is the truth.
    let last = ROUNDS + 1;
    sc.no_faults(last);
    let before = facts(&sc.stored().await);
    let truth = facts(&sc.platform.truth(&sc.sim));
    let synced = sc.sync().await;
    tally.syncs += 1;
    let after = facts(&sc.stored().await);
    if synced.complete {
        tally.complete += 1;
    } else {
        tally.partial += 1;
    }
    let broken = check(&before, &after, &truth, true).map(|mut b| {
        if !synced.complete {
            b.rule = "the last, fault-free sync must read completely and store the truth";
        }
        b
    });
    if let Some(b) = broken {
        return Err(violation(
            sc,
            &format!("{last} (last, fault-free)"),
            &b,
            &synced,
            None,
            &BTreeMap::new(),
            &[],
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- the suite

fn seeds() -> u64 {
    std::env::var("JIT_FAULT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50)
}

/// The seeds to run for a platform: all, or the one `JIT_FAULT_ONLY` names.
fn selected(platform: Platform) -> Vec<u64> {
    match std::env::var("JIT_FAULT_ONLY") {
        Ok(only) if !only.trim().is_empty() => {
            let (p, s) = only
                .split_once(':')
                .expect("JIT_FAULT_ONLY is platform:seed, e.g. wecom:17");
            if p == platform.label() {
                vec![s.parse().expect("a numeric seed")]
            } else {
                vec![]
            }
        }
        _ => (0..seeds()).collect(),
    }
}

fn suite(platform: Platform) {
    let seeds = selected(platform);
    if seeds.is_empty() {
        return;
    }
    let jobs: usize = std::env::var("JIT_FAULT_JOBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let via_element = std::env::var("JIT_FAULT_VIA").map_or(true, |v| v != "engine");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let t0 = Instant::now();
    let results: Vec<(u64, Tally, Option<String>)> = rt.block_on(async {
        let gate = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for seed in seeds {
            let gate = gate.clone();
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await.expect("open");
                let (tally, failure) = run_seed(platform, seed, via_element).await;
                (seed, tally, failure)
            });
        }
        let mut out = Vec::new();
        while let Some(r) = tasks.join_next().await {
            out.push(r.unwrap_or_else(|e| {
                // A panic inside a seed (the fixture's own checks) fails the suite too.
                let tally = Tally {
                    seeds: 1,
                    failed_seeds: vec![u64::MAX],
                    ..Tally::default()
                };
                (u64::MAX, tally, Some(format!("a seed panicked: {e}")))
            }));
        }
        out.sort_by_key(|r| r.0);
        out
    });
    let mut total = Tally::default();
    let mut first_failure: Option<String> = None;
    for (_, tally, failure) in &results {
        total.add(tally);
        if let Some(msg) = failure {
            first_failure.get_or_insert_with(|| msg.clone());
        }
    }
    let faults: u64 = total.faults.values().sum();
    // A leading newline: `cargo test -q` leaves its progress dots on the line.
    let line = format!(
        "\nfault suite {}: {} seeds ({} failed{}), {} syncs ({} complete, {} partial reads), {} calls, {} faults injected ({:.1}% of the calls of faulted rounds; {}), {:.1}s{}\n",
        platform.label(),
        total.seeds,
        total.failed_seeds.len(),
        if total.failed_seeds.is_empty() {
            String::new()
        } else {
            format!(": {:?}", total.failed_seeds)
        },
        total.syncs,
        total.complete,
        total.partial,
        total.calls,
        faults,
        if total.faulted_round_calls == 0 {
            0.0
        } else {
            100.0 * faults as f64 / total.faulted_round_calls as f64
        },
        fmt_kinds(&total.faults),
        t0.elapsed().as_secs_f64(),
        if via_element { ", via syncCorp" } else { "" },
    );
    // Straight to stderr, past the harness's output capture: CI shows it.
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(msg) = first_failure {
        panic!("{msg}");
    }
}

#[test]
fn wecom_syncs_under_faults_never_lose_what_they_did_not_read() {
    suite(Platform::Wecom);
}

#[test]
fn dingtalk_syncs_under_faults_never_lose_what_they_did_not_read() {
    suite(Platform::DingTalk);
}

// ---------------------------------------------------------------- the invariant itself

fn org(depts: &[(i64, Option<i64>)], members: &[(&str, MemberStatus, &[i64])]) -> CorpSnapshot {
    let mut s = CorpSnapshot::new("c");
    for (id, parent) in depts {
        s.depts
            .insert(*id, jit_org::Dept::new(*id, *parent, format!("d{id}")));
    }
    for (id, status, ds) in members {
        let mut m = jit_org::Member::new(id.to_string(), id.to_string());
        m.status = *status;
        m.depts = ds
            .iter()
            .map(|d| jit_org::DeptMembership {
                dept_id: *d,
                order: 0,
                is_leader: false,
            })
            .collect();
        s.members.insert(id.to_string(), m);
    }
    s
}

#[test]
fn the_invariant_lets_a_partial_sync_keep_old_facts_but_not_lose_them() {
    use MemberStatus::{Active, Offline};
    let tree = [(1, None), (2, Some(1))];
    let before = facts(&org(&tree, &[("u1", Active, &[2])]));
    // Upstream, u1 moved from department 2 to 1.
    let moved = facts(&org(&tree, &[("u1", Active, &[1])]));
    // A partial read that saw only department 1 stores the new membership
    // and keeps the old one in the unread department 2: allowed...
    let kept = facts(&org(&tree, &[("u1", Active, &[1, 2])]));
    assert!(check(&before, &kept, &moved, false).is_none());
    // ...but not after a read that claims to be complete.
    let b = check(&before, &kept, &moved, true).expect("not the truth");
    assert_eq!(b.fact.to_string(), "membership (u1, dept 2)");

    // Upstream nothing changed, yet a sync lost the membership.
    let lost = facts(&org(&tree, &[("u1", Active, &[])]));
    let b = check(&before, &lost, &before, false).expect("a lost membership");
    assert_eq!(b.fact.to_string(), "membership (u1, dept 2)");
    assert_eq!(
        (b.before, b.after, b.truth),
        ("yes".into(), "absent".into(), "yes".into())
    );

    // Offlining someone who is still there changes a fact away from the truth;
    // offlining a leaver is what the truth says (absent = offline).
    let offlined = facts(&org(&tree, &[("u1", Offline, &[2])]));
    let b = check(&before, &offlined, &before, false).expect("a wrong offline");
    assert_eq!(b.fact.to_string(), "member u1 status");
    let left = facts(&org(&tree, &[]));
    assert!(check(&before, &offlined, &left, true).is_none());
}
