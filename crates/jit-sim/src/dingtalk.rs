//! DingTalk endpoints of both families (reference Part B): the oapi family
//! (`/gettoken`, `/topapi/...`: HTTP 200 with `errcode`) and the new family
//! (`/v1.0/...`: resource JSON, errors as HTTP 4xx `{code, message, requestid}`).

use crate::org::{MemberRec, Org};
use crate::server::{ding_err, new_err, ApiReq, Reply, Routed, Shared, TokenFault, TokenKind};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::HashSet;

const TOKEN_HEADER: &str = "x-acs-dingtalk-access-token";

fn ok(sh: &Shared, result: Value) -> Reply {
    Reply::Json(
        StatusCode::OK,
        json!({"errcode": 0, "errmsg": "ok", "result": result, "request_id": sh.request_id()}),
    )
}

/// An oapi answer whose payload sits beside `errcode` instead of in `result`.
fn ok_top(sh: &Shared, key: &str, v: Value) -> Reply {
    let mut m = Map::new();
    m.insert("errcode".into(), json!(0));
    m.insert("errmsg".into(), json!("ok"));
    m.insert(key.into(), v);
    m.insert("request_id".into(), json!(sh.request_id()));
    Reply::Json(StatusCode::OK, Value::Object(m))
}

fn find_app(sh: &Shared, app_key: &str) -> Option<usize> {
    (1..sh.orgs.len()).find(|&i| sh.orgs[i].read().expect("org lock").app_key == app_key)
}

/// Checks AppKey/AppSecret: `Ok(org)`, or `Err(org if the key was known)`.
fn check_app(sh: &Shared, key: &str, secret: &str) -> Result<usize, Option<usize>> {
    let org = find_app(sh, key).ok_or(None)?;
    if sh.orgs[org].read().expect("org lock").secret == secret {
        Ok(org)
    } else {
        Err(Some(org))
    }
}

/// Maps a request to its canonical API path and authenticates it.
pub(crate) fn route(sh: &Shared, req: &ApiReq) -> Option<Routed> {
    const PATHS: &[&str] = &[
        "/gettoken",
        "/topapi/v2/department/listsub",
        "/topapi/v2/department/listsubid",
        "/topapi/v2/department/get",
        "/topapi/v2/user/list",
        "/topapi/user/listsimple",
        "/topapi/user/listid",
        "/topapi/v2/user/get",
        "/topapi/user/getbyunionid",
        "/topapi/role/list",
        "/topapi/role/simplelist",
        "/topapi/role/getrolegroup",
        "/topapi/role/getrole",
        "/topapi/user/listadmin",
        "/topapi/v2/user/getuserinfo",
        "/v1.0/oauth2/accessToken",
        "/v1.0/oauth2/userAccessToken",
        "/v1.0/contact/users/me",
    ];
    let path: &'static str = PATHS.iter().copied().find(|p| *p == req.path)?;
    let invalid_client = || {
        new_err(
            sh,
            400,
            "invalidClientIdOrSecret",
            "无效的clientId或者clientSecret",
        )
    };
    let who = match path {
        "/gettoken" => {
            let key = req.query("appkey").unwrap_or("");
            let secret = req.query("appsecret").unwrap_or("");
            // Reference Part D: bad appKey/appSecret has been seen as 40096.
            check_app(sh, key, secret)
                .map(|o| (o, TokenKind::App))
                .map_err(|o| (o, ding_err(sh, 40096, "不合法的appKey或appSecret")))
        }
        "/v1.0/oauth2/accessToken" | "/v1.0/oauth2/userAccessToken" => {
            if !req.body_ok || !req.body.is_object() {
                Err((None, new_err(sh, 400, "MissingBody", "body is mandatory")))
            } else {
                let (k, s) = if path.ends_with("/accessToken") {
                    ("appKey", "appSecret")
                } else {
                    ("clientId", "clientSecret")
                };
                let key = req.body.get(k).and_then(Value::as_str).unwrap_or("");
                let secret = req.body.get(s).and_then(Value::as_str).unwrap_or("");
                check_app(sh, key, secret)
                    .map(|o| (o, TokenKind::App))
                    .map_err(|o| (o, invalid_client()))
            }
        }
        "/v1.0/contact/users/me" => {
            let token = req.headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok());
            match sh.check_token(token) {
                Ok((o, TokenKind::User(u))) if o > 0 => Ok((o, TokenKind::User(u))),
                Ok((o, _)) => Err((
                    Some(o),
                    new_err(sh, 400, "InvalidAuthentication", "不合法的access_token"),
                )),
                Err((o, _)) => Err((
                    o,
                    new_err(sh, 400, "InvalidAuthentication", "不合法的access_token"),
                )),
            }
        }
        _ => match sh.check_token(req.query("access_token")) {
            Ok((o, TokenKind::App)) if o > 0 => Ok((o, TokenKind::App)),
            Ok(_) => Err((None, ding_err(sh, 40014, "不合法的access_token"))),
            Err((o, fault)) => {
                let reply = match fault {
                    TokenFault::Missing => ding_err(sh, 41001, "缺少参数access_token"),
                    TokenFault::Expired => ding_err(sh, 42001, "access_token超时"),
                    TokenFault::Revoked => ding_err(sh, 40014, "不合法的access_token"),
                    // Reference Part D: often reported as 88 with a string sub_code.
                    TokenFault::Unknown => Reply::Json(
                        StatusCode::OK,
                        json!({"errcode": 88, "errmsg": "鉴权异常", "sub_code": "40014",
                               "sub_msg": "不合法的access_token", "request_id": sh.request_id()}),
                    ),
                };
                Err((o.filter(|&o| o > 0), reply))
            }
        },
    };
    Some(Routed { path, who })
}

