//! The simulator's internal organizations and the seeded generator.
//!
//! One [`Org`] is the truth of one simulated corp. Handlers render it in the
//! platform's wire format; [`Org::truth`] renders it in the jit-org model.
//! Everything is pre-indexed (members by department, children by parent) so
//! that a 100k-member org answers each call without scanning.

use crate::config::SimConfig;
use jit_org::{Admin, CorpSnapshot, Dept, DeptMembership, Member, MemberStatus, Role, RoleGroup};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// Which platform a simulated org speaks: WeCom (`/cgi-bin/...`) or
/// DingTalk (`/topapi/...`, `/v1.0/...`).
pub use jit_org::Platform;

/// A member's state inside the simulator.
///
/// WeCom shows it as `status` 1/2/4/5. DingTalk only has the `active` flag:
/// `Disabled` and `NotActivated` both show as `active: false`, and a `Left`
/// member is absent from every DingTalk API (people who left are gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimStatus {
    /// Activated and enabled (WeCom 1, DingTalk `active: true`).
    Active,
    /// Disabled by an administrator (WeCom 2).
    Disabled,
    /// Invited, not activated (WeCom 4, DingTalk `active: false`).
    NotActivated,
    /// Left the company (WeCom 5, "退出企业"); absent on DingTalk.
    Left,
}

impl SimStatus {
    /// WeCom's numeric `status`.
    pub fn wecom_code(self) -> i64 {
        match self {
            SimStatus::Active => 1,
            SimStatus::Disabled => 2,
            SimStatus::NotActivated => 4,
            SimStatus::Left => 5,
        }
    }
}

/// Deterministic pseudo-random numbers (SplitMix64): the same seed gives the
/// same org on every machine and every Rust version.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0, 0)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
    pub(crate) fn pick<'a, T>(&mut self, s: &'a [T]) -> &'a T {
        &s[self.below(s.len() as u64) as usize]
    }
}

/// A stateless 64-bit hash of two words (SplitMix64 finaliser).
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One department.
#[derive(Debug, Clone)]
pub(crate) struct DeptRec {
    pub id: i64,
    pub parent: Option<i64>,
    pub name: String,
    pub name_en: String,
    pub order: i64,
    /// Child ids in display order.
    pub children: Vec<i64>,
    /// Member ids in display order (by per-department order, then arrival).
    pub members: Vec<String>,
}

/// One membership of a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MembershipRec {
    pub dept_id: i64,
    pub order: i64,
    pub leader: bool,
}

/// One member.
#[derive(Debug, Clone)]
pub(crate) struct MemberRec {
    pub userid: String,
    pub name: String,
    pub union_id: Option<String>,
    pub status: SimStatus,
    pub position: String,
    pub job_number: String,
    pub hired_date: Option<i64>,
    pub mobile: String,
    pub email: String,
    pub avatar: Option<String>,
    pub gender: u8,
    /// Platform order of the member's departments.
    pub depts: Vec<MembershipRec>,
    pub main_dept: i64,
    /// Arrival sequence: ties in department order and `entry_asc`.
    pub seq: u64,
}

impl MemberRec {
    pub(crate) fn membership(&self, dept: i64) -> Option<&MembershipRec> {
        self.depts.iter().find(|m| m.dept_id == dept)
    }
}

/// The members of an [`Org`] by userid: looked up by hash, iterated in
/// userid order.
///
/// Every `user/list` and `v2/user/list` answer looks each member of a
/// department up by userid. In a B-tree of 300,000 members each lookup walks
/// about seven nodes of string keys (a cache miss per key compared): about
/// half of the simulator's CPU in the 300,000-member benchmark, on the cores
/// the client it serves shares. A hash map answers in one probe; the sorted
/// key set keeps the platform's listing order (`user/list_id` pages, truth
/// exports) without a sort per call.
#[derive(Debug, Clone, Default)]
pub(crate) struct Members {
    by_id: HashMap<String, MemberRec>,
    order: BTreeSet<String>,
}

impl Members {
    /// The member with this exact userid.
    pub(crate) fn get(&self, userid: &str) -> Option<&MemberRec> {
        self.by_id.get(userid)
    }

    /// The member with this exact userid, to change (not its userid).
    pub(crate) fn get_mut(&mut self, userid: &str) -> Option<&mut MemberRec> {
        self.by_id.get_mut(userid)
    }

    /// Whether a member has this exact userid.
    pub(crate) fn contains_key(&self, userid: &str) -> bool {
        self.by_id.contains_key(userid)
    }

    /// Adds or replaces the member `userid`.
    pub(crate) fn insert(&mut self, userid: String, m: MemberRec) -> Option<MemberRec> {
        self.order.insert(userid.clone());
        self.by_id.insert(userid, m)
    }

    /// Removes the member `userid`.
    pub(crate) fn remove(&mut self, userid: &str) -> Option<MemberRec> {
        self.order.remove(userid);
        self.by_id.remove(userid)
    }

