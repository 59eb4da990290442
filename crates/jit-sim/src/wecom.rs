//! WeCom `/cgi-bin/...` endpoints (reference Part A).

use crate::org::{MemberRec, Org};
use crate::server::{errcode, ApiReq, Reply, Routed, Shared, TokenFault, TokenKind};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// A JSON answer serialized directly from a typed body.
fn raw<T: Serialize>(body: &T) -> Reply {
    Reply::Text(
        StatusCode::OK,
        "application/json",
        serde_json::to_string(body).expect("plain data serializes"),
    )
}

/// `{"errcode":0,"errmsg":"ok",key:value}`, serialized straight from
/// `value` (no intermediate JSON tree: the lists of a sync's largest
/// answers go through here).
fn ok_with<T: Serialize>(key: &'static str, value: T) -> Reply {
    struct Answer<T>(&'static str, T);
    impl<T: Serialize> Serialize for Answer<T> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(Some(3))?;
            m.serialize_entry("errcode", &0)?;
            m.serialize_entry("errmsg", "ok")?;
            m.serialize_entry(self.0, &self.1)?;
            m.end()
        }
    }
    raw(&Answer(key, value))
}

fn ok(mut body: Map<String, Value>) -> Reply {
    let mut out = Map::new();
    out.insert("errcode".into(), json!(0));
    out.insert("errmsg".into(), json!("ok"));
    out.append(&mut body);
    Reply::Json(StatusCode::OK, Value::Object(out))
}

macro_rules! obj {
    ($($k:expr => $v:expr),* $(,)?) => {{
        let mut m = Map::new();
        $( m.insert($k.to_string(), json!($v)); )*
        m
    }};
}

/// Maps a request to its canonical API path and authenticates it.
pub(crate) fn route(sh: &Shared, req: &ApiReq) -> Option<Routed> {
    let path: &'static str = match req.path.as_str() {
        "/cgi-bin/gettoken" => "/cgi-bin/gettoken",
        "/cgi-bin/department/list" => "/cgi-bin/department/list",
        "/cgi-bin/department/simplelist" => "/cgi-bin/department/simplelist",
        "/cgi-bin/department/get" => "/cgi-bin/department/get",
        "/cgi-bin/user/get" => "/cgi-bin/user/get",
        "/cgi-bin/user/list" => "/cgi-bin/user/list",
        "/cgi-bin/user/simplelist" => "/cgi-bin/user/simplelist",
        "/cgi-bin/user/list_id" => "/cgi-bin/user/list_id",
        "/cgi-bin/tag/list" => "/cgi-bin/tag/list",
        "/cgi-bin/tag/get" => "/cgi-bin/tag/get",
        "/cgi-bin/agent/get_admin_list" => "/cgi-bin/agent/get_admin_list",
        "/cgi-bin/agent/get" => "/cgi-bin/agent/get",
        "/cgi-bin/auth/getuserinfo" => "/cgi-bin/auth/getuserinfo",
        "/cgi-bin/user/getuserinfo" => "/cgi-bin/user/getuserinfo",
        _ => return None,
    };
    let who = if path == "/cgi-bin/gettoken" {
        let org = sh.orgs[0].read().expect("org lock");
        let corpid = req.query("corpid").unwrap_or("");
        let secret = req.query("corpsecret").unwrap_or("");
        if corpid != org.corp_id {
            Err((None, errcode(40013, "invalid corpid")))
        } else if secret == org.secret {
            Ok((0, TokenKind::App))
        } else if secret == org.contact_secret {
            Ok((0, TokenKind::Contact))
        } else {
            Err((
                Some(0),
                errcode(40001, "invalid credential, hint: [corpsecret is wrong]"),
            ))
        }
    } else {
        match sh.check_token(req.query("access_token")) {
            Ok((0, kind)) => Ok((0, kind)),
            // A DingTalk token is not a WeCom token.
            Ok(_) => Err((None, errcode(40014, "invalid access_token"))),
            Err((org, fault)) => {
                let reply = match fault {
                    TokenFault::Missing => errcode(41001, "access_token missing"),
                    TokenFault::Expired => errcode(42001, "access_token expired"),
                    TokenFault::Unknown | TokenFault::Revoked => {
                        errcode(40014, "invalid access_token")
                    }
                };
                Err((org.filter(|o| *o == 0), reply))
            }
        }
    };
    Some(Routed { path, who })
}

/// Parses an optional integer query parameter; `Err` answers 40058.
fn int_param(req: &ApiReq, k: &str) -> Result<Option<i64>, Reply> {
    match req.query(k).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.trim().parse().map(Some).map_err(|_| {
            errcode(
                40058,
                &format!("invalid Request Parameter, hint: [{k} is not an integer]"),
            )
        }),
    }
}

