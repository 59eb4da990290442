//! Property tests of every parser and pure function that takes outside
//! data. Case counts are kept small (each property runs in well under ten
//! seconds in a debug build); `PROPTEST_CASES` raises them for a deeper run.

use jit_core::{App, LoadOptions, TypeRegistry};
use jit_org::{
    Admin, CorpRecord, CorpSnapshot, Dept, DeptMembership, Member, MemberStatus, Provider, Role,
    RoleGroup,
};
use jit_sync::{plan, SyncOptions};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::HashMap;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(cases),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// ------------------------------------------------------------ the loader

fn registry() -> TypeRegistry {
    let mut r = TypeRegistry::new();
    jit_corps::register_builtins(&mut r);
    r
}

fn load(dir: &std::path::Path, env: HashMap<String, String>) -> App {
    App::load(
        dir,
        LoadOptions {
            registry: registry(),
            env: Some(env),
            skip_startup: true,
        },
    )
    .expect("an app folder always loads (problems are diagnostics)")
}

proptest! {
    #![proptest_config(config(48))]

    /// Any bytes as an e.json: the load never panics, and every problem
    /// names that file.
    #[test]
    fn the_loader_turns_any_e_json_bytes_into_diagnostics_of_that_file(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            arb_json().prop_map(|v| v.to_string().into_bytes()),
        ]
    ) {
        let dir = tempfile::tempdir().unwrap();
        let e = dir.path().join("corps/X/e.json");
        std::fs::create_dir_all(e.parent().unwrap()).unwrap();
        std::fs::write(&e, &bytes).unwrap();
        let app = load(dir.path(), HashMap::new());
        for d in app.diagnostics().iter() {
            prop_assert!(
                d.file.starts_with(dir.path()) || d.file.starts_with("schemas"),
                "{d}"
            );
        }
    }

    /// Any JSON as a WeCom config whose secret comes from the environment:
    /// no panic, and no diagnostic ever shows the secret.
    #[test]
    fn the_config_filler_never_shows_a_filled_secret(
        config in arb_json(),
        secret in "[A-Za-z0-9]{10,16}",
        field in "[a-zA-Z]{1,10}",
        text in "[{}A-Z_ a-z]{0,16}",
    ) {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, v: &Value| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, v.to_string()).unwrap();
        };
        write("corps/Acme/e.json", &json!({"title": "Acme", "type": "corps.QywxInnerType"}));
        let mut cfg = match config {
            Value::Object(m) => Value::Object(m),
            other => json!({ "x": other }),
        };
        cfg["secret"] = json!("{{HOSTILE_SECRET}}");
        // The secret also lands where the schema quotes values.
        cfg[field.as_str()] = json!(format!("{text}{{{{HOSTILE_SECRET}}}}"));
        write("corps/Acme/Acme.json", &cfg);
        let env = HashMap::from([("HOSTILE_SECRET".to_string(), secret.clone())]);
        let app = load(dir.path(), env);
        for d in app.diagnostics().iter() {
            prop_assert!(!d.to_string().contains(&secret), "{d}");
        }
    }
}

// ------------------------------------------------------------ platform JSON

/// Every key name that names a secret, in the spellings platforms use.
const SECRET_KEYS: [&str; 8] = [
    "access_token",
    "accessToken",
    "corpsecret",
    "appsecret",
    "appSecret",
    "secret",
    "encodingAesKey",
    "x-acs-dingtalk-access-token",
];