    /// How many members there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Userids in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &String> {
        self.order.iter()
    }

    /// Members in userid order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &MemberRec> {
        self.order.iter().map(|u| &self.by_id[u])
    }

    /// Members from userid `from` on, in userid order.
    pub(crate) fn values_from<'a>(&'a self, from: &str) -> impl Iterator<Item = &'a MemberRec> {
        self.order
            .range::<str, _>((std::ops::Bound::Included(from), std::ops::Bound::Unbounded))
            .map(|u| &self.by_id[u])
    }
}

impl std::ops::Index<&str> for Members {
    type Output = MemberRec;
    fn index(&self, userid: &str) -> &MemberRec {
        &self.by_id[userid]
    }
}

impl std::ops::Index<&String> for Members {
    type Output = MemberRec;
    fn index(&self, userid: &String) -> &MemberRec {
        &self.by_id[userid.as_str()]
    }
}

/// A WeCom tag or a DingTalk role.
#[derive(Debug, Clone)]
pub(crate) struct RoleRec {
    pub id: i64,
    pub group_id: i64,
    pub name: String,
    pub members: BTreeSet<String>,
    /// WeCom tag `partylist` (departments holding the tag).
    pub parties: Vec<i64>,
}

/// A DingTalk role group.
#[derive(Debug, Clone)]
pub(crate) struct GroupRec {
    pub id: i64,
    pub name: String,
    pub roles: Vec<i64>,
}

/// One simulated corp with its app.
#[derive(Debug, Clone)]
pub(crate) struct Org {
    pub platform: Platform,
    pub label: String,
    pub corp_id: String,
    pub agent_id: i64,
    /// DingTalk AppKey (WeCom: unused, empty).
    pub app_key: String,
    pub secret: String,
    /// WeCom contact-sync (通讯录同步) secret.
    pub contact_secret: String,
    pub withhold: bool,
    pub depts: BTreeMap<i64, DeptRec>,
    pub members: Members,
    pub by_union: HashMap<String, String>,
    pub groups: BTreeMap<i64, GroupRec>,
    pub roles: BTreeMap<i64, RoleRec>,
    /// (userid, level): WeCom auth_type, DingTalk sys_level.
    pub admins: Vec<(String, i64)>,
    pub next_dept_id: i64,
    pub next_seq: u64,
    pub next_role_id: i64,
    /// The app's visible range (WeCom) / contact scope (DingTalk): roots of
    /// the department subtrees it may see; `None` = the whole org.
    pub visible_roots: Option<Vec<i64>>,
    /// Departments the app is refused (sticky permission errors): id → errcode.
    pub refused: BTreeMap<i64, i64>,
    /// Each department's visible leaders in display order, built on first
    /// use and dropped by every change ([`Org::changed`]). `user/list` names
    /// each member's `direct_leader`; finding it by walking the member's
    /// main department looked every member of that department up by
    /// userid, which was about a tenth of a whole benchmark sync's CPU (the
    /// simulator shares the cores with the client it serves).
    pub leader_index: std::sync::OnceLock<HashMap<i64, Vec<String>>>,
}

const SURNAMES: &[(&str, &str)] = &[
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
    ("何", "he"),
    ("高", "gao"),
    ("林", "lin"),
    ("罗", "luo"),
    ("郑", "zheng"),
    ("梁", "liang"),
    ("谢", "xie"),
    ("宋", "song"),
];
const GIVEN: &[(&str, &str)] = &[
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("秀英", "xiuying"),
    ("华", "hua"),
    ("平", "ping"),
    ("刚", "gang"),
    ("桂英", "guiying"),
    ("建华", "jianhua"),
    ("文", "wen"),
    ("琳", "lin"),
];
const DEPT_NAMES: &[(&str, &str)] = &[
    ("研发", "R&D"),
    ("产品", "Product"),
    ("市场", "Marketing"),
    ("销售", "Sales"),
    ("财务", "Finance"),
    ("人力资源", "HR"),
    ("行政", "Admin"),
    ("法务", "Legal"),
    ("运营", "Operations"),
    ("客服", "Support"),
    ("质量", "Quality"),
    ("采购", "Purchasing"),
    ("物流", "Logistics"),
    ("设计", "Design"),
    ("数据", "Data"),
    ("安全", "Security"),
    ("测试", "QA"),
    ("平台", "Platform"),
    ("基础架构", "Infra"),
    ("国际业务", "Global"),
];
const TITLES: &[&str] = &[
    "工程师",
    "高级工程师",
    "产品经理",
    "设计师",
    "销售代表",
    "会计",
    "人事专员",
    "行政助理",
    "总监",
    "经理",
    "",
];
const TAGS: &[&str] = &[
    "管理层",
    "技术委员会",
    "安全员",
    "新员工",
    "导师",
    "党员",
    "工会",
    "内审",
    "讲师",
    "值班",
    "外包管理",
    "预算审批",
];