/// The department object of department/list and department/get
/// (reference A.3), serialized straight from the department (no
/// intermediate JSON tree: department/list answers with the whole tree).
#[derive(Serialize)]
struct WecomDept<'a> {
    id: i64,
    name: &'a str,
    name_en: &'a str,
    department_leader: &'a [String],
    parentid: i64,
    order: i64,
}

fn wecom_dept(org: &Org, id: i64) -> WecomDept<'_> {
    let d = &org.depts[&id];
    WecomDept {
        id: d.id,
        name: &d.name,
        name_en: &d.name_en,
        department_leader: org.leaders_of(id),
        parentid: d.parent.unwrap_or(0),
        order: d.order,
    }
}

/// The user object of user/get and user/list (reference A.4), serialized
/// straight from the member (no intermediate JSON tree: user/list of a
/// 100k-member corp is the hot path of every benchmark).
#[derive(Serialize)]
pub(crate) struct WecomUser<'a> {
    userid: &'a str,
    name: &'a str,
    department: Vec<i64>,
    order: Vec<i64>,
    position: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mobile: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_mail: Option<String>,
    is_leader_in_dept: Vec<i64>,
    direct_leader: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    avatar: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thumb_avatar: Option<String>,
    telephone: &'static str,
    alias: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<&'static str>,
    open_userid: String,
    main_department: i64,
    status: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    qr_code: Option<String>,
    external_position: &'static str,
}

pub(crate) fn wecom_user<'a>(org: &'a Org, m: &'a MemberRec) -> WecomUser<'a> {
    let direct_leader = org.first_leader_except(m.main_dept, &m.userid);
    // Apps created after 2022-06-20 get none of the private fields (reference A.4).
    let private = !org.withhold;
    let avatar = m.avatar.as_deref().unwrap_or("");
    WecomUser {
        userid: &m.userid,
        name: &m.name,
        department: m.depts.iter().map(|x| x.dept_id).collect(),
        order: m.depts.iter().map(|x| x.order).collect(),
        position: &m.position,
        mobile: private.then_some(m.mobile.as_str()),
        gender: private.then(|| m.gender.to_string()),
        email: private.then_some(m.email.as_str()),
        biz_mail: private.then(|| format!("{}@sim.wecom.work", m.userid)),
        is_leader_in_dept: m.depts.iter().map(|x| i64::from(x.leader)).collect(),
        direct_leader: direct_leader.into_iter().collect(),
        avatar: private.then_some(avatar),
        thumb_avatar: private.then(|| {
            if avatar.is_empty() {
                String::new()
            } else {
                format!("{}100", avatar.trim_end_matches('0'))
            }
        }),
        telephone: "",
        alias: "",
        address: private.then_some(""),
        open_userid: format!("wo{}", m.seq),
        main_department: m.main_dept,
        status: m.status.wecom_code(),
        qr_code: private.then(|| {
            format!(
                "https://open.work.weixin.qq.com/wwopen/userQRCode?vcode={}",
                m.seq
            )
        }),
        external_position: "",
    }
}

fn encode_cursor(userid: &str, pos: usize) -> String {
    format!("{userid}\u{1}{pos}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_cursor(c: &str) -> Option<(String, usize)> {
    if c.len() & 1 == 1 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..c.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(c.get(i..i + 2)?, 16).ok())
        .collect();
    let s = String::from_utf8(bytes?).ok()?;
    let (u, p) = s.split_once('\u{1}')?;
    Some((u.to_string(), p.parse().ok()?))
}

/// Answers one authenticated WeCom call.
pub(crate) fn handle(
    sh: &Shared,
    path: &str,
    _org_idx: usize,
    kind: &TokenKind,
    req: &ApiReq,
) -> Reply {
    if path == "/cgi-bin/gettoken" {
        let (t, exp) = sh.issue_token(0, kind.clone());
        return ok(obj! {"access_token" => t, "expires_in" => exp});
    }
    let org = sh.orgs[0].read().expect("org lock");
    match inner(sh, &org, path, kind, req) {
        Ok(r) | Err(r) => r,
    }
}