/// Answers one authenticated DingTalk call.
pub(crate) fn handle(
    sh: &Shared,
    path: &str,
    org_idx: usize,
    kind: &TokenKind,
    req: &ApiReq,
) -> Reply {
    match path {
        "/gettoken" => {
            let (t, exp) = sh.issue_token(org_idx, TokenKind::App);
            return Reply::Json(
                StatusCode::OK,
                json!({"errcode": 0, "errmsg": "ok", "access_token": t, "expires_in": exp}),
            );
        }
        "/v1.0/oauth2/accessToken" => {
            let (t, exp) = sh.issue_token(org_idx, TokenKind::App);
            return Reply::Json(StatusCode::OK, json!({"accessToken": t, "expireIn": exp}));
        }
        "/v1.0/oauth2/userAccessToken" => return user_access_token(sh, org_idx, req),
        _ => {}
    }
    let org = sh.orgs[org_idx].read().expect("org lock");
    if path == "/v1.0/contact/users/me" {
        let TokenKind::User(userid) = kind else {
            return new_err(sh, 400, "InvalidAuthentication", "不合法的access_token");
        };
        if userid.is_empty() {
            // The outsider: a DingTalk person no org of the app knows.
            return Reply::Json(
                StatusCode::OK,
                json!({"nick": "Outsider", "avatarUrl": "", "openId": "openOutsider",
                       "unionId": "unionOutsiderOfEveryOrg", "stateCode": "86"}),
            );
        }
        return match org.find_member(userid) {
            Some(m) => Reply::Json(
                StatusCode::OK,
                json!({
                    "nick": m.name,
                    "avatarUrl": m.avatar.clone().unwrap_or_default(),
                    "mobile": m.mobile,
                    "openId": format!("open{:x}", crate::org::mix(m.seq, org_idx as u64)),
                    "unionId": m.union_id,
                    "email": m.email,
                    "stateCode": "86",
                }),
            ),
            None => new_err(sh, 404, "invalidParameter.user.notFound", "用户不存在"),
        };
    }
    match topapi(sh, &org, org_idx, path, req) {
        Ok(r) | Err(r) => r,
    }
}