/// Attributes of a person, derived only from (seed, person id), so that the
/// same person looks the same in every simulated DingTalk org.
struct Person {
    name: String,
    pinyin: String,
    union_id: String,
    mobile: String,
}

fn person(seed: u64, pid: u64) -> Person {
    let h = mix(seed ^ 0x5eed, pid);
    let (sn, sp) = SURNAMES[(h % SURNAMES.len() as u64) as usize];
    let (gn, gp) = GIVEN[((h >> 8) % GIVEN.len() as u64) as usize];
    let union_id = format!("{:016x}{:08x}iE", mix(h, 1), pid as u32);
    Person {
        name: format!("{sn}{gn}"),
        pinyin: format!("{sp}{gp}"),
        union_id,
        mobile: format!("1{}{:09}", 3 + (h >> 20) % 7, pid % 1_000_000_000),
    }
}

fn alnum(rng: &mut Rng, len: usize) -> String {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len).map(|_| *rng.pick(A) as char).collect()
}

fn hex(rng: &mut Rng, len: usize) -> String {
    const A: &[u8] = b"0123456789abcdef";
    (0..len).map(|_| *rng.pick(A) as char).collect()
}

impl Org {
    /// Generates the WeCom org (`index` 0) or DingTalk org `index - 1`.
    pub(crate) fn generate(cfg: &SimConfig, platform: Platform, ding_index: usize) -> Org {
        let salt = match platform {
            Platform::Wecom => 0x77u64,
            Platform::DingTalk => 0x1000 + ding_index as u64,
        };
        let mut rng = Rng::new(mix(cfg.seed, salt));
        let (n_depts, n_users) = match platform {
            Platform::Wecom => (cfg.depts, cfg.users),
            Platform::DingTalk => (
                cfg.dingtalk_depts.unwrap_or(cfg.depts),
                cfg.dingtalk_users.unwrap_or(cfg.users),
            ),
        };
        let n_depts = n_depts.max(1);
        let (label, corp_id, app_key, secret, contact_secret, agent_id) = match platform {
            Platform::Wecom => (
                "wecom".to_string(),
                format!("ww{}", hex(&mut rng, 16)),
                String::new(),
                alnum(&mut rng, 43),
                alnum(&mut rng, 43),
                1_000_002,
            ),
            Platform::DingTalk => (
                format!("dingtalk-{ding_index}"),
                format!("ding{}", hex(&mut rng, 32)),
                format!("ding{}", alnum(&mut rng, 16).to_lowercase()),
                alnum(&mut rng, 64),
                String::new(),
                3_000_000_000 + ding_index as i64 * 7 + rng.below(1_000_000) as i64 * 10,
            ),
        };
        let mut org = Org {
            platform,
            label,
            corp_id,
            agent_id,
            app_key,
            secret,
            contact_secret,
            withhold: platform == Platform::Wecom && cfg.wecom_withhold_private_fields,
            depts: BTreeMap::new(),
            members: Members::default(),
            by_union: HashMap::new(),
            groups: BTreeMap::new(),
            roles: BTreeMap::new(),
            admins: Vec::new(),
            next_dept_id: 2,
            next_seq: 0,
            next_role_id: 1,
            visible_roots: match platform {
                Platform::Wecom => cfg.wecom_visible_range.clone(),
                Platform::DingTalk => cfg
                    .dingtalk_visible_ranges
                    .get(ding_index)
                    .cloned()
                    .flatten(),
            },
            refused: BTreeMap::new(),
            leader_index: std::sync::OnceLock::new(),
        };
        org.gen_depts(
            &mut rng,
            n_depts,
            cfg.max_depth.max(1),
            cfg.fan_out.max(1),
            ding_index,
        );
        org.gen_members(&mut rng, cfg, n_users, ding_index);
        org.gen_roles(&mut rng);
        org.gen_admins();
        org.changed();
        // Built now, with the org, rather than by the first read that needs
        // it: a platform answers department/list from indexes it already
        // has, so the first sync's tree read must not pay for building it
        // (~6 ms at 20,000 members, on the read's critical path).
        org.leader_index();
        org
    }

    fn dept_id_for(&self, idx: usize, ding_index: usize) -> i64 {
        match self.platform {
            Platform::Wecom => idx as i64 + 1,
            // DingTalk ids exceed 2^32 so that clients must keep them 64-bit.
            Platform::DingTalk => 5_000_000_000 + ding_index as i64 * 100_000_000 + idx as i64 * 7,
        }
    }