proptest! {
    #![proptest_config(config(256))]

    /// The lenient readers and the strict checks the WeCom and DingTalk
    /// models use take any JSON without panicking, and an id passes the
    /// check exactly when it is a whole number in 1..=2^53-1.
    #[test]
    fn platform_readers_take_any_json_and_check_ids_exactly(v in arb_json(), key in "[a-z_]{1,6}") {
        use jit_apiclient::json;
        let _ = (json::int(Some(&v)), json::string(Some(&v)), json::boolean(Some(&v)));
        let _ = (json::ints(Some(&v)), json::strings(Some(&v)), json::array(Some(&v)));
        let _ = json::records(&v, &key);
        let obj = json!({ "id": v.clone() });
        let ok = json::check_id(&obj, "id", "", true).is_ok();
        let expected = match &v {
            Value::Number(n) if !n.is_f64() => n.as_i64().is_some_and(|i| (1..=json::MAX_ID).contains(&i)),
            Value::String(s) => s.trim().parse::<i64>().is_ok_and(|i| (1..=json::MAX_ID).contains(&i)),
            _ => false,
        };
        prop_assert_eq!(ok, expected, "{}", v);
        let _ = json::check_ids(&json!({ "ids": v.clone() }), "ids", "");
        let _ = json::check_text(&obj, "id", "", true);
    }

    /// The WeCom and DingTalk models take any JSON as an answer without
    /// panicking; whatever they accept has readable ids (no department 0,
    /// no id beyond 2^53 - 1, no empty userid), and a malformed answer names
    /// the API path.
    #[test]
    fn platform_models_accept_only_readable_records(
        answer in arb_json(),
        rows in prop::collection::vec(arb_json(), 0..4),
        key in prop::sample::select(vec!["id", "parentid", "userid", "department", "dept_id_list", "status"]),
    ) {
        let as_rows = |field: &str| {
            let rows: Vec<Value> = rows
                .iter()
                .map(|r| json!({ "id": 2, "parentid": 1, "userid": "u", key: r.clone() }))
                .collect();
            json!({ field: rows })
        };
        let max = jit_apiclient::json::MAX_ID;
        for v in [answer.clone(), as_rows("department")] {
            match jit_wecom::parse_department_list(&v) {
                Ok(depts) => {
                    for d in depts {
                        prop_assert!((1..=max).contains(&d.dept_id), "{d:?}");
                        prop_assert!(d.parent_id.is_none_or(|p| (1..=max).contains(&p)), "{d:?}");
                    }
                }
                Err(e) => prop_assert_eq!(e.path(), "/cgi-bin/department/list"),
            }
        }
        for v in [answer.clone(), as_rows("userlist")] {
            match jit_wecom::parse_user_list(&v) {
                Ok(members) => {
                    for m in members {
                        prop_assert!(!m.member_id.is_empty());
                        prop_assert!(m.depts.iter().all(|d| (1..=max).contains(&d.dept_id)), "{m:?}");
                    }
                }
                Err(e) => prop_assert_eq!(e.path(), "/cgi-bin/user/list"),
            }
        }
        for v in [answer, as_rows("list")] {
            match jit_dingtalk::parse_user_page(&v, 7) {
                Ok(page) => {
                    for l in page.members {
                        prop_assert!(!l.member.member_id.is_empty());
                        prop_assert!(l.member.depts.iter().all(|d| (1..=max).contains(&d.dept_id)), "{:?}", l.member);
                    }
                }
                Err(e) => prop_assert_eq!(e.path(), "/topapi/v2/user/list"),
            }
        }
    }

    /// A well-formed WeCom department answer reads back exactly.
    #[test]
    fn a_well_formed_wecom_department_list_reads_back_exactly(
        names in prop::collection::vec("[^\\u{0}]{0,10}", 1..6),
        orders in prop::collection::vec(any::<u32>(), 6),
    ) {
        let rows: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(i, n)| json!({"id": i + 1, "parentid": i, "name": n, "order": orders[i]}))
            .collect();
        let depts = jit_wecom::parse_department_list(&json!({"errcode": 0, "department": rows}))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (i, d) in depts.iter().enumerate() {
            prop_assert_eq!(d.dept_id, i as i64 + 1);
            prop_assert_eq!(d.parent_id, if i == 0 { None } else { Some(i as i64) });
            prop_assert_eq!(&d.name, &names[i]);
            prop_assert_eq!(d.order, i64::from(orders[i]));
        }
    }

    /// A secret value under any secret key, in a query, a form, a JSON
    /// member (cut off or not, escaped or not) or a header line, inside any
    /// text, never survives `redact`; redacting twice changes nothing more.
    #[test]
    fn redact_removes_every_secret_value_in_any_framing(
        key in prop::sample::select(SECRET_KEYS.to_vec()),
        value in "[A-Za-z0-9._-]{8,24}",
        before in "[ -~]{0,20}",
        after in "[ -~]{0,20}",
        frame in 0usize..6,
    ) {
        let framed = match frame {
            0 => format!("/x?a=1&{key}={value}&b=2"),
            1 => format!("{{\"{key}\":\"{value}\",\"n\":1}}"),
            2 => format!("{{\"{key}\" : \"{value}"),
            3 => format!("\"{{\\\"{key}\\\":\\\"{value}\\\"}}\""),
            4 => format!("{key}: {value}\n"),
            _ => format!("{key}={value}"),
        };
        let text = format!("{before} {framed} {after}");
        let once = jit_core::redact(&text);
        prop_assert!(!once.contains(&value), "{}", once);
        prop_assert_eq!(jit_core::redact(&once), once.clone());
    }

    /// Text with no secret key passes through unchanged (in particular the
    /// platform's own error codes and messages).
    #[test]
    fn redact_keeps_text_without_secret_keys(text in "[a-z0-9 ,:{}\"=&?/_-]{0,60}") {
        prop_assume!(!["secret", "token", "password", "aeskey", "privatekey", "code", "bearer"]
            .iter()
            .any(|k| text.to_ascii_lowercase().contains(k)));
        prop_assert_eq!(jit_core::redact(&text), text);
    }
}