fn user_access_token(sh: &Shared, org_idx: usize, req: &ApiReq) -> Reply {
    let grant = req
        .body
        .get("grantType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let userid = match grant {
        "authorization_code" => {
            let code = req.body.get("code").and_then(Value::as_str).unwrap_or("");
            sh.take_code(org_idx, code)
        }
        "refresh_token" => {
            let r = req
                .body
                .get("refreshToken")
                .and_then(Value::as_str)
                .unwrap_or("");
            sh.take_refresh(r)
                .filter(|(o, _)| *o == org_idx)
                .map(|(_, u)| u)
        }
        _ => {
            return new_err(
                sh,
                400,
                "invalidParameter.grantType.invalid",
                "grantType不合法",
            )
        }
    };
    // The error code for a bad or used code is not in the reference
    // (UNCONFIRMED); the closest documented shape is HTTP 400 {code, message}.
    let Some(userid) = userid else {
        return new_err(
            sh,
            400,
            "invalidParameter.authCode.notFound",
            "不合法的临时授权码",
        );
    };
    let corp_id = sh.orgs[org_idx].read().expect("org lock").corp_id.clone();
    let (t, r, exp) = sh.issue_user_token(org_idx, &userid);
    Reply::Json(
        StatusCode::OK,
        json!({"accessToken": t, "refreshToken": r, "expireIn": exp, "corpId": corp_id}),
    )
}

fn boss(org: &Org, userid: &str) -> bool {
    org.admin_level(userid) == Some(1)
}

/// Fields common to v2/user/list items and v2/user/get (reference B.3);
/// `dept_order` and `leader` only in list items. Serialized straight from
/// the member: v2/user/list is the hot path of every benchmark.
#[derive(Serialize)]
struct DingUser<'a> {
    userid: &'a str,
    unionid: Option<&'a str>,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    avatar: Option<&'a str>,
    state_code: &'static str,
    mobile: &'a str,
    hide_mobile: bool,
    telephone: &'static str,
    job_number: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    dept_id_list: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hired_date: Option<i64>,
    active: bool,
    admin: bool,
    boss: bool,
    exclusive_account: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    dept_order: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    leader: Option<bool>,
}

fn ding_user<'a>(org: &'a Org, m: &'a MemberRec, dept: Option<i64>) -> DingUser<'a> {
    let ms = dept.and_then(|d| m.membership(d));
    DingUser {
        userid: &m.userid,
        unionid: m.union_id.as_deref(),
        name: &m.name,
        avatar: m.avatar.as_deref(),
        state_code: "86",
        mobile: &m.mobile,
        hide_mobile: false,
        telephone: "",
        job_number: &m.job_number,
        title: &m.position,
        email: (!m.email.is_empty()).then_some(m.email.as_str()),
        dept_id_list: m.depts.iter().map(|x| x.dept_id).collect(),
        hired_date: m.hired_date,
        active: m.status == crate::org::SimStatus::Active,
        admin: org.admin_level(&m.userid).is_some(),
        boss: boss(org, &m.userid),
        exclusive_account: false,
        dept_order: ms.map(|x| x.order),
        leader: ms.map(|x| x.leader),
    }
}

fn user_base(org: &Org, m: &MemberRec) -> Map<String, Value> {
    match serde_json::to_value(ding_user(org, m, None)) {
        Ok(Value::Object(u)) => u,
        _ => unreachable!("a struct serializes to an object"),
    }
}

fn user_detail(org: &Org, m: &MemberRec) -> Value {
    let mut u = user_base(org, m);
    if let Some(first) = m.depts.first() {
        if let Some(mgr) = org
            .leaders(first.dept_id)
            .into_iter()
            .find(|l| *l != m.userid)
        {
            u.insert("manager_userid".into(), json!(mgr));
        }
    }
    u.insert(
        "dept_order_list".into(),
        json!(m
            .depts
            .iter()
            .map(|x| json!({"dept_id": x.dept_id, "order": x.order}))
            .collect::<Vec<_>>()),
    );
    u.insert(
        "leader_in_dept".into(),
        json!(m
            .depts
            .iter()
            .map(|x| json!({"dept_id": x.dept_id, "leader": x.leader}))
            .collect::<Vec<_>>()),
    );
    let roles: Vec<Value> = org
        .roles
        .values()
        .filter(|r| r.members.contains(&m.userid))
        .map(|r| json!({"id": r.id, "name": r.name, "group_name": org.groups.get(&r.group_id).map(|g| g.name.clone()).unwrap_or_default()}))
        .collect();
    u.insert("role_list".into(), json!(roles));
    u.insert("real_authed".into(), json!(true));
    u.insert("senior".into(), json!(false));
    Value::Object(u)
}

