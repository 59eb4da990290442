//! The app's visible range (WeCom) / contact scope (DingTalk): what the APIs
//! show and refuse, and a truth that is exactly what a complete read yields.

use crate::common;
use common::*;
use jit_org::CorpSnapshot;
use jit_sim::{Mutation, OrgRef, SimHandle};
use serde_json::json;

/// A department two levels down (its parent is not the root), so that the
/// range cuts the tree in the middle.
fn second_level(t: &CorpSnapshot) -> i64 {
    *t.depts
        .iter()
        .find(|(_, d)| d.parent_id.is_some_and(|p| p != 1))
        .map(|(id, _)| id)
        .expect("the small org is deeper than one level")
}

fn subtree(t: &CorpSnapshot, root: i64) -> Vec<i64> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(
            t.depts
                .values()
                .filter(|d| d.parent_id == Some(p))
                .map(|d| d.dept_id),
        );
        i += 1;
    }
    out.sort();
    out
}

/// Checks a limited truth against the whole org it was cut from.
fn assert_truth_is_the_range(whole: &CorpSnapshot, truth: &CorpSnapshot, range: &[i64]) {
    assert_eq!(truth.depts.keys().copied().collect::<Vec<_>>(), range);
    let root = range[0];
    assert_eq!(
        truth.depts[&root].parent_id, None,
        "the range root is a top level"
    );
    for m in truth.members.values() {
        assert!(
            !m.depts.is_empty(),
            "{} has a visible membership",
            m.member_id
        );
        assert!(m.depts.iter().all(|d| range.contains(&d.dept_id)));
    }
    let expected: Vec<&String> = whole
        .members
        .values()
        .filter(|m| m.depts.iter().any(|d| range.contains(&d.dept_id)))
        .map(|m| &m.member_id)
        .collect();
    assert_eq!(truth.members.keys().collect::<Vec<_>>(), expected);
    for r in truth.roles.values() {
        assert!(r.members.iter().all(|u| truth.members.contains_key(u)));
    }
    assert_eq!(
        truth.admins, whole.admins,
        "admins are not limited by the range"
    );
}

async fn limited(platform: OrgRef) -> (SimHandle, CorpSnapshot, Vec<i64>) {
    let sim = start(small_with(|c| c.dingtalk_rate_per_second = 0)).await;
    let whole = match platform {
        OrgRef::Wecom => sim.wecom_truth(),
        OrgRef::Dingtalk(i) => sim.dingtalk_truth(i),
    };
    let root = second_level(&whole);
    sim.set_visible_range(platform, Some(vec![root])).unwrap();
    let range = subtree(&whole, root);
    (sim, whole, range)
}

#[tokio::test]
async fn wecom_shows_only_the_visible_range_and_the_truth_is_what_a_client_reads() {
    let (sim, whole, range) = limited(OrgRef::Wecom).await;
    let c = client();
    let t = wecom_token(&sim, &c, false).await;
    let base = sim.info().wecom.api_base_url;
    let list = ok(get(&c, &format!("{base}department/list?access_token={t}")).await);
    let mut ids: Vec<i64> = list["department"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, range);
    let root = list["department"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == range[0])
        .unwrap()
        .clone();
    assert_eq!(
        root["parentid"].as_i64(),
        whole.depts[&range[0]].parent_id,
        "the visible root keeps its real parentid"
    );
    let hidden = *whole.depts.keys().find(|d| !range.contains(d)).unwrap();
    for path in [
        format!("user/list?access_token={t}&department_id={hidden}"),
        format!("department/get?access_token={t}&id={hidden}"),
        format!("department/list?access_token={t}&id={hidden}"),
    ] {
        assert_eq!(
            get(&c, &format!("{base}{path}")).await["errcode"],
            60011,
            "{path}"
        );
    }
    let truth = sim.wecom_truth();
    assert_truth_is_the_range(&whole, &truth, &range);
    assert_eq!(read_wecom(&sim, &c).await, truth);
}