    fn gen_depts(
        &mut self,
        rng: &mut Rng,
        n: usize,
        max_depth: usize,
        fan_out: usize,
        ding: usize,
    ) {
        let root_name = match self.platform {
            Platform::Wecom => "企业微信模拟公司".to_string(),
            Platform::DingTalk => format!("钉钉模拟公司{}", ding + 1),
        };
        self.depts.insert(
            1,
            new_dept(1, None, root_name, "Simulated Corp".into(), 100_000_000),
        );
        let mut depth: HashMap<i64, usize> = HashMap::from([(1, 0)]);
        let mut queue: VecDeque<i64> = VecDeque::from([1]);
        let mut count = 1usize;
        while count < n {
            let Some(parent) = queue.pop_front() else {
                // Depth exhausted: fan-out is a soft target, give existing
                // non-leaf-depth departments more children.
                queue = self
                    .depts
                    .keys()
                    .copied()
                    .filter(|d| depth[d] < max_depth)
                    .collect();
                continue;
            };
            let d = depth[&parent] + 1;
            let k = 1 + rng.below(fan_out as u64) as usize;
            for _ in 0..k {
                if count >= n {
                    break;
                }
                let id = self.dept_id_for(count, ding);
                count += 1;
                let (zh, en) = *rng.pick(DEPT_NAMES);
                let suffix = ["中心", "部", "组", "小组", "室"][(d - 1).min(4)];
                let sib = self.depts[&parent].children.len() as i64;
                let order = match self.platform {
                    // WeCom: larger order sorts first.
                    Platform::Wecom => 100_000_000 - sib * 1000,
                    Platform::DingTalk => sib * 10 + 1,
                };
                let dept = new_dept(
                    id,
                    Some(parent),
                    format!("{zh}{suffix}{count}"),
                    format!("{en} {count}"),
                    order,
                );
                self.depts.insert(id, dept);
                self.depts
                    .get_mut(&parent)
                    .expect("parent exists")
                    .children
                    .push(id);
                depth.insert(id, d);
                if d < max_depth {
                    queue.push_back(id);
                }
            }
        }
        self.next_dept_id = match self.platform {
            Platform::Wecom => count as i64 + 1,
            Platform::DingTalk => self.dept_id_for(count, ding),
        };
    }

    fn gen_members(&mut self, rng: &mut Rng, cfg: &SimConfig, n: usize, ding: usize) {
        let dept_ids: Vec<i64> = self.depts.keys().copied().collect();
        let shared = (n as f64 * cfg.dingtalk_shared_fraction.clamp(0.0, 1.0)) as usize;
        for i in 0..n {
            // DingTalk orgs after the first share their first `shared` people
            // with org 0: same person, same unionId, another userid.
            let pid = match self.platform {
                Platform::Wecom => 1_000_000_000 + i as u64,
                Platform::DingTalk if ding > 0 && i < shared => i as u64,
                Platform::DingTalk => ding as u64 * 100_000_000 + i as u64,
            };
            let p = person(cfg.seed, pid);
            let userid = match self.platform {
                Platform::Wecom => format!("{}{:05}", p.pinyin, i),
                // Numeric-looking ids with a leading zero: never parse them.
                Platform::DingTalk => format!("0{}{:07}{:04}", ding + 1, i, mix(pid, 9) % 10_000),
            };
            let mut depts = vec![*rng.pick(&dept_ids)];
            for p_extra in [0.12, 0.03] {
                if dept_ids.len() > depts.len() && rng.chance(p_extra) {
                    let d = *rng.pick(&dept_ids);
                    if !depts.contains(&d) {
                        depts.push(d);
                    }
                }
            }
            let r = rng.below(100);
            let status = match self.platform {
                Platform::Wecom => match r {
                    0..=87 => SimStatus::Active,
                    88..=92 => SimStatus::Disabled,
                    93..=98 => SimStatus::NotActivated,
                    _ => SimStatus::Left,
                },
                Platform::DingTalk if r < 92 => SimStatus::Active,
                Platform::DingTalk => SimStatus::NotActivated,
            };
            let has_email = rng.chance(0.8);
            let has_avatar = self.platform == Platform::Wecom || rng.chance(0.85);
            let hired = rng
                .chance(0.9)
                .then(|| 1_262_304_000_000 + rng.below(14 * 365 * 86_400) as i64 * 1000);
            let member = MemberRec {
                userid: userid.clone(),
                name: p.name,
                union_id: (self.platform == Platform::DingTalk).then_some(p.union_id),
                status,
                position: rng.pick(TITLES).to_string(),
                job_number: format!("E{:06}", rng.below(1_000_000)),
                hired_date: hired,
                mobile: p.mobile,
                email: if has_email {
                    format!("{}{}@example.com", p.pinyin, i)
                } else {
                    String::new()
                },
                avatar: has_avatar.then(|| {
                    format!(
                        "https://avatar.sim.invalid/{}/0",
                        mix(pid, 3) % 1_000_000_007
                    )
                }),
                gender: 1 + (rng.below(2) as u8),
                depts: depts
                    .iter()
                    .map(|&d| MembershipRec {
                        dept_id: d,
                        order: rng.below(10_000) as i64,
                        leader: false,
                    })
                    .collect(),
                main_dept: depts[0],
                seq: self.next_seq,
            };
            self.next_seq += 1;
            self.insert_member_indexes(&member);
            self.members.insert(userid, member);
        }
        // Department display order: larger order first, then arrival.
        let ids: Vec<i64> = self.depts.keys().copied().collect();
        for d in ids {
            self.sort_dept_members(d);
            let members = self.depts[&d].members.clone();
            for (pos, uid) in members.iter().take(2).enumerate() {
                if rng.chance([0.6, 0.15][pos]) {
                    if let Some(m) = self.members.get_mut(uid) {
                        if let Some(ms) = m.depts.iter_mut().find(|x| x.dept_id == d) {
                            ms.leader = true;
                        }
                    }
                }
            }
        }
    }