/// Reads a required/optional integer body parameter.
fn int(sh: &Shared, req: &ApiReq, k: &str, required: bool) -> Result<Option<i64>, Reply> {
    match req.int(k) {
        Ok(None) if required => Err(ding_err(sh, 40035, &format!("缺少参数 {k}"))),
        Ok(v) => Ok(v),
        Err(()) => Err(ding_err(sh, 400002, &format!("无效的参数 {k}"))),
    }
}

fn dept_exists(sh: &Shared, org: &Org, id: i64) -> Result<(), Reply> {
    if org.depts.contains_key(&id) {
        Ok(())
    } else {
        Err(ding_err(sh, 60003, "部门不存在"))
    }
}

/// An existing department inside the app's contact scope; outside it
/// answers 50004 (reference B.2, B.3).
fn dept_in_scope(sh: &Shared, org: &Org, id: i64) -> Result<(), Reply> {
    dept_exists(sh, org, id)?;
    if org.dept_in_range(id) {
        Ok(())
    } else {
        Err(ding_err(sh, 50004, "企业部门不在授权范围"))
    }
}

/// One cursor page over a department's members.
fn page<'a>(
    sh: &Shared,
    org: &'a Org,
    req: &ApiReq,
) -> Result<(i64, Vec<&'a MemberRec>, bool, usize), Reply> {
    let dept = int(sh, req, "dept_id", true)?.expect("required");
    dept_in_scope(sh, org, dept)?;
    let cursor = int(sh, req, "cursor", true)?.expect("required");
    let size = int(sh, req, "size", true)?.expect("required");
    // The maximum of 100 is documented on listsimple and assumed for
    // v2/user/list (reference B.3, UNCONFIRMED there).
    if !(1..=100).contains(&size) {
        return Err(ding_err(sh, 400002, "size 参数不合法，最大值为100"));
    }
    if cursor < 0 {
        return Err(ding_err(sh, 400002, "cursor 参数不合法"));
    }
    let mut members = org.dept_members(dept);
    match req.string("order_field").as_deref() {
        // Modification time is not tracked; it follows arrival like entry_*.
        Some("entry_asc") | Some("modify_asc") => members.sort_by_key(|m| m.seq),
        Some("entry_desc") | Some("modify_desc") => {
            members.sort_by_key(|m| std::cmp::Reverse(m.seq))
        }
        _ => {}
    }
    let start = (cursor as usize).min(members.len());
    let end = (start + size as usize).min(members.len());
    let has_more = end < members.len();
    Ok((dept, members[start..end].to_vec(), has_more, end))
}