fn inner(
    sh: &Shared,
    org: &Org,
    path: &str,
    kind: &TokenKind,
    req: &ApiReq,
) -> Result<Reply, Reply> {
    let restricted = [
        "/cgi-bin/department/list",
        "/cgi-bin/department/get",
        "/cgi-bin/user/get",
        "/cgi-bin/user/list",
    ];
    if sh.cfg.wecom_contact_token_restricted
        && *kind == TokenKind::Contact
        && restricted.contains(&path)
    {
        return Err(errcode(
            48002,
            "api forbidden, hint: [contact-sync IPs added after 2022-08-15 must use department/simplelist and user/list_id]",
        ));
    }
    let dept_missing = || errcode(60003, "department not found");
    // Reference A.8: 60011 is the answer for a department or member outside
    // the app's visible range.
    let out_of_range = || errcode(60011, "no privilege to access/modify contact/party/agent");
    Ok(match path {
        "/cgi-bin/department/list" | "/cgi-bin/department/simplelist" => {
            let ids = match int_param(req, "id")? {
                // Without an id: the whole tree the app can see (reference
                // A.3), each department with its real parentid.
                None => {
                    let range = org.visible_depts();
                    let mut ids = org.subtree(1);
                    if let Some(r) = range {
                        ids.retain(|d| r.contains(d));
                    }
                    ids
                }
                Some(root) => {
                    if !org.depts.contains_key(&root) {
                        return Err(dept_missing());
                    }
                    if !org.dept_in_range(root) {
                        return Err(out_of_range());
                    }
                    org.subtree(root)
                }
            };
            if path.ends_with("/list") {
                ok_with(
                    "department",
                    ids.iter().map(|&d| wecom_dept(org, d)).collect::<Vec<_>>(),
                )
            } else {
                let list: Vec<Value> = ids
                    .iter()
                    .map(|d| {
                        let r = &org.depts[d];
                        json!({"id": r.id, "parentid": r.parent.unwrap_or(0), "order": r.order})
                    })
                    .collect();
                ok(obj! {"department_id" => list})
            }
        }
        "/cgi-bin/department/get" => {
            let id = int_param(req, "id")?.ok_or_else(|| {
                errcode(40058, "invalid Request Parameter, hint: [id is required]")
            })?;
            if !org.depts.contains_key(&id) {
                return Err(dept_missing());
            }
            if !org.dept_in_range(id) {
                return Err(out_of_range());
            }
            ok_with("department", wecom_dept(org, id))
        }
        "/cgi-bin/user/get" => {
            let userid = req.query("userid").unwrap_or("");
            if userid.is_empty() || userid.len() > 64 {
                return Err(errcode(40003, "invalid userid"));
            }
            let m = org
                .find_member(userid)
                .ok_or_else(|| errcode(60111, "userid not found"))?;
            if !org.member_in_range(m) {
                return Err(out_of_range());
            }
            #[derive(Serialize)]
            struct One<'a> {
                errcode: i64,
                errmsg: &'static str,
                #[serde(flatten)]
                user: WecomUser<'a>,
            }
            raw(&One {
                errcode: 0,
                errmsg: "ok",
                user: wecom_user(org, m),
            })
        }
        "/cgi-bin/user/list" | "/cgi-bin/user/simplelist" => {
            // The current docs list no fetch_child/status parameters and say
            // to recurse yourself; whether the server still honours them is
            // UNCONFIRMED, so they are ignored: direct members only.
            let d = int_param(req, "department_id")?.ok_or_else(|| {
                errcode(
                    40058,
                    "invalid Request Parameter, hint: [department_id is required]",
                )
            })?;
            if !org.depts.contains_key(&d) {
                return Err(dept_missing());
            }
            if !org.dept_in_range(d) {
                return Err(out_of_range());
            }
            let members = org.dept_members(d);
            if path.ends_with("/list") {
                return Ok(ok_with(
                    "userlist",
                    members
                        .iter()
                        .map(|m| wecom_user(org, m))
                        .collect::<Vec<_>>(),
                ));
            }
            let list: Vec<Value> = {
                members
                    .iter()
                    .map(|m| {
                        json!({"userid": m.userid, "name": m.name,
                               "department": m.depts.iter().map(|x| x.dept_id).collect::<Vec<_>>()})
                    })
                    .collect()
            };
            ok(obj! {"userlist" => list})
        }
        "/cgi-bin/user/list_id" => {
            if sh.cfg.wecom_list_id_requires_contact_secret && *kind != TokenKind::Contact {
                return Err(errcode(
                    48002,
                    "api forbidden, hint: [user/list_id needs the contact-sync secret's access_token]",
                ));
            }
            if !req.body_ok {
                return Err(errcode(
                    47001,
                    "data format error, Warning: wrong json format.",
                ));
            }
            let limit = match req.int("limit") {
                Ok(None) => 10_000,
                Ok(Some(l)) if (1..=10_000).contains(&l) => l as usize,
                _ => {
                    return Err(errcode(
                        40058,
                        "invalid Request Parameter, hint: [limit must be 1..10000]",
                    ))
                }
            };
            let start = match req.string("cursor").filter(|c| !c.is_empty()) {
                None => None,
                Some(c) => Some(decode_cursor(&c).ok_or_else(|| errcode(40058, "invalid cursor"))?),
            };
            let mut rows = Vec::with_capacity(limit.min(1024));
            let mut next = String::new();
            let iter: Box<dyn Iterator<Item = &MemberRec>> = match &start {
                None => Box::new(org.members.values()),
                Some((u, _)) => Box::new(org.members.values_from(u)),
            };
            'outer: for m in iter {
                let first = match &start {
                    Some((u, p)) if *u == m.userid => *p,
                    _ => 0,
                };
                for (pos, ms) in m.depts.iter().enumerate().skip(first) {
                    if rows.len() == limit {
                        next = encode_cursor(&m.userid, pos);
                        break 'outer;
                    }
                    rows.push(json!({"userid": m.userid, "department": ms.dept_id}));
                }
            }
            ok(obj! {"next_cursor" => next, "dept_user" => rows})
        }
        "/cgi-bin/tag/list" => {
            let list: Vec<Value> = org
                .roles
                .values()
                .map(|t| json!({"tagid": t.id, "tagname": t.name}))
                .collect();
            ok(obj! {"taglist" => list})
        }
        "/cgi-bin/tag/get" => {
            let id = int_param(req, "tagid")?.ok_or_else(|| errcode(40068, "invalid tagid"))?;
            let t = org
                .roles
                .get(&id)
                .ok_or_else(|| errcode(40068, "invalid tagid"))?;
            // Only members and departments within the visible range (reference A.5).
            let users: Vec<Value> = t
                .members
                .iter()
                .filter_map(|u| org.members.get(u))
                .filter(|m| org.member_in_range(m))
                .map(|m| json!({"userid": m.userid, "name": m.name}))
                .collect();
            let parties: Vec<i64> = t
                .parties
                .iter()
                .copied()
                .filter(|d| org.dept_in_range(*d))
                .collect();
            ok(obj! {"tagname" => t.name, "userlist" => users, "partylist" => parties})
        }
        "/cgi-bin/agent/get_admin_list" => {
            // Some SDKs send {"agentid": N}; the 100072 page needs no body.
            if let Ok(Some(a)) = req.int("agentid") {
                if a != org.agent_id {
                    return Err(errcode(40056, "invalid agentid"));
                }
            }
            let admins: Vec<Value> = org
                .admins
                .iter()
                .map(|(u, l)| json!({"userid": u, "auth_type": l}))
                .collect();
            ok(obj! {"admin" => admins})
        }
        "/cgi-bin/agent/get" => {
            let a = int_param(req, "agentid")?;
            if a != Some(org.agent_id) {
                return Err(errcode(40056, "invalid agentid"));
            }
            ok(obj! {
                "agentid" => org.agent_id,
                "name" => "组织同步",
                "square_logo_url" => "https://avatar.sim.invalid/app/0",
                "description" => "jit-sim self-built app",
                "allow_userinfos" => json!({"user": []}),
                "allow_partys" => json!({"partyid": org.visible_roots.clone().unwrap_or_else(|| vec![1])}),
                "allow_tags" => json!({"tagid": []}),
                "close" => 0,
                "redirect_domain" => "sim.invalid",
                "report_location_flag" => 0,
                "isreportenter" => 0,
                "home_url" => "",
            })
        }
        "/cgi-bin/auth/getuserinfo" | "/cgi-bin/user/getuserinfo" => {
            let code = req.query("code").unwrap_or("");
            let userid = sh
                .take_code(0, code)
                .filter(|u| u.is_empty() || org.find_member(u).is_some())
                .ok_or_else(|| errcode(40029, "invalid code"))?;
            if userid.is_empty() {
                // Not a member of the corp (reference A.7): an openid.
                let openid = "oSimOutsider";
                if path == "/cgi-bin/auth/getuserinfo" {
                    return Ok(ok(obj! {"openid" => openid, "external_userid" => ""}));
                }
                return Ok(ok(obj! {"OpenId" => openid, "DeviceId" => ""}));
            }
            if path == "/cgi-bin/auth/getuserinfo" {
                ok(obj! {"userid" => userid})
            } else {
                // The old endpoint's capitalised keys (reference A.7).
                ok(obj! {"UserId" => userid, "DeviceId" => ""})
            }
        }
        _ => errcode(48001, "api unauthorized"),
    })
}