    fn gen_roles(&mut self, rng: &mut Rng) {
        let users: Vec<String> = self.visible_member_ids().cloned().collect();
        let dept_ids: Vec<i64> = self.depts.keys().copied().collect();
        match self.platform {
            Platform::Wecom => {
                for (i, name) in TAGS.iter().enumerate() {
                    let id = i as i64 + 1;
                    let members = users.iter().filter(|_| rng.chance(0.03)).cloned().collect();
                    let parties = (0..rng.below(3))
                        .map(|_| *rng.pick(&dept_ids))
                        .collect::<BTreeSet<_>>();
                    self.roles.insert(
                        id,
                        RoleRec {
                            id,
                            group_id: 0,
                            name: name.to_string(),
                            members,
                            parties: parties.into_iter().collect(),
                        },
                    );
                }
                self.next_role_id = TAGS.len() as i64 + 1;
            }
            Platform::DingTalk => {
                let groups: &[(&str, &[&str])] = &[
                    ("默认", &["负责人", "主管", "主管理员", "子管理员"]),
                    ("职务", &["财务", "人事", "出纳", "销售经理", "法务专员"]),
                    ("岗位", &["前台", "司机", "保洁", "仓管"]),
                    ("项目角色", &["项目经理", "架构师", "测试负责人"]),
                    ("空角色组", &[]),
                ];
                let mut role_id = 2_100_000_000i64 + rng.below(1000) as i64;
                for (gi, (gname, roles)) in groups.iter().enumerate() {
                    let gid = 1_900_000_000 + gi as i64 * 11;
                    let mut g = GroupRec {
                        id: gid,
                        name: gname.to_string(),
                        roles: Vec::new(),
                    };
                    for rname in roles.iter() {
                        role_id += 1 + rng.below(50) as i64;
                        let members = if *rname == "主管理员" || *rname == "子管理员" {
                            BTreeSet::new() // filled from the admin list below
                        } else {
                            users.iter().filter(|_| rng.chance(0.02)).cloned().collect()
                        };
                        self.roles.insert(
                            role_id,
                            RoleRec {
                                id: role_id,
                                group_id: gid,
                                name: rname.to_string(),
                                members,
                                parties: Vec::new(),
                            },
                        );
                        g.roles.push(role_id);
                    }
                    self.groups.insert(gid, g);
                }
                self.next_role_id = role_id + 1;
            }
        }
    }

    fn gen_admins(&mut self) {
        let active: Vec<String> = self
            .members
            .values()
            .filter(|m| m.status == SimStatus::Active)
            .take(3)
            .map(|m| m.userid.clone())
            .collect();
        self.admins = match self.platform {
            Platform::Wecom => active
                .iter()
                .zip([1, 1, 0])
                .map(|(u, l)| (u.clone(), l))
                .collect(),
            Platform::DingTalk => active
                .iter()
                .zip([1, 2, 2])
                .map(|(u, l)| (u.clone(), l))
                .collect(),
        };
        self.sync_admin_roles();
    }

    /// DingTalk's built-in 主管理员 / 子管理员 roles follow the admin list.
    pub(crate) fn sync_admin_roles(&mut self) {
        if self.platform != Platform::DingTalk {
            return;
        }
        let admins = self.admins.clone();
        for r in self.roles.values_mut() {
            let level = match r.name.as_str() {
                "主管理员" => 1,
                "子管理员" => 2,
                _ => continue,
            };
            r.members = admins
                .iter()
                .filter(|a| a.1 == level)
                .map(|a| a.0.clone())
                .collect();
        }
    }

    pub(crate) fn insert_member_indexes(&mut self, m: &MemberRec) {
        for ms in &m.depts {
            if let Some(d) = self.depts.get_mut(&ms.dept_id) {
                d.members.push(m.userid.clone());
            }
        }
        if let Some(u) = &m.union_id {
            self.by_union.insert(u.clone(), m.userid.clone());
        }
    }