// ------------------------------------------------------------ plan()

/// A consistent org: a department tree, members in its departments, roles
/// held by members, admins among them.
fn arb_org() -> impl Strategy<Value = CorpSnapshot> {
    (
        1usize..6,
        prop::collection::vec((0usize..100, "[A-Z][a-z]{0,5}"), 0..6),
        prop::collection::vec(
            (
                0usize..8,
                "[A-Z][a-z]{0,5}",
                prop::collection::vec((0usize..100, any::<bool>()), 1..3),
                0u8..4,
            ),
            0..8,
        ),
        prop::collection::vec(prop::collection::vec(0usize..8, 0..4), 0..3),
        prop::collection::vec(0usize..8, 0..2),
    )
        .prop_map(|(n, depts, members, roles, admins)| {
            let mut s = CorpSnapshot::new("ww1");
            s.depts.insert(1, Dept::new(1, None, "Root"));
            for (i, (parent, name)) in depts.iter().take(n).enumerate() {
                let id = i as i64 + 2;
                let parent = 1 + (*parent as i64 % (id - 1));
                s.depts
                    .insert(id, Dept::new(id, Some(parent), name.clone()));
            }
            let ids: Vec<i64> = s.depts.keys().copied().collect();
            for (idx, name, memberships, status) in members {
                let mut m = Member::new(format!("u{idx}"), name);
                m.status = match status {
                    0 => MemberStatus::Active,
                    1 => MemberStatus::Disabled,
                    2 => MemberStatus::NotActivated,
                    _ => MemberStatus::Active,
                };
                let mut seen = Vec::new();
                for (d, leader) in memberships {
                    let dept_id = ids[d % ids.len()];
                    if !seen.contains(&dept_id) {
                        seen.push(dept_id);
                        m.depts.push(DeptMembership {
                            dept_id,
                            order: 0,
                            is_leader: leader,
                        });
                    }
                }
                s.members.insert(m.member_id.clone(), m);
            }
            let member_ids: Vec<String> = s.members.keys().cloned().collect();
            if !roles.is_empty() {
                s.role_groups.insert(
                    "g".into(),
                    RoleGroup {
                        group_id: "g".into(),
                        name: "Group".into(),
                    },
                );
            }
            for (i, holders) in roles.into_iter().enumerate() {
                let mut members: Vec<String> = holders
                    .into_iter()
                    .filter_map(|h| member_ids.get(h % member_ids.len().max(1)).cloned())
                    .collect();
                members.sort();
                members.dedup();
                s.roles.insert(
                    format!("r{i}"),
                    Role {
                        role_id: format!("r{i}"),
                        group_id: Some("g".into()),
                        name: format!("Role {i}"),
                        members,
                    },
                );
            }
            let mut list: Vec<Admin> = admins
                .into_iter()
                .filter_map(|a| member_ids.get(a % member_ids.len().max(1)).cloned())
                .map(|member_id| Admin {
                    member_id,
                    level: 1,
                })
                .collect();
            list.sort();
            list.dedup();
            s.admins = Some(list);
            s
        })
}

