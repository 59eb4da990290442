//! `jit sim`: the command-line front of the simulator.
//!
//! The `jit` binary embeds [`SimArgs`] as a subcommand and calls [`run`].

use crate::{CallbackConfig, FaultKind, SimConfig, SimError, Simulator};

/// Options of `jit sim`. `Debug` leaves out the callback tokens and keys.
#[derive(Clone, clap::Args)]
pub struct SimArgs {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Seed of the org generator and of fault injection.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Departments of the WeCom corp (and of each DingTalk org unless --dingtalk-depts).
    #[arg(long, default_value_t = 50)]
    pub depts: usize,
    /// Members of the WeCom corp (and of each DingTalk org unless --dingtalk-users).
    #[arg(long, default_value_t = 500)]
    pub users: usize,
    /// Departments per DingTalk org.
    #[arg(long)]
    pub dingtalk_depts: Option<usize>,
    /// Members per DingTalk org.
    #[arg(long)]
    pub dingtalk_users: Option<usize>,
    /// Number of DingTalk orgs (they share some people by unionId).
    #[arg(long, default_value_t = 2)]
    pub dingtalk_orgs: usize,
    /// Deepest department level below the root.
    #[arg(long, default_value_t = 5)]
    pub max_depth: usize,
    /// Children per department (random 1..=N).
    #[arg(long, default_value_t = 8)]
    pub fan_out: usize,
    /// Latency added to every API answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// WeCom calls per API per minute (0 = unlimited).
    #[arg(long, default_value_t = 10_000)]
    pub wecom_rate_per_minute: u32,
    /// WeCom calls per API per hour (0 = unlimited).
    #[arg(long, default_value_t = 150_000)]
    pub wecom_rate_per_hour: u32,
    /// DingTalk calls per app per API per second (0 = unlimited).
    #[arg(long, default_value_t = 20)]
    pub dingtalk_rate_per_second: u32,
    /// Probability (0..1) that an API call gets a fault.
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Fault kinds to draw from: busy,http5xx,drop,stall,malformed (also
    /// revoke_token, permission).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "busy,http5xx,drop,stall,malformed"
    )]
    pub fault_kinds: Vec<FaultKind>,
    /// How long a stall fault holds the answer, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub stall_ms: u64,
    /// Access-token lifetime in seconds.
    #[arg(long, default_value_t = 7200)]
    pub token_lifetime_secs: u64,
    /// Simulate a WeCom app created after 2022-06-20 (no mobile/email/avatar).
    #[arg(long)]
    pub wecom_withhold_private_fields: bool,
    /// Let the normal WeCom app token call user/list_id (real WeCom refuses it).
    #[arg(long)]
    pub wecom_list_id_with_app_token: bool,
    /// Refuse department/list, department/get, user/get, user/list to the
    /// contact-sync token (WeCom's rule for IPs added after 2022-08-15).
    #[arg(long)]
    pub wecom_contact_token_restricted: bool,
    /// WeCom change-event callback URL.
    #[arg(long)]
    pub wecom_callback_url: Option<String>,
    /// WeCom callback Token.
    #[arg(long, env = "JIT_SIM_WECOM_CALLBACK_TOKEN", hide_env_values = true)]
    pub wecom_callback_token: Option<String>,
    /// WeCom callback EncodingAESKey (43 characters).
    #[arg(long, env = "JIT_SIM_WECOM_CALLBACK_AES_KEY", hide_env_values = true)]
    pub wecom_callback_aes_key: Option<String>,
    /// DingTalk HTTP-push URL (used for every DingTalk org; ownerKey = its AppKey).
    #[arg(long)]
    pub dingtalk_callback_url: Option<String>,
    /// DingTalk push token.
    #[arg(long, env = "JIT_SIM_DINGTALK_CALLBACK_TOKEN", hide_env_values = true)]
    pub dingtalk_callback_token: Option<String>,
    /// DingTalk push aes_key (43 characters).
    #[arg(
        long,
        env = "JIT_SIM_DINGTALK_CALLBACK_AES_KEY",
        hide_env_values = true
    )]
    pub dingtalk_callback_aes_key: Option<String>,
}

impl std::fmt::Debug for SimArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimArgs")
            .field("port", &self.port)
            .field("seed", &self.seed)
            .field("depts", &self.depts)
            .field("users", &self.users)
            .field("dingtalk_orgs", &self.dingtalk_orgs)
            .field("latency_ms", &self.latency_ms)
            .field("fault_rate", &self.fault_rate)
            .field("wecom_callback_url", &self.wecom_callback_url)
            .field("dingtalk_callback_url", &self.dingtalk_callback_url)
            .finish_non_exhaustive()
    }
}