fn topapi(
    sh: &Shared,
    org: &Org,
    org_idx: usize,
    path: &str,
    req: &ApiReq,
) -> Result<Reply, Reply> {
    if !req.body_ok {
        return Err(ding_err(sh, 400002, "请求体不是合法的JSON"));
    }
    Ok(match path {
        "/topapi/v2/department/listsub" => {
            // Omitted dept_id defaults to the root: documented only for the
            // archived department/list (reference B.2, UNCONFIRMED for v2).
            let id = int(sh, req, "dept_id", false)?.unwrap_or(1);
            dept_exists(sh, org, id)?;
            let list: Vec<Value> = org.depts[&id]
                .children
                .iter()
                .map(|c| {
                    let d = &org.depts[c];
                    json!({"dept_id": d.id, "name": d.name, "parent_id": id,
                           "create_dept_group": true, "auto_add_user": true})
                })
                .collect();
            ok(sh, json!(list))
        }
        "/topapi/v2/department/listsubid" => {
            let id = int(sh, req, "dept_id", true)?.expect("required");
            dept_exists(sh, org, id)?;
            ok(sh, json!({"dept_id_list": org.depts[&id].children}))
        }
        "/topapi/v2/department/get" => {
            let id = int(sh, req, "dept_id", true)?.expect("required");
            dept_in_scope(sh, org, id)?;
            let d = &org.depts[&id];
            let mut all = HashSet::new();
            for s in org.subtree(id) {
                all.extend(org.dept_members(s).into_iter().map(|m| m.userid.as_str()));
            }
            let mut r = Map::new();
            r.insert("dept_id".into(), json!(d.id));
            r.insert("name".into(), json!(d.name));
            if let Some(p) = d.parent {
                r.insert("parent_id".into(), json!(p));
            }
            r.insert("order".into(), json!(d.order));
            r.insert("create_dept_group".into(), json!(true));
            r.insert("auto_add_user".into(), json!(true));
            r.insert("group_contain_sub_dept".into(), json!(false));
            r.insert("from_union_org".into(), json!(false));
            r.insert("outer_dept".into(), json!(false));
            r.insert("hide_dept".into(), json!(false));
            let leaders = org.leaders(id);
            if !leaders.is_empty() {
                r.insert("dept_manager_userid_list".into(), json!(leaders));
            }
            r.insert("member_count".into(), json!(all.len()));
            r.insert(
                "owning_member_count".into(),
                json!(org.dept_members(id).len()),
            );
            ok(sh, Value::Object(r))
        }
        "/topapi/v2/user/list" => {
            let (dept, members, has_more, next) = page(sh, org, req)?;
            #[derive(Serialize)]
            struct Page<'a> {
                has_more: bool,
                #[serde(skip_serializing_if = "Option::is_none")]
                next_cursor: Option<usize>,
                list: Vec<DingUser<'a>>,
            }
            #[derive(Serialize)]
            struct Answer<'a> {
                errcode: i64,
                errmsg: &'static str,
                result: Page<'a>,
                request_id: String,
            }
            let body = Answer {
                errcode: 0,
                errmsg: "ok",
                result: Page {
                    has_more,
                    next_cursor: has_more.then_some(next),
                    list: members
                        .iter()
                        .map(|m| ding_user(org, m, Some(dept)))
                        .collect(),
                },
                request_id: sh.request_id(),
            };
            Reply::Text(
                StatusCode::OK,
                "application/json",
                serde_json::to_string(&body).expect("plain data serializes"),
            )
        }
        "/topapi/user/listsimple" => {
            let (_, members, has_more, next) = page(sh, org, req)?;
            let list: Vec<Value> = members
                .iter()
                .map(|m| json!({"userid": m.userid, "name": m.name}))
                .collect();
            let mut r = json!({"has_more": has_more, "list": list});
            if has_more {
                r["next_cursor"] = json!(next);
            }
            ok(sh, r)
        }
        "/topapi/user/listid" => {
            let id = int(sh, req, "dept_id", true)?.expect("required");
            dept_exists(sh, org, id)?;
            let ids: Vec<&str> = org
                .dept_members(id)
                .iter()
                .map(|m| m.userid.as_str())
                .collect();
            ok(sh, json!({"userid_list": ids}))
        }
        "/topapi/v2/user/get" => {
            let userid = req.string("userid").unwrap_or_default();
            if userid.is_empty() {
                return Err(ding_err(sh, 40035, "缺少参数 userid"));
            }
            let m = org
                .find_member(&userid)
                .ok_or_else(|| ding_err(sh, 60121, "找不到该用户"))?;
            ok(sh, user_detail(org, m))
        }
        "/topapi/user/getbyunionid" => {
            let union = req.string("unionid").unwrap_or_default();
            let m = org
                .by_union
                .get(&union)
                .and_then(|u| org.find_member(u))
                .ok_or_else(|| ding_err(sh, 60121, "找不到该用户"))?;
            ok(sh, json!({"contact_type": 0, "userid": m.userid}))
        }
        "/topapi/role/list" => role_list(sh, org, req)?,
        "/topapi/role/simplelist" => {
            let id = int(sh, req, "role_id", true)?.expect("required");
            let role = org
                .roles
                .get(&id)
                .ok_or_else(|| ding_err(sh, 33011, "角色不存在"))?;
            let size = int(sh, req, "size", false)?.unwrap_or(20);
            let offset = int(sh, req, "offset", false)?.unwrap_or(0);
            if !(1..=100).contains(&size) {
                return Err(ding_err(sh, 40069, "不合法的size"));
            }
            if offset < 0 {
                return Err(ding_err(sh, 40068, "不合法的offset"));
            }
            let members: Vec<&MemberRec> = role
                .members
                .iter()
                .filter_map(|u| org.find_member(u))
                .filter(|m| org.member_in_range(m))
                .collect();
            let start = (offset as usize).min(members.len());
            let end = (start + size as usize).min(members.len());
            let list: Vec<Value> = members[start..end]
                .iter()
                .map(|m| json!({"userid": m.userid, "name": m.name}))
                .collect();
            ok(sh, json!({"hasMore": end < members.len(), "list": list}))
        }
        "/topapi/role/getrolegroup" => {
            let id = int(sh, req, "group_id", true)?.expect("required");
            let g = org
                .groups
                .get(&id)
                .ok_or_else(|| ding_err(sh, 400002, "角色组不存在"))?;
            let roles: Vec<Value> = g
                .roles
                .iter()
                .map(|r| json!({"role_id": r, "role_name": org.roles[r].name}))
                .collect();
            ok_top(
                sh,
                "role_group",
                json!({"group_name": g.name, "roles": roles}),
            )
        }
        "/topapi/role/getrole" => {
            let id = int(sh, req, "roleId", true)?.expect("required");
            let r = org
                .roles
                .get(&id)
                .ok_or_else(|| ding_err(sh, 33011, "角色不存在"))?;
            ok_top(sh, "role", json!({"name": r.name, "groupId": r.group_id}))
        }
        "/topapi/user/listadmin" => {
            let list: Vec<Value> = org
                .admins
                .iter()
                .map(|(u, l)| json!({"userid": u, "sys_level": l}))
                .collect();
            ok(sh, json!(list))
        }
        "/topapi/v2/user/getuserinfo" => {
            let code = req.string("code").unwrap_or_default();
            let userid = sh
                .take_code(org_idx, &code)
                .ok_or_else(|| ding_err(sh, 40078, "不存在的临时授权码"))?;
            let m = org
                .find_member(&userid)
                .ok_or_else(|| ding_err(sh, 40078, "不存在的临时授权码"))?;
            let level = org.admin_level(&m.userid).unwrap_or(0);
            ok(
                sh,
                json!({"userid": m.userid, "device_id": "", "sys": level > 0, "sys_level": level,
                       "associated_unionid": "", "unionid": m.union_id, "name": m.name}),
            )
        }
        _ => ding_err(sh, 22, "无效的API，请检查API路径"),
    })
}