fn opts() -> SyncOptions {
    SyncOptions {
        force: true,
        ..SyncOptions::default()
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// `plan` is a pure function: the same inputs give the same plan.
    #[test]
    fn plan_is_deterministic(local in arb_org(), remote in arb_org()) {
        let a = plan(&local, &remote, &opts());
        let b = plan(&local, &remote, &opts());
        prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }

    /// A sync never deletes a member: whoever is stored is still upserted
    /// or offlined or left alone, and no change line removes a member.
    #[test]
    fn plan_never_deletes_a_member(local in arb_org(), remote in arb_org()) {
        let p = plan(&local, &remote, &opts());
        for c in &p.changes {
            prop_assert!(
                !(c.object == jit_org::ObjectKind::Member && c.kind == jit_org::ChangeKind::Removed),
                "{c:?}"
            );
        }
    }

    /// Planning a remote against itself is empty (applying a plan makes
    /// the store equal to the remote, so the next plan has nothing to do).
    #[test]
    fn plan_of_an_org_against_itself_is_empty(org in arb_org()) {
        let p = plan(&org, &org, &opts());
        prop_assert!(p.is_empty(), "{:?}", p.changes);
    }
}

/// The real thing: a plan applied by `run_sync` to a SQLite store, then a
/// second sync of the same remote, which must write nothing.
#[test]
fn a_plan_applied_to_its_remote_leaves_nothing_to_do() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(config(24));
    runner
        .run(&(arb_org(), arb_org()), |(first, second)| {
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let store = jit_store::open(dir.path().join("org.db").to_str().unwrap())
                    .await
                    .unwrap();
                let corp = CorpRecord {
                    full_name: "corps.P".into(),
                    title: "P".into(),
                    corp_type: "corps.QywxInnerType".into(),
                    provider: Provider::Wecom,
                    corp_id: "ww1".into(),
                };
                let progress = jit_org::NoProgress;
                for remote in [&first, &second] {
                    let source = jit_sync::SnapshotSource {
                        snapshot: remote.clone(),
                        provider: Provider::Wecom,
                    };
                    jit_sync::run_sync(&source, store.as_ref(), &corp, &opts(), &progress)
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                let source = jit_sync::SnapshotSource {
                    snapshot: second.clone(),
                    provider: Provider::Wecom,
                };
                let again = jit_sync::run_sync(&source, store.as_ref(), &corp, &opts(), &progress)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(again.plan.is_empty(), "{:?}", again.plan.changes);
                prop_assert_eq!(again.rows_written, 0);
                Ok(())
            })
        })
        .unwrap();
}

// ------------------------------------------------------------ callback crypto

const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

