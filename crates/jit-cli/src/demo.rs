//! `jit demo`: the whole product on embedded defaults. Starts the simulator
//! in-process with a generated org, loads the example app, syncs its WeCom and
//! DingTalk orgs into the app's embedded SQLite store, syncs again to show
//! that an unchanged org writes nothing, then serves the app (`jit serve`'s
//! API and console on a local port) with the simulator still running until
//! Ctrl-C; `--exit` stops after the syncs instead (for scripts and tests).

use crate::sync::{print_summary, TerminalProgress};
use jit_core::{App, LoadOptions};
use jit_corps::CorpElement;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of `jit demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// The example app (one WeCom and one DingTalk org).
    #[arg(long = "app", default_value = "examples/demo-app")]
    pub app_dir: PathBuf,
    /// Members of the simulated WeCom corp.
    #[arg(long, default_value_t = 3000)]
    pub users: usize,
    /// Departments of the simulated WeCom corp.
    #[arg(long, default_value_t = 150)]
    pub depts: usize,
    /// Members of the simulated DingTalk org.
    #[arg(long, default_value_t = 1200)]
    pub dingtalk_users: usize,
    /// Departments of the simulated DingTalk org (read at DingTalk's real 20 calls/s).
    #[arg(long, default_value_t = 40)]
    pub dingtalk_depts: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Exit after the syncs instead of serving the app until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

pub async fn run(a: DemoArgs) -> Result<(), String> {
    if !a.app_dir.join("app.json").is_file() {
        return Err(format!(
            "the example app is not at {} — run `jit demo` from the repository root, or pass --app",
            a.app_dir.display()
        ));
    }
    let config = jit_sim::SimConfig {
        seed: a.seed,
        depts: a.depts,
        users: a.users,
        dingtalk_depts: Some(a.dingtalk_depts),
        dingtalk_users: Some(a.dingtalk_users),
        ..jit_sim::SimConfig::default()
    };
    let sim = jit_sim::Simulator::start(config)
        .await
        .map_err(|e| format!("cannot start the simulator: {e}"))?;
    let info = sim.info();
    println!(
        "Simulator (WeCom + DingTalk wire formats) at {}",
        info.base_url
    );
    println!(
        "  WeCom corp {} with {} members; DingTalk org {} with {} members (rate limits as the real services)",
        info.wecom.corp_id, a.users, info.dingtalk[0].corp_id, a.dingtalk_users
    );

    // The app's config files use {{NAME}} placeholders: point them at the simulator.
    let mut env: HashMap<String, String> = std::env::vars().collect();
    let d = &info.dingtalk[0];
    for (k, v) in [
        ("WECOM_API_BASE", info.wecom.api_base_url.clone()),
        ("WECOM_CORP_ID", info.wecom.corp_id.clone()),
        ("WECOM_AGENT_ID", info.wecom.agent_id.to_string()),
        ("WECOM_SECRET", info.wecom.secret.clone()),
        ("DINGTALK_API_BASE", d.api_base_url.clone()),
        ("DINGTALK_OAPI_BASE", d.oapi_base_url.clone()),
        ("DINGTALK_CORP_ID", d.corp_id.clone()),
        ("DINGTALK_AGENT_ID", d.agent_id.to_string()),
        ("DINGTALK_APP_KEY", d.app_key.clone()),
        ("DINGTALK_APP_SECRET", d.app_secret.clone()),
        // The platforms' login pages are the simulator's too.
        ("WECOM_LOGIN_BASE", info.base_url.clone()),
        ("WECOM_SSO_BASE", info.base_url.clone()),
        ("DINGTALK_LOGIN_BASE", info.base_url.clone()),
        // The callbacks' keys: fresh for each demo run.
        ("WECOM_EVENTS_TOKEN", jit_crypto::random_nonce(16)),
        ("WECOM_EVENTS_AES_KEY", jit_crypto::random_nonce(43)),
        ("DINGTALK_EVENTS_TOKEN", jit_crypto::random_nonce(16)),
        ("DINGTALK_EVENTS_AES_KEY", jit_crypto::random_nonce(43)),
    ] {
        env.insert(k.to_string(), v);
    }
    let app = App::load(
        &a.app_dir,
        LoadOptions {
            registry: crate::registry(),
            env: Some(env.clone()),
            skip_startup: false,
        },
    )
    .map_err(|e| e.to_string())?;
    let diags = app.diagnostics();
    if diags.has_errors() {
        for d in diags.iter() {
            eprintln!("{d}");
        }
        return Err("the example app has errors".into());
    }
    let orgs: Vec<String> = app
        .find_elements(".corps.QywxInnerType, .corps.DDInnerType")
        .iter()
        .map(|d| d.full_name.clone())
        .collect();
    println!();
    for name in &orgs {
        let handle = app.get_element(name).map_err(|e| e.to_string())?;
        let corp = handle
            .downcast_ref::<CorpElement>()
            .ok_or_else(|| format!("{name} is not a built-in org element"))?;
        println!("Syncing {name} (initCorp: syncCorp + bulkRegister) ...");
        let progress = TerminalProgress::new(corp.client().ok());
        let result = corp.init_corp(&corp.sync_options(), &progress).await;
        progress.finish();
        let (report, conflicts) = result.map_err(|e| e.to_string())?;
        print_summary(corp, &report);
        println!("  identity conflicts  {}", conflicts.len());
        let again = corp
            .sync_corp(&corp.sync_options(), &jit_apiclient::NoProgress)
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "  second sync         {} changes, {} rows written (an unchanged org writes nothing)",
            again.changes.len(),
            again.rows_written
        );
        println!();
    }
    for (login, org) in [
        ("auths.AcmeWecomLogin", jit_sim::OrgRef::Wecom),
        ("auths.AcmeDingTalkLogin", jit_sim::OrgRef::Dingtalk(0)),
    ] {
        demo_login(&app, &sim, login, org).await?;
    }
    println!();
    let store = match orgs.first() {
        Some(n) => {
            let h = app.get_element(n).map_err(|e| e.to_string())?;
            let corp = h.downcast_ref::<CorpElement>().expect("checked above");
            corp.store().await.map_err(|e| e.to_string())?.location()
        }
        None => "-".into(),
    };
    let app_arg = shell_path(&a.app_dir);
    serve(&a.app_dir, &env, &sim, &orgs, a.exit).await?;
    sim.shutdown().await;
    if !a.exit {
        return Ok(());
    }
    println!("Done. The orgs are in {store}. Look at them with:");
    println!("  jit ls {app_arg}");
    println!("  jit show corps.AcmeWecom --app {app_arg}");
    println!("  jit call corps.AcmeWecom getRootDept --app {app_arg}");
    println!("  jit call corps.AcmeDingTalk getAdmin --app {app_arg}");
    println!("  jit call corps.AcmeWecom getLocalCorpData --app {app_arg} | less");
    println!("(through cargo: cargo run -q -p jit-cli -- <command>)");
    Ok(())
}

/// Serves the app as `jit serve` does, on a free local port; points the
/// simulator's callbacks at it, changes a few people upstream and shows the
/// store following through the events; then keeps serving until Ctrl-C
/// (or stops, with `--exit`).
async fn serve(
    app_dir: &Path,
    env: &HashMap<String, String>,
    sim: &jit_sim::SimHandle,
    orgs: &[String],
    exit: bool,
) -> Result<(), String> {
    // `jit serve` reads the app's {{NAME}} placeholders from the process
    // environment: point them at the simulator there too.
    for (k, v) in env {
        if k.starts_with("WECOM_") || k.starts_with("DINGTALK_") {
            std::env::set_var(k, v);
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("cannot find a free local port: {e}"))?
        .port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let host = tokio::spawn(jit_serve::run(
        jit_serve::ServeOptions {
            app_dir: app_dir.to_path_buf(),
            listen: format!("127.0.0.1:{port}"),
            grace: std::time::Duration::from_secs(5),
            log_format: jit_serve::LogFormat::Text,
        },
        async move {
            tokio::select! {
                _ = stop_rx => {}
                _ = jit_serve::stop_signal() => {}
            }
        },
    ));
    let t0 = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if host.is_finished() || t0.elapsed() > Duration::from_secs(30) {
            let why = match host.await {
                Ok(Err(e)) => e.to_string(),
                _ => "it did not start listening".into(),
            };
            return Err(format!("jit serve did not start: {why}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!();
    println!("Events: the simulator now sends its change callbacks to jit serve.");
    let store = jit_store::open_for_app(app_dir, None)
        .await
        .map_err(|e| e.to_string())?;
    for name in orgs {
        follow_upstream_change(sim, store.as_ref(), name, env, port).await?;
    }
    println!();
    println!("Serving the app at http://127.0.0.1:{port}/ (console at /, API under /api/v1).");
    // The console signs people in through the app's login elements; the
    // simulator's login page lists the org's admins, who may sync.
    if let Some(admin) = sim
        .wecom_truth()
        .admins
        .and_then(|a| a.first().map(|a| a.member_id.clone()))
    {
        println!(
            "Sign in to the console with the WeCom login and pick an admin on the simulated login page (e.g. {admin}): admins may sync, dry-run and apply refused runs."
        );
    }
    if exit {
        let _ = stop_tx.send(());
    } else {
        println!("Ctrl-C stops.");
    }
    match host.await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("jit serve stopped: {e}")),
    }
}

/// Renames one member of `org` upstream and waits for the store to show it.
async fn follow_upstream_change(
    sim: &jit_sim::SimHandle,
    store: &dyn jit_store::CorpStore,
    org: &str,
    env: &HashMap<String, String>,
    port: u16,
) -> Result<(), String> {
    let (sim_org, platform, prefix) = if org.contains("Wecom") {
        (jit_sim::OrgRef::Wecom, "wecom", "WECOM")
    } else {
        (jit_sim::OrgRef::Dingtalk(0), "dingtalk", "DINGTALK")
    };
    let var = |k: &str| {
        env.get(&format!("{prefix}_{k}"))
            .cloned()
            .unwrap_or_default()
    };
    sim.set_callback(
        sim_org,
        Some(jit_sim::CallbackConfig {
            url: format!("http://127.0.0.1:{port}/callbacks/{platform}/{org}"),
            token: var("EVENTS_TOKEN"),
            aes_key: var("EVENTS_AES_KEY"),
        }),
    )
    .map_err(|e| e.to_string())?;
    let before = store.load_snapshot(org).await.map_err(|e| e.to_string())?;
    let Some(member) = before
        .members
        .values()
        .find(|m| m.status == jit_org::MemberStatus::Active)
    else {
        return Ok(());
    };
    let new_name = format!("{} (renamed upstream)", member.name);
    let t0 = Instant::now();
    sim.mutate(
        sim_org,
        jit_sim::Mutation::rename_member(&member.member_id, &new_name),
    )
    .map_err(|e| e.to_string())?;
    while t0.elapsed() < Duration::from_secs(10) {
        let now = store.load_snapshot(org).await.map_err(|e| e.to_string())?;
        if now.members.get(&member.member_id).map(|m| m.name.as_str()) == Some(new_name.as_str()) {
            println!(
                "  {org}: {} renamed upstream -> in the store {} ms later (an event run)",
                member.member_id,
                t0.elapsed().as_millis()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!(
        "{org}: the upstream change did not reach the store within 10 s"
    ))
}

/// Logs a synced member in through a login element: the simulated platform
/// issues a login code for them (as its login page would), the element
/// exchanges it for their local user and a session, and verifies it.
async fn demo_login(
    app: &App,
    sim: &jit_sim::SimHandle,
    login: &str,
    org: jit_sim::OrgRef,
) -> Result<(), String> {
    let Ok(handle) = app.get_element(login) else {
        return Ok(()); // an app without this login element
    };
    let element = handle
        .downcast_ref::<jit_login::LoginElement>()
        .ok_or_else(|| format!("{login} is not a built-in login element"))?;
    let corp = app
        .get_element(&element.config().corp)
        .map_err(|e| e.to_string())?;
    let data = corp
        .call("getLocalCorpData", serde_json::json!({}))
        .await
        .map_err(|e| e.to_string())?;
    let Some(member) = data["userList"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|u| u["status"] == "active")
        .and_then(|u| u["memberId"].as_str())
    else {
        return Ok(());
    };
    let code = sim
        .issue_login_code(org, member)
        .map_err(|e| e.to_string())?;
    let outcome = element
        .login(&code, None)
        .await
        .map_err(|e| e.to_string())?;
    let session = element
        .verify(&outcome.token)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "Logged in through {login}: member {} of {} is local user {} (session verified, valid for {} s)",
        session.member_id,
        session.corp,
        session.user_id,
        (session.expires_at - session.issued_at) / 1000
    );
    Ok(())
}

fn shell_path(p: &Path) -> String {
    p.display().to_string()
}