#[tokio::test]
async fn wecom_tags_list_only_members_within_the_visible_range() {
    let (sim, whole, _) = limited(OrgRef::Wecom).await;
    let inside = sim.wecom_truth();
    let outsider = whole
        .members
        .keys()
        .find(|u| !inside.members.contains_key(*u))
        .unwrap()
        .clone();
    let insider = inside.members.keys().next().unwrap().clone();
    let tag: i64 = whole.roles.keys().next().unwrap().parse().unwrap();
    sim.mutate(
        OrgRef::Wecom,
        Mutation::AddRoleMembers {
            role_id: tag,
            userids: vec![outsider.clone(), insider.clone()],
        },
    )
    .unwrap();
    let c = client();
    let t = wecom_token(&sim, &c, false).await;
    let base = sim.info().wecom.api_base_url;
    let v = ok(get(&c, &format!("{base}tag/get?access_token={t}&tagid={tag}")).await);
    let users: Vec<&str> = v["userlist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userid"].as_str().unwrap())
        .collect();
    assert!(users.contains(&insider.as_str()));
    assert!(!users.contains(&outsider.as_str()));
}

#[tokio::test]
async fn dingtalk_walks_through_the_scope_but_reads_only_inside_it() {
    let (sim, whole, range) = limited(OrgRef::Dingtalk(0)).await;
    let c = client();
    let t = ding_token(&sim, &c, 0).await;
    let base = sim.info().dingtalk[0].oapi_base_url.clone();
    let api = |p: &str| format!("{base}{p}?access_token={t}");
    // listsubid is not limited by the contact scope (reference B.2).
    let subs = ok(post(
        &c,
        &api("/topapi/v2/department/listsubid"),
        json!({"dept_id": 1}),
    )
    .await);
    let all_top: Vec<i64> = whole
        .depts
        .values()
        .filter(|d| d.parent_id == Some(1))
        .map(|d| d.dept_id)
        .collect();
    assert_eq!(
        subs["result"]["dept_id_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_i64().unwrap())
            .collect::<Vec<_>>(),
        all_top
    );
    for (path, body) in [
        ("/topapi/v2/department/get", json!({"dept_id": 1})),
        (
            "/topapi/v2/user/list",
            json!({"dept_id": 1, "cursor": 0, "size": 10}),
        ),
    ] {
        assert_eq!(post(&c, &api(path), body).await["errcode"], 50004, "{path}");
    }
    let truth = sim.dingtalk_truth(0);
    assert_truth_is_the_range(&whole, &truth, &range);
    assert_eq!(read_dingtalk(&sim, &c, 0, 7).await, truth);
}

#[tokio::test]
async fn the_visible_range_changes_over_the_admin_api_and_as_a_mutation() {
    let sim = start(small()).await;
    let c = client();
    let admin = sim.info().admin_url;
    let whole = sim.wecom_truth();
    let root = second_level(&whole);
    post(
        &c,
        &format!("{admin}/orgs/wecom/visible-range"),
        json!({"depts": [root]}),
    )
    .await;
    assert_eq!(sim.wecom_truth().depts.len(), subtree(&whole, root).len());
    post(
        &c,
        &format!("{admin}/orgs/wecom/mutate"),
        json!([{"op": "setVisibleRange", "depts": null}]),
    )
    .await;
    assert_eq!(sim.wecom_truth(), whole, "the whole org again");
    let range = format!("{admin}/orgs/wecom/visible-range");
    assert_eq!(
        post_status(&c, &range, json!({"depts": [987654]})).await,
        409,
        "an unknown department is refused"
    );
}

#[tokio::test]
async fn configured_ranges_apply_from_the_start() {
    let probe = start(small()).await;
    let root = second_level(&probe.wecom_truth());
    let ding_root = second_level(&probe.dingtalk_truth(1));
    let sim = start(small_with(|c| {
        c.wecom_visible_range = Some(vec![root]);
        c.dingtalk_visible_ranges = vec![None, Some(vec![ding_root])];
    }))
    .await;
    assert_eq!(sim.wecom_truth().depts.keys().next(), Some(&root));
    assert_eq!(sim.dingtalk_truth(0), probe.dingtalk_truth(0));
    assert_eq!(sim.dingtalk_truth(1).depts.keys().next(), Some(&ding_root));
}