proptest! {
    #![proptest_config(config(96))]

    /// WeCom callback crypto: what is sealed opens to the same message, and
    /// flipping any single bit of the ciphertext or signature is rejected.
    #[test]
    fn wecom_callbacks_round_trip_and_reject_any_flipped_bit(
        msg in "[ -~一-龥]{0,80}",
        bit in any::<prop::sample::Index>(),
        in_signature in any::<bool>(),
    ) {
        let c = jit_crypto::WecomCrypto::new("tok", AES_KEY, "ww1").unwrap();
        let enc = c.encrypt(&msg);
        prop_assert_eq!(c.decrypt(&enc).unwrap(), msg.clone());
        let sig = c.signature("1700000000", "n0nce", &enc);
        let (mut enc_bytes, mut sig_bytes) = (enc.clone().into_bytes(), sig.clone().into_bytes());
        let target = if in_signature { &mut sig_bytes } else { &mut enc_bytes };
        let i = bit.index(target.len() * 8);
        target[i / 8] ^= 1 << (i % 8);
        let (enc2, sig2) = (String::from_utf8_lossy(&enc_bytes).into_owned(), String::from_utf8_lossy(&sig_bytes).into_owned());
        let accepted = c.signature("1700000000", "n0nce", &enc2) == sig2
            && c.decrypt(&enc2).is_ok_and(|m| m == msg);
        prop_assert!(!accepted, "a flipped bit {i} was accepted");
    }

    /// DingTalk callback crypto: the same two properties (a flipped case
    /// bit of a hex signature letter is the same signature, not a change).
    #[test]
    fn dingtalk_callbacks_round_trip_and_reject_any_flipped_bit(
        msg in "[ -~]{0,80}",
        bit in any::<prop::sample::Index>(),
        in_signature in any::<bool>(),
    ) {
        let c = jit_crypto::DingTalkCrypto::new("tok", AES_KEY, "dingowner").unwrap();
        let sealed = c.seal(&msg, "1700000000", "n0nce");
        prop_assert_eq!(c.open(&sealed).unwrap(), msg.clone());
        let mut tampered = sealed.clone();
        let field = if in_signature { &mut tampered.msg_signature } else { &mut tampered.encrypt };
        let mut bytes = field.clone().into_bytes();
        let i = bit.index(bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        *field = String::from_utf8_lossy(&bytes).into_owned();
        // Hex signatures compare without case (as the platforms send them):
        // flipping the case bit of a hex letter is the same signature.
        prop_assume!(!in_signature || tampered.msg_signature.to_ascii_lowercase() != sealed.msg_signature);
        let accepted = c.open(&tampered).is_ok_and(|m| m == msg);
        prop_assert!(!accepted, "a flipped bit {i} was accepted");
    }
}

// ------------------------------------------------------------ callback receivers

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

proptest! {
    #![proptest_config(config(96))]

    /// A WeCom callback receiver refuses whatever was not sealed with its
    /// key (any body, signature and nonce), without panicking.
    #[test]
    fn a_wecom_receiver_refuses_any_request_it_did_not_get_sealed(
        body in "\\PC{0,300}",
        sig in "[0-9a-f]{0,40}",
        nonce in "[A-Za-z0-9]{0,16}",
    ) {
        let rx = jit_events::receive::Receiver::wecom("corps.A", "tok", AES_KEY, "ww1").unwrap();
        let now_ms = now_secs() as i64 * 1000;
        let q = jit_events::receive::CallbackQuery {
            msg_signature: Some(sig),
            timestamp: Some(now_secs().to_string()),
            nonce: Some(nonce),
            ..Default::default()
        };
        prop_assert!(rx.wecom_event(&q, &body, now_ms).is_err());
        prop_assert!(rx.dingtalk_push(&q, &body, now_ms).is_err());
    }

    /// A sealed WeCom event with any member id is accepted, and the id is
    /// read back exactly (CDATA, entities and all).
    #[test]
    fn a_sealed_wecom_event_is_read_back_whatever_its_member_id(
        userid in "[^<\\]\u{0}]{1,40}",
    ) {
        let rx = jit_events::receive::Receiver::wecom("corps.A", "tok", AES_KEY, "ww1").unwrap();
        let c = jit_crypto::WecomCrypto::new("tok", AES_KEY, "ww1").unwrap();
        let ts = now_secs().to_string();
        let xml = format!(
            "<xml><ToUserName>{}</ToUserName><CreateTime>{ts}</CreateTime><Event>{}</Event>\
             <ChangeType>{}</ChangeType><UserID>{}</UserID></xml>",
            jit_crypto::cdata("ww1"),
            jit_crypto::cdata("change_contact"),
            jit_crypto::cdata("update_user"),
            jit_crypto::cdata(&userid)
        );
        let env = c.seal_event(&xml, "1", &ts, "n0nce");
        let q = jit_events::receive::CallbackQuery {
            msg_signature: Some(env.msg_signature.clone()),
            timestamp: Some(ts.clone()),
            nonce: Some("n0nce".into()),
            ..Default::default()
        };
        let ev = rx.wecom_event(&q, &env.body, now_secs() as i64 * 1000).unwrap();
        let payload: Value = serde_json::from_str(&ev.payload).unwrap();
        prop_assert_eq!(payload["UserID"].as_str(), Some(userid.as_str()));
        prop_assert_eq!(ev.event_type, "update_user");
    }
}