fn callback(
    url: &Option<String>,
    token: &Option<String>,
    key: &Option<String>,
    what: &str,
) -> Result<Option<CallbackConfig>, SimError> {
    match (url, token, key) {
        (None, _, _) => Ok(None),
        (Some(url), Some(token), Some(aes_key)) => Ok(Some(CallbackConfig {
            url: url.clone(),
            token: token.clone(),
            aes_key: aes_key.clone(),
        })),
        _ => Err(SimError::Config(format!(
            "--{what}-callback-url needs --{what}-callback-token and --{what}-callback-aes-key"
        ))),
    }
}

impl SimArgs {
    /// The configuration these options describe.
    pub fn to_config(&self) -> Result<SimConfig, SimError> {
        let ding = callback(
            &self.dingtalk_callback_url,
            &self.dingtalk_callback_token,
            &self.dingtalk_callback_aes_key,
            "dingtalk",
        )?;
        Ok(SimConfig {
            port: self.port,
            seed: self.seed,
            depts: self.depts,
            users: self.users,
            dingtalk_depts: self.dingtalk_depts,
            dingtalk_users: self.dingtalk_users,
            max_depth: self.max_depth,
            fan_out: self.fan_out,
            dingtalk_orgs: self.dingtalk_orgs,
            latency_ms: self.latency_ms,
            wecom_rate_per_minute: self.wecom_rate_per_minute,
            wecom_rate_per_hour: self.wecom_rate_per_hour,
            dingtalk_rate_per_second: self.dingtalk_rate_per_second,
            fault_rate: self.fault_rate,
            fault_kinds: self.fault_kinds.clone(),
            stall_ms: self.stall_ms,
            token_lifetime_secs: self.token_lifetime_secs,
            wecom_withhold_private_fields: self.wecom_withhold_private_fields,
            wecom_list_id_requires_contact_secret: !self.wecom_list_id_with_app_token,
            wecom_contact_token_restricted: self.wecom_contact_token_restricted,
            wecom_callback: callback(
                &self.wecom_callback_url,
                &self.wecom_callback_token,
                &self.wecom_callback_aes_key,
                "wecom",
            )?,
            dingtalk_callbacks: (0..self.dingtalk_orgs).map(|_| ding.clone()).collect(),
            ..SimConfig::default()
        })
    }
}

/// Starts the simulator, prints one JSON line with its base URLs and app
/// credentials on stdout, and serves until Ctrl-C.
pub async fn run(args: SimArgs) -> Result<(), SimError> {
    let sim = Simulator::start(args.to_config()?).await?;
    let line = serde_json::to_string(&sim.info()).expect("SimInfo serializes");
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    tokio::signal::ctrl_c()
        .await
        .map_err(|source| SimError::Io {
            context: "waiting for Ctrl-C".into(),
            source,
        })?;
    sim.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn options_map_onto_the_config() {
        let cmd = Cmd::parse_from([
            "sim",
            "--seed",
            "9",
            "--depts",
            "200",
            "--users",
            "5000",
            "--latency-ms",
            "5",
            "--fault-rate",
            "0.1",
            "--fault-kinds",
            "busy,drop",
            "--dingtalk-rate-per-second",
            "3",
            "--token-lifetime-secs",
            "60",
            "--wecom-withhold-private-fields",
        ]);
        let c = cmd.sim.to_config().unwrap();
        assert_eq!((c.seed, c.depts, c.users, c.latency_ms), (9, 200, 5000, 5));
        assert_eq!(c.fault_kinds, vec![FaultKind::Busy, FaultKind::Drop]);
        assert_eq!((c.dingtalk_rate_per_second, c.token_lifetime_secs), (3, 60));
        assert!(c.wecom_withhold_private_fields && c.wecom_list_id_requires_contact_secret);
        assert_eq!(c.wecom_rate_per_minute, 10_000, "real limits by default");
    }

    #[test]
    fn debug_output_leaves_out_callback_secrets() {
        let cmd = Cmd::parse_from([
            "sim",
            "--wecom-callback-url",
            "http://127.0.0.1:1/cb",
            "--wecom-callback-token",
            "tok3n",
            "--wecom-callback-aes-key",
            "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        ]);
        let shown = format!("{:?} {:?}", cmd.sim, cmd.sim.to_config().unwrap());
        assert!(
            !shown.contains("tok3n") && !shown.contains("jWmYm7"),
            "{shown}"
        );
    }

    #[test]
    fn a_callback_url_without_token_and_key_is_refused() {
        let cmd = Cmd::parse_from(["sim", "--wecom-callback-url", "http://127.0.0.1:1/cb"]);
        assert!(matches!(cmd.sim.to_config(), Err(SimError::Config(_))));
    }
}
