//! Task elements under `jit serve`: one host shows its tasks and firings
//! through the API and `jit tasks`; several replicas (the real binary) on
//! one PostgreSQL database run every firing once, never sync one org twice
//! at a time, and re-run what a killed replica was running once its lease
//! expires. The simulator runs in this test process; the app is in a temp
//! folder; the database is a fresh one per test (`JIT_TEST_PG_URL`).

use crate::support::{self, PgDatabase};

use jit_sim::{SimConfig, SimHandle, Simulator};
use jit_store::{CorpStore, Firing, FiringState};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Fixture;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One `jit serve` process; its output is collected for failure messages.
struct Replica {
    child: Child,
    pid: u32,
    output: Arc<Mutex<String>>,
}

fn drain(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
}

impl Replica {
    /// Starts `jit serve APP` on a free port with `DATABASE_URL` and waits
    /// for its ready line.
    fn start(app: &Path, database_url: &str) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jit"))
            .arg("serve")
            .arg(app)
            .args(["--listen", "127.0.0.1:0", "--grace", "10"])
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start jit serve");
        let output = Arc::new(Mutex::new(String::new()));
        drain(child.stderr.take().unwrap(), output.clone());
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            let _ = child.kill();
            std::thread::sleep(Duration::from_millis(200));
            panic!("no ready line ({e}): {line:?}\n{}", output.lock().unwrap())
        });
        assert_eq!(ready["tasks"], 10, "{ready}");
        drain(out, output.clone());
        Replica {
            pid: child.id(),
            child,
            output,
        }
    }

    /// Whether `holder` (a firing's) is this process.
    fn holds(&self, holder: &str) -> bool {
        holder.contains(&format!("/{}/", self.pid))
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

/// A GET on `base` (`http://127.0.0.1:PORT`): (status, JSON body).
fn get(base: &str, path: &str) -> (u16, Value) {
    use std::io::Write;
    let addr = base.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn one_host_runs_a_task_and_shows_its_firings_through_the_api_and_jit_tasks() {
    let f = Fixture::new();
    f.json("app.json", json!({"appId": "t.tasks"}));
    f.json(
        "tasks/Tick/e.json",
        json!({"title": "Tick", "type": "tasks.NormalType"}),
    );
    // Calls another task's getTaskInfo: no org, no network needed.
    f.json(
        "tasks/Tick/Tick.json",
        json!({"timerCfg": {"repeat": "1s"},
               "call": {"element": "tasks.Nightly", "method": "getTaskInfo", "args": {"count": 2}}}),
    );
    f.json(
        "tasks/Nightly/e.json",
        json!({"title": "Nightly", "type": "tasks.NormalType"}),
    );
    f.json(
        "tasks/Nightly/Nightly.json",
        json!({"timerCfg": {"cron": "0 2 * * *", "timeZone": "Asia/Shanghai"}, "enabled": false,
               "call": {"element": "tasks.Tick", "method": "getTaskInfo"}}),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_jit"))
        .arg("serve")
        .arg(f.path())
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        ready["tasks"], 1,
        "the disabled task is not scheduled: {ready}"
    );
    let base = ready["listen"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(2_500));

    let (status, list) = get(&base, "/api/v1/tasks");
    assert_eq!(status, 200, "{list}");
    let tick = &list["tasks"][1];
    assert_eq!(tick["fullName"], "tasks.Tick");
    assert_eq!(tick["schedule"], "every 1s");
    assert_eq!(tick["lastFiring"]["state"], "succeeded", "{list}");
    assert_eq!(
        list["tasks"][0]["schedule"],
        "cron 0 2 * * * (Asia/Shanghai)"
    );
    assert_eq!(list["tasks"][0]["enabled"], false);

    let (status, page) = get(&base, "/api/v1/tasks/tasks.Tick/firings?limit=1");
    assert_eq!(status, 200);
    let firing = &page["firings"][0];
    assert_eq!(firing["attempt"], 1);
    assert_eq!(firing["result"]["fullName"], "tasks.Nightly");
    assert_eq!(firing["scheduledAt"].as_i64().unwrap() % 1_000, 0);
    assert!(page["nextBefore"].is_i64(), "at least two firings: {page}");
    let (status, err) = get(&base, "/api/v1/tasks/corps.Nope/firings");
    assert_eq!(
        (status, &err["error"]["code"]),
        (404, &json!("task_not_found"))
    );
    let (_, doc) = get(&base, "/api/v1/openapi.json");
    for p in ["/api/v1/tasks", "/api/v1/tasks/{fullName}/firings"] {
        assert!(
            doc["paths"].get(p).is_some(),
            "{p} is not in the OpenAPI document"
        );
    }

    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(child.wait().unwrap().success());

    // `jit tasks` reads the same records from the store.
    let out = Command::new(env!("CARGO_BIN_EXE_jit"))
        .args(["tasks", f.path().to_str().unwrap()])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("tasks.Tick "))
        .expect(&text);
    assert!(
        row.contains("every 1s")
            && row.contains("tasks.Nightly.getTaskInfo")
            && row.contains("succeeded"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("tasks.Nightly ") && l.contains("disabled")),
        "{text}"
    );
}

/// An app with ten DingTalk orgs (`corps.Org0` … `corps.Org9`, one
/// simulated org each) and a task per org syncing it every 2 s with a 3 s
/// lease.
fn ten_org_app(sim: &SimHandle) -> Fixture {
    let info = sim.info();
    let f = Fixture::new();
    f.json("app.json", json!({"appId": "t.replicas"}));
    for (i, d) in info.dingtalk.iter().enumerate().take(10) {
        f.json(
            &format!("corps/Org{i}/e.json"),
            json!({"title": format!("Org {i}"), "type": "corps.DDInnerType"}),
        );
        f.json(
            &format!("corps/Org{i}/Org{i}.json"),
            json!({"authConfig": {"corpId": d.corp_id, "agentId": d.agent_id.to_string(),
                   "appKey": d.app_key, "appSecret": d.app_secret, "apiBase": d.api_base_url},
                   "sync": {"lockWaitSecs": 5}}),
        );
        f.json(
            &format!("tasks/SyncOrg{i}/e.json"),
            json!({"title": format!("Sync org {i}"), "type": "tasks.NormalType"}),
        );
        f.json(
            &format!("tasks/SyncOrg{i}/SyncOrg{i}.json"),
            json!({"timerCfg": {"repeat": "2s"}, "lease": "3s", "catchUp": false,
                   "call": {"element": format!("corps.Org{i}"), "method": "syncCorp"}}),
        );
    }
    f
}

/// Runs store calls on one runtime for the whole test: the store's
/// connection lives on the runtime that opened it.
fn block_on<T>(fut: impl std::future::Future<Output = T>) -> T {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
    .block_on(fut)
}

fn all_firings(store: &dyn CorpStore) -> BTreeMap<String, Vec<Firing>> {
    block_on(async {
        let mut out = BTreeMap::new();
        for i in 0..10 {
            let task = format!("tasks.SyncOrg{i}");
            let mut f = store.list_firings(&task, 1000, None).await.unwrap();
            f.reverse();
            out.insert(task, f);
        }
        out
    })
}

#[test]
fn three_replicas_on_one_postgresql_run_every_firing_once_and_recover_a_killed_ones() {
    let pg = PgDatabase::create("tasks");
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = sim_rt
        .block_on(Simulator::start(SimConfig {
            seed: 11,
            depts: 4,
            users: 12,
            dingtalk_orgs: 10,
            dingtalk_shared_fraction: 0.0,
            // Each sync takes a few hundred milliseconds: long enough to
            // be caught mid-run by the SIGKILL below.
            latency_ms: 40,
            dingtalk_rate_per_second: 0,
            ..SimConfig::default()
        }))
        .expect("simulator starts");
    let app = ten_org_app(&sim);
    let url = pg.url();
    let store = block_on(jit_store::open(&url)).expect("store opens");

    let mut replicas: Vec<Replica> = (0..3).map(|_| Replica::start(app.path(), &url)).collect();
    let started = now_ms();
    // 20 s of firing; replica 0 is killed while it runs a firing, ~8 s in.
    let deadline = Instant::now() + Duration::from_secs(20);
    std::thread::sleep(Duration::from_secs(8));
    let victim_firing = loop {
        let running = block_on(store.expired_firings(i64::MAX)).unwrap();
        if let Some(f) = running.into_iter().find(|f| replicas[0].holds(&f.holder)) {
            break f;
        }
        assert!(Instant::now() < deadline, "replica 0 never ran a firing");
        std::thread::sleep(Duration::from_millis(10));
    };
    replicas[0].signal("-KILL");
    let killed_at = now_ms();
    let _ = replicas[0].child.wait();
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    let stopped = now_ms();
    for r in &replicas[1..] {
        r.signal("-TERM");
    }
    for r in &mut replicas[1..] {
        let status = r.child.wait().unwrap();
        assert!(status.success(), "{}", r.output.lock().unwrap());
    }

    let firings = all_firings(store.as_ref());
    let lease_ms = 3_000;
    let (mut expected, mut ran, mut skipped, mut reruns) = (0, 0, 0, 0);
    let mut run_ids: HashMap<String, HashSet<i64>> = HashMap::new();
    for (task, list) in &firings {
        // Every slot from the first one after start to the last before the
        // stop has exactly one record (the table's key allows no second).
        let first = (started / 2_000 + 1) * 2_000;
        let last = (stopped - 500) / 2_000 * 2_000;
        let slots: Vec<i64> = list.iter().map(|f| f.scheduled_at).collect();
        let wanted: Vec<i64> = (first..=last).step_by(2_000).collect();
        for s in &wanted {
            assert!(
                slots.contains(s),
                "{task}: slot {s} has no firing: {list:#?}"
            );
        }
        expected += wanted.len();
        for f in list {
            match f.state {
                FiringState::Succeeded => {
                    ran += 1;
                    let run_id = f.result.as_ref().unwrap()["runId"].as_i64().unwrap();
                    let org = f.task.replace("tasks.Sync", "corps.");
                    assert!(
                        run_ids.entry(org).or_default().insert(run_id),
                        "{task}: two firings report run {run_id}"
                    );
                }
                FiringState::Skipped => skipped += 1,
                other => panic!("{task}: a firing ended {other:?}: {f:#?}"),
            }
            if f.attempt > 1 {
                reruns += 1;
                assert!(f.note.as_deref().unwrap().contains("expired"), "{f:#?}");
                assert!(!replicas[0].holds(&f.holder), "{f:#?}");
            }
        }
    }
    // The firing the killed replica held was re-run by a survivor within
    // the lease (plus the scheduler's half-second look for expired leases
    // and slack for a loaded machine).
    let victim = firings[&victim_firing.task]
        .iter()
        .find(|f| f.firing_id == victim_firing.firing_id)
        .unwrap();
    assert_eq!(victim.state, FiringState::Succeeded, "{victim:#?}");
    assert_eq!(victim.attempt, 2, "{victim:#?}");
    let recovered_after = victim.started_at - killed_at;
    assert!(
        recovered_after <= lease_ms + 2_000,
        "re-run {recovered_after} ms after the kill: {victim:#?}"
    );

    // No two syncs of one org overlapped (the run records' own times).
    let mut runs_total = 0;
    for i in 0..10 {
        let org = format!("corps.Org{i}");
        let mut runs = block_on(store.list_runs(&org, 1000)).unwrap();
        runs.sort_by_key(|r| r.started_at);
        runs_total += runs.len();
        for w in runs.windows(2) {
            assert!(
                w[0].finished_at <= w[1].started_at,
                "{org}: runs {} and {} overlap: {runs:#?}",
                w[0].run_id,
                w[1].run_id
            );
        }
        // What the syncs wrote answers getRootDept's one-query read.
        let (root, path) = block_on(store.root_dept(&org))
            .unwrap()
            .expect("a root department");
        assert_eq!(
            (root.parent_id, path),
            (None, format!("/{}/", root.dept_id))
        );
        // Every run a firing reported is one of the org's recorded runs.
        let recorded: HashSet<i64> = runs.iter().map(|r| r.run_id).collect();
        for id in run_ids.get(&org).into_iter().flatten() {
            assert!(recorded.contains(id), "{org}: run {id} is not recorded");
        }
    }
    println!(
        "slots expected {expected}, firings ran {ran} (re-runs after a lease expiry {reruns}), \
         skipped {skipped}, sync runs recorded {runs_total}; killed replica's firing {} of {} \
         re-run {recovered_after} ms after SIGKILL",
        victim.scheduled_at, victim.task
    );
    drop(sim);
}
