//! Measures start-up and a full API walk at a given size.
//!
//! `cargo run --release -p jit-sim --example sim_scale -- 100000 5000`
//! (members, departments of the WeCom corp; DingTalk gets a fifth of both).

use jit_sim::{SimConfig, Simulator};
use std::time::Instant;

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let users = args.first().copied().unwrap_or(5000);
    let depts = args.get(1).copied().unwrap_or(200);
    let t0 = Instant::now();
    let sim = Simulator::start(SimConfig {
        seed: 7,
        depts,
        users,
        dingtalk_depts: Some((depts / 5).max(1)),
        dingtalk_users: Some((users / 5).max(1)),
        wecom_rate_per_minute: 0,
        ..SimConfig::default()
    })
    .await
    .expect("starts");
    println!(
        "start: {:?} ({users} members, {depts} departments)",
        t0.elapsed()
    );
    let t1 = Instant::now();
    let truth = sim.wecom_truth();
    println!(
        "wecom truth: {:?} ({} members)",
        t1.elapsed(),
        truth.members.len()
    );
    let c = reqwest::Client::new();
    let i = sim.info().wecom;
    let tok: serde_json::Value = c
        .get(format!(
            "{}gettoken?corpid={}&corpsecret={}",
            i.api_base_url, i.corp_id, i.secret
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t = tok["access_token"].as_str().unwrap().to_string();
    let t2 = Instant::now();
    let mut bytes = 0usize;
    let ids: Vec<i64> = truth.depts.keys().copied().collect();
    let mut tasks = Vec::new();
    for chunk in ids.chunks(ids.len().div_ceil(8)) {
        let (c, base, t, chunk) = (c.clone(), i.api_base_url.clone(), t.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut out: Vec<usize> = Vec::new();
            for d in chunk {
                let body = c
                    .get(format!(
                        "{base}user/list?access_token={t}&department_id={d}"
                    ))
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                out.push(body.len());
            }
            out
        }));
    }
    for t in tasks {
        bytes += t.await.unwrap().iter().sum::<usize>();
    }
    println!(
        "walk user/list over {} departments with 8 workers: {:?}, {} bytes read (not parsed)",
        ids.len(),
        t2.elapsed(),
        bytes
    );
    sim.shutdown().await;
}