    pub(crate) fn remove_member_indexes(&mut self, userid: &str) {
        let Some(m) = self.members.get(userid) else {
            return;
        };
        let depts: Vec<i64> = m.depts.iter().map(|x| x.dept_id).collect();
        if let Some(u) = m.union_id.clone() {
            self.by_union.remove(&u);
        }
        for d in depts {
            if let Some(d) = self.depts.get_mut(&d) {
                d.members.retain(|x| x != userid);
            }
        }
    }

    pub(crate) fn sort_dept_members(&mut self, dept: i64) {
        let Some(d) = self.depts.get(&dept) else {
            return;
        };
        let mut keyed: Vec<(i64, u64, String)> = d
            .members
            .iter()
            .filter_map(|u| {
                let m = self.members.get(u)?;
                Some((m.membership(dept)?.order, m.seq, u.clone()))
            })
            .collect();
        keyed.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        self.depts.get_mut(&dept).expect("exists").members =
            keyed.into_iter().map(|k| k.2).collect();
    }

    /// Whether a member appears in this platform's APIs at all.
    pub(crate) fn visible(&self, m: &MemberRec) -> bool {
        !(self.platform == Platform::DingTalk && m.status == SimStatus::Left)
    }

    pub(crate) fn visible_member_ids(&self) -> impl Iterator<Item = &String> {
        self.members
            .values()
            .filter(|m| self.visible(m))
            .map(|m| &m.userid)
    }

    /// Looks a member up as the platform does (WeCom userids are case-insensitive).
    pub(crate) fn find_member(&self, userid: &str) -> Option<&MemberRec> {
        let m = self.members.get(userid).or_else(|| {
            if self.platform == Platform::Wecom {
                self.members
                    .values()
                    .find(|m| m.userid.eq_ignore_ascii_case(userid))
            } else {
                None
            }
        })?;
        self.visible(m).then_some(m)
    }