/// `topapi/role/list`: offset/size page over roles (an empty group counts as
/// one entry) only when both are sent; groups split across pages repeat
/// with the same `groupId` (reference Part D).
fn role_list(sh: &Shared, org: &Org, req: &ApiReq) -> Result<Reply, Reply> {
    let size = int(sh, req, "size", false)?;
    let offset = int(sh, req, "offset", false)?;
    let mut entries: Vec<(i64, Option<i64>)> = Vec::new();
    for g in org.groups.values() {
        if g.roles.is_empty() {
            entries.push((g.id, None));
        }
        entries.extend(g.roles.iter().map(|r| (g.id, Some(*r))));
    }
    let (start, end) = match (size, offset) {
        (Some(size), Some(offset)) => {
            if !(1..=200).contains(&size) {
                return Err(ding_err(sh, 40069, "不合法的size"));
            }
            if offset < 0 {
                return Err(ding_err(sh, 40068, "不合法的offset"));
            }
            let s = (offset as usize).min(entries.len());
            (s, (s + size as usize).min(entries.len()))
        }
        _ => (0, entries.len()),
    };
    let mut list: Vec<Value> = Vec::new();
    for (gid, role) in &entries[start..end] {
        let same = list
            .last()
            .is_some_and(|l: &Value| l["groupId"] == json!(gid));
        if !same {
            list.push(json!({"groupId": gid, "name": org.groups[gid].name, "roles": []}));
        }
        if let Some(r) = role {
            let last = list.last_mut().expect("pushed");
            last["roles"]
                .as_array_mut()
                .expect("array")
                .push(json!({"id": r, "name": org.roles[r].name}));
        }
    }
    Ok(ok(
        sh,
        json!({"hasMore": end < entries.len(), "list": list}),
    ))
}