    /// Direct members of a department that the platform shows, in display order.
    pub(crate) fn dept_members(&self, dept: i64) -> Vec<&MemberRec> {
        self.depts
            .get(&dept)
            .map(|d| {
                d.members
                    .iter()
                    .filter_map(|u| self.members.get(u))
                    .filter(|m| self.visible(m))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Leader ids of a department in display order.
    pub(crate) fn leaders(&self, dept: i64) -> Vec<String> {
        self.leaders_of(dept).to_vec()
    }

    /// [`Org::leaders`], borrowed.
    pub(crate) fn leaders_of(&self, dept: i64) -> &[String] {
        self.leader_index().get(&dept).map_or(&[], Vec::as_slice)
    }

    /// The first leader of a department other than `userid` (WeCom
    /// `direct_leader`, DingTalk `manager_userid`), without allocating.
    pub(crate) fn first_leader_except(&self, dept: i64, userid: &str) -> Option<&str> {
        self.leader_index()
            .get(&dept)?
            .iter()
            .map(String::as_str)
            .find(|l| *l != userid)
    }

    /// [`Org::leader_index`], built if a change dropped it.
    fn leader_index(&self) -> &HashMap<i64, Vec<String>> {
        self.leader_index.get_or_init(|| {
            self.depts
                .values()
                .filter_map(|d| {
                    let leaders: Vec<String> = d
                        .members
                        .iter()
                        .filter_map(|u| self.members.get(u))
                        .filter(|m| self.visible(m) && m.membership(d.id).is_some_and(|x| x.leader))
                        .map(|m| m.userid.clone())
                        .collect();
                    (!leaders.is_empty()).then_some((d.id, leaders))
                })
                .collect()
        })
    }

    /// Drops what is derived from members and departments: every change
    /// to the org ends here (admin mutations, generation).
    pub(crate) fn changed(&mut self) {
        self.leader_index = std::sync::OnceLock::new();
    }

    /// Puts `child` among `parent`'s children at its sort position (WeCom:
    /// larger order first; DingTalk: smaller first; ties keep arrival).
    pub(crate) fn attach_child(&mut self, parent: i64, child: i64) {
        let order = self.depts[&child].order;
        let wecom = self.platform == Platform::Wecom;
        let pos = {
            let p = &self.depts[&parent];
            p.children
                .iter()
                .position(|c| {
                    let o = self.depts[c].order;
                    if wecom {
                        o < order
                    } else {
                        o > order
                    }
                })
                .unwrap_or(p.children.len())
        };
        self.depts
            .get_mut(&parent)
            .expect("parent exists")
            .children
            .insert(pos, child);
    }

    /// Pre-order walk of the subtree under `root` (root included).
    pub(crate) fn subtree(&self, root: i64) -> Vec<i64> {
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            out.push(d);
            if let Some(rec) = self.depts.get(&d) {
                stack.extend(rec.children.iter().rev());
            }
        }
        out
    }

    /// The departments inside the app's visible range, or `None` when it
    /// sees the whole org (the common case: nothing to compute).
    pub(crate) fn visible_depts(&self) -> Option<BTreeSet<i64>> {
        let roots = self.visible_roots.as_ref()?;
        Some(
            roots
                .iter()
                .filter(|r| self.depts.contains_key(r))
                .flat_map(|r| self.subtree(*r))
                .collect(),
        )
    }

    /// Whether the app may see this department.
    pub(crate) fn dept_in_range(&self, id: i64) -> bool {
        match &self.visible_roots {
            None => true,
            Some(roots) => {
                // Walk up: the department is visible when a root is on its path.
                let mut cur = Some(id);
                while let Some(d) = cur {
                    if roots.contains(&d) {
                        return true;
                    }
                    cur = self.depts.get(&d).and_then(|r| r.parent);
                }
                false
            }
        }
    }

    /// Whether the app may see this member: in at least one visible department.
    pub(crate) fn member_in_range(&self, m: &MemberRec) -> bool {
        self.visible_roots.is_none() || m.depts.iter().any(|d| self.dept_in_range(d.dept_id))
    }

    pub(crate) fn admin_level(&self, userid: &str) -> Option<i64> {
        self.admins.iter().find(|a| a.0 == userid).map(|a| a.1)
    }

    /// The org in the jit-org model, derived from internal state only: what
    /// a complete read by the app yields. Outside a limited visible range
    /// nothing exists: departments and members outside it are absent, a
    /// visible department under an invisible parent is a top level
    /// (`parent_id: None`), memberships and role holdings outside it are
    /// dropped. The admin list is not limited by the range.
    pub(crate) fn truth(&self) -> CorpSnapshot {
        let mut snap = CorpSnapshot::new(self.corp_id.clone());
        let range = self.visible_depts();
        let in_range = |d: i64| range.as_ref().is_none_or(|r| r.contains(&d));
        for d in self.depts.values().filter(|d| in_range(d.id)) {
            let parent = d.parent.filter(|p| in_range(*p));
            let mut dept = Dept::new(d.id, parent, d.name.clone());
            dept.order = d.order;
            dept.leaders = self.leaders(d.id);
            snap.depts.insert(d.id, dept);
        }
        let seen = |m: &MemberRec| self.visible(m) && m.depts.iter().any(|x| in_range(x.dept_id));
        for m in self.members.values().filter(|m| seen(m)) {
            let mut out = Member::new(m.userid.clone(), m.name.clone());
            out.depts = m
                .depts
                .iter()
                .filter(|x| in_range(x.dept_id))
                .map(|x| DeptMembership {
                    dept_id: x.dept_id,
                    order: x.order,
                    is_leader: x.leader,
                })
                .collect();
            match self.platform {
                Platform::Wecom => {
                    out.status = match m.status {
                        SimStatus::Active => MemberStatus::Active,
                        SimStatus::Disabled => MemberStatus::Disabled,
                        SimStatus::NotActivated => MemberStatus::NotActivated,
                        SimStatus::Left => MemberStatus::Offline,
                    };
                    out.position = Some(m.position.clone());
                    out.main_dept_id = Some(m.main_dept);
                    if !self.withhold {
                        // WeCom sends "" for a member without an avatar.
                        out.avatar = Some(m.avatar.clone().unwrap_or_default());
                        out.mobile = Some(m.mobile.clone());
                        out.email = Some(m.email.clone());
                    }
                }
                Platform::DingTalk => {
                    out.status = if m.status == SimStatus::Active {
                        MemberStatus::Active
                    } else {
                        MemberStatus::NotActivated
                    };
                    out.union_id = m.union_id.clone();
                    out.position = Some(m.position.clone());
                    out.job_number = Some(m.job_number.clone());
                    out.hired_date = m.hired_date;
                    out.avatar = m.avatar.clone();
                    out.mobile = Some(m.mobile.clone());
                    out.email = (!m.email.is_empty()).then(|| m.email.clone());
                }
            }
            snap.members.insert(m.userid.clone(), out);
        }
        match self.platform {
            Platform::Wecom => {
                snap.role_groups.insert(
                    "tags".into(),
                    RoleGroup {
                        group_id: "tags".into(),
                        name: "Tags".into(),
                    },
                );
            }
            Platform::DingTalk => {
                for g in self.groups.values() {
                    snap.role_groups.insert(
                        g.id.to_string(),
                        RoleGroup {
                            group_id: g.id.to_string(),
                            name: g.name.clone(),
                        },
                    );
                }
            }
        }
        for r in self.roles.values() {
            let group_id = match self.platform {
                Platform::Wecom => "tags".to_string(),
                Platform::DingTalk => r.group_id.to_string(),
            };
            let members = r
                .members
                .iter()
                .filter(|u| self.members.get(u).is_some_and(&seen))
                .cloned()
                .collect();
            snap.roles.insert(
                r.id.to_string(),
                Role {
                    role_id: r.id.to_string(),
                    group_id: Some(group_id),
                    name: r.name.clone(),
                    members,
                },
            );
        }
        snap.admins = Some(
            self.admins
                .iter()
                .map(|(u, l)| Admin {
                    member_id: u.clone(),
                    level: *l as i32,
                })
                .collect(),
        );
        snap
    }
}

fn new_dept(id: i64, parent: Option<i64>, name: String, name_en: String, order: i64) -> DeptRec {
    DeptRec {
        id,
        parent,
        name,
        name_en,
        order,
        children: Vec::new(),
        members: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(depts: usize, users: usize) -> SimConfig {
        SimConfig {
            seed: 11,
            depts,
            users,
            ..SimConfig::default()
        }
    }

    #[test]
    fn the_same_seed_generates_the_same_org() {
        let a = Org::generate(&cfg(30, 200), Platform::Wecom, 0).truth();
        let b = Org::generate(&cfg(30, 200), Platform::Wecom, 0).truth();
        assert_eq!(a, b);
        let c = Org::generate(
            &SimConfig {
                seed: 12,
                ..cfg(30, 200)
            },
            Platform::Wecom,
            0,
        )
        .truth();
        assert_ne!(a, c);
    }

    #[test]
    fn a_generated_org_has_its_leader_index_before_any_read() {
        let org = Org::generate(&cfg(30, 200), Platform::Wecom, 0);
        let built = org.leader_index.get().expect("built with the org");
        assert!(!built.is_empty(), "the generator names department leaders");
        let mut changed = org;
        changed.changed();
        assert!(
            changed.leader_index.get().is_none(),
            "a change drops it, to be rebuilt by the next read"
        );
    }

    #[test]
    fn sizes_and_depth_follow_the_configuration() {
        let c = SimConfig {
            max_depth: 2,
            fan_out: 3,
            ..cfg(50, 400)
        };
        let org = Org::generate(&c, Platform::DingTalk, 0);
        assert_eq!(org.depts.len(), 50);
        assert_eq!(org.members.len(), 400);
        for d in org.depts.values() {
            let mut depth = 0;
            let mut cur = d.parent;
            while let Some(p) = cur {
                depth += 1;
                cur = org.depts[&p].parent;
            }
            assert!(depth <= 2, "department {} is {depth} deep", d.id);
        }
    }

    #[test]
    fn every_membership_is_indexed_under_its_department() {
        let org = Org::generate(&cfg(40, 500), Platform::Wecom, 0);
        let indexed: usize = org.depts.values().map(|d| d.members.len()).sum();
        let memberships: usize = org.members.values().map(|m| m.depts.len()).sum();
        assert_eq!(indexed, memberships);
        assert!(
            org.members.values().any(|m| m.depts.len() > 1),
            "some members are in several departments"
        );
        assert!(org
            .members
            .values()
            .all(|m| m.main_dept == m.depts[0].dept_id));
    }

    #[test]
    fn statuses_leaders_tags_and_admins_are_generated() {
        let org = Org::generate(&cfg(40, 2000), Platform::Wecom, 0);
        for s in [
            SimStatus::Active,
            SimStatus::Disabled,
            SimStatus::NotActivated,
            SimStatus::Left,
        ] {
            assert!(org.members.values().any(|m| m.status == s), "{s:?}");
        }
        assert!(org.depts.keys().any(|d| !org.leaders(*d).is_empty()));
        assert_eq!(org.roles.len(), TAGS.len());
        assert_eq!(org.admins.len(), 3);
    }

    #[test]
    fn dingtalk_orgs_share_some_union_ids_and_built_in_admin_roles_follow_admins() {
        let c = cfg(10, 300);
        let a = Org::generate(&c, Platform::DingTalk, 0);
        let b = Org::generate(&c, Platform::DingTalk, 1);
        let shared = b
            .by_union
            .keys()
            .filter(|u| a.by_union.contains_key(*u))
            .count();
        assert_eq!(shared, 30, "10% of org 1 are people of org 0");
        let primary = a.roles.values().find(|r| r.name == "主管理员").unwrap();
        assert_eq!(primary.members.iter().next(), Some(&a.admins[0].0));
    }

    #[test]
    fn dingtalk_ids_need_64_bits_and_userids_keep_leading_zeros() {
        let org = Org::generate(&cfg(5, 5), Platform::DingTalk, 0);
        assert!(org
            .depts
            .keys()
            .filter(|d| **d != 1)
            .all(|d| *d > i64::from(u32::MAX)));
        assert!(org.members.keys().all(|u| u.starts_with('0')));
    }

    #[test]
    fn an_added_department_takes_its_place_by_order_among_siblings() {
        let mut org = Org::generate(&cfg(20, 10), Platform::Wecom, 0);
        let first = org.depts[&1].children[0];
        let top = org.depts[&first].order + 1;
        org.depts.insert(
            999,
            new_dept(999, Some(1), "Top".into(), String::new(), top),
        );
        org.attach_child(1, 999);
        assert_eq!(org.depts[&1].children[0], 999, "WeCom: larger order first");
    }
}
