//! `jit`: check, inspect and call the elements of an app; sync organizations;
//! run the WeCom / DingTalk simulator and the demo.

mod demo;
mod sync;
mod tasks;

use clap::{Parser, Subcommand, ValueEnum};
use jit_core::{mask_secrets, App, DiagCode, Diagnostic, LoadOptions, Severity, TypeRegistry};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "jit",
    version,
    about = "Declarative app elements with enterprise-organization sync"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

// `Sim` carries every simulator option; the enum is parsed once per process.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Validate every e.json and config file of an app; exit 1 on errors.
    Check {
        /// The app folder.
        #[arg(default_value = ".")]
        app_dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Open no plugin library (their native initialisers run when they
        /// are opened); instances of plugin Types are then reported as unchecked.
        #[arg(long)]
        no_plugins: bool,
    },
    /// List the app's elements: fullName, kind, type, meta, title, implementation.
    Ls {
        /// The app folder.
        #[arg(default_value = ".")]
        app_dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Open no plugin library (their native initialisers run when they are opened).
        #[arg(long)]
        no_plugins: bool,
    },
    /// Show one element: its resolved chain, config (secrets masked) and methods.
    Show {
        /// The element's fullName, e.g. corps.MyCorp.
        full_name: String,
        /// The app folder.
        #[arg(long = "app", default_value = ".")]
        app_dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Call a method (or read a property) of an element; prints its JSON result.
    Call {
        /// The element's fullName.
        full_name: String,
        /// The method (or property) name.
        method: String,
        /// The app folder.
        #[arg(long = "app", default_value = ".")]
        app_dir: PathBuf,
        /// Arguments: a JSON object (by name), array (by position) or null.
        #[arg(long, default_value = "null")]
        args: String,
    },
    /// Sync an organization element from its platform into the org store.
    Sync {
        /// The org element's fullName (an instance of corps.QywxInnerType or corps.DDInnerType).
        full_name: String,
        /// The app folder.
        #[arg(long = "app", default_value = ".")]
        app_dir: PathBuf,
        /// Compute and record the plan; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply even when the safety checks refuse (e.g. more than the offline threshold).
        #[arg(long)]
        force: bool,
        /// Wait up to SECS for another sync of the same org (any process or
        /// host) to finish, instead of the config's `sync.lockWaitSecs`.
        #[arg(long, value_name = "SECS", value_parser = parse_wait)]
        wait: Option<f64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// List the app's task elements: schedule, call, next and last firing (from the store).
    Tasks {
        /// The app folder.
        #[arg(default_value = ".")]
        app_dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Serve the app over HTTP until SIGTERM/SIGINT (prints one JSON line when ready).
    Serve {
        /// The app folder.
        #[arg(default_value = ".")]
        app_dir: PathBuf,
        /// Address to listen on (`127.0.0.1:0` picks a free port). Without
        /// `settings.apiTokens` only loopback addresses are allowed.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Seconds running calls and syncs get to finish after SIGTERM/SIGINT.
        #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = parse_wait)]
        grace: f64,
        /// Log line format (stderr; filter with RUST_LOG).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        log_format: Format,
    },
    /// Run the WeCom + DingTalk simulator until stopped (prints one JSON line with URLs and credentials).
    Sim(jit_sim::cli::SimArgs),
    /// Demo on embedded defaults: simulator, example app, sync into SQLite, no setup.
    Demo(demo::DemoArgs),
}

/// The built-in Types, plus plugins found in the app (which may extend them).
pub(crate) fn registry() -> TypeRegistry {
    registry_with(true).0
}

/// The built-in Types and, when `plugins`, the provider that opens the
/// app's plugin libraries (kept, so a command can say which it opened).
fn registry_with(plugins: bool) -> (TypeRegistry, Option<Arc<jit_plugin_host::PluginProvider>>) {
    let mut registry = TypeRegistry::new();
    jit_corps::register_builtins(&mut registry);
    jit_tasks::register_builtins(&mut registry);
    jit_login::register_builtins(&mut registry);
    if !plugins {
        return (registry, None);
    }
    let provider = Arc::new(
        jit_plugin_host::PluginProvider::new(registry.clone())
            .with_corp_services(Arc::new(jit_corps::EngineCorpServices::new())),
    );
    registry.add_provider(provider.clone());
    (registry, Some(provider))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn load(app_dir: &Path, skip_startup: bool) -> Result<App, String> {
    load_with(app_dir, skip_startup, true).map(|(app, _)| app)
}

/// Loads the app, opening its plugin libraries only when `plugins`; also
/// returns the library files opened (`None` when plugins were off).
fn load_with(
    app_dir: &Path,
    skip_startup: bool,
    plugins: bool,
) -> Result<(App, Option<Vec<PathBuf>>), String> {
    let (registry, provider) = registry_with(plugins);
    let app = App::load(
        app_dir,
        LoadOptions {
            registry,
            skip_startup,
            ..LoadOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    Ok((app, provider.map(|p| p.opened_libraries())))
}

/// Without plugins, an instance of a plugin Type has no implementation:
/// that is not a fault of the app, so it is a warning saying it went unchecked.
fn unchecked_without_plugins(d: &Diagnostic) -> Diagnostic {
    if d.code != DiagCode::NoImplementation {
        return d.clone();
    }
    Diagnostic {
        severity: Severity::Warning,
        message: format!(
            "{} (plugins were not opened: --no-plugins; not checked)",
            d.message
        ),
        ..d.clone()
    }
}

/// The line saying which plugin libraries a command opened.
fn plugins_line(opened: &Option<Vec<PathBuf>>) -> String {
    match opened {
        None => "plugins: none opened (--no-plugins)".to_string(),
        Some(list) if list.is_empty() => "plugins: none found in the app".to_string(),
        Some(list) => format!(
            "plugins: opened {} librar{} (their native initialisers ran): {}",
            list.len(),
            if list.len() == 1 { "y" } else { "ies" },
            list.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn main() -> ExitCode {
    jit_alloc::limit_malloc_arenas();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check {
            app_dir,
            format,
            no_plugins,
        } => check(&app_dir, format, !no_plugins),
        Command::Ls {
            app_dir,
            format,
            no_plugins,
        } => ls(&app_dir, format, !no_plugins),
        Command::Show {
            full_name,
            app_dir,
            format,
        } => show(&app_dir, &full_name, format),
        Command::Call {
            full_name,
            method,
            app_dir,
            args,
        } => call(&app_dir, &full_name, &method, &args),
        Command::Sync {
            full_name,
            app_dir,
            dry_run,
            force,
            wait,
            format,
        } => sync(
            &app_dir,
            &full_name,
            sync::Flags {
                dry_run,
                force,
                wait,
            },
            format,
        ),
        Command::Tasks { app_dir, format } => tasks::run(&app_dir, format),
        Command::Serve {
            app_dir,
            listen,
            grace,
            log_format,
        } => jit_serve::serve(jit_serve::ServeOptions {
            app_dir,
            listen,
            grace: std::time::Duration::from_secs_f64(grace),
            log_format: match log_format {
                Format::Json => jit_serve::LogFormat::Json,
                Format::Text => jit_serve::LogFormat::Text,
            },
        })
        .map(|()| ExitCode::SUCCESS)
        .map_err(|e| e.to_string()),
        Command::Sim(args) => runtime().and_then(|rt| {
            rt.block_on(jit_sim::cli::run(args))
                .map(|()| ExitCode::SUCCESS)
                .map_err(|e| e.to_string())
        }),
        Command::Demo(args) => runtime()
            .and_then(|rt| rt.block_on(demo::run(args)))
            .map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn print_diagnostics(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}

fn check(app_dir: &Path, format: Format, plugins: bool) -> Result<ExitCode, String> {
    // Without plugins no instance is built: building one may call into a library.
    let (app, opened) = load_with(app_dir, !plugins, plugins)?;
    let diags: Vec<Diagnostic> = if plugins {
        app.diagnostics().iter().cloned().collect()
    } else {
        app.diagnostics()
            .iter()
            .map(unchecked_without_plugins)
            .collect()
    };
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diags.len() - errors;
    match format {
        Format::Json => {
            let out = json!({
                "app": app_dir,
                "elements": app.elements().len(),
                "errors": errors,
                "warnings": warnings,
                "plugins": {"opened": plugins, "libraries": opened.clone().unwrap_or_default()},
                "diagnostics": diags,
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        Format::Text => {
            for d in &diags {
                println!("{d}");
            }
            println!("{}", plugins_line(&opened));
            println!(
                "{}: {} elements, {errors} error(s), {warnings} warning(s)",
                app_dir.display(),
                app.elements().len()
            );
        }
    }
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn ls(app_dir: &Path, format: Format, plugins: bool) -> Result<ExitCode, String> {
    let (app, opened) = load_with(app_dir, true, plugins)?;
    // stderr, so the table (or JSON) on stdout stays machine-readable.
    eprintln!("{}", plugins_line(&opened));
    let infos: Vec<_> = app
        .elements()
        .keys()
        .filter_map(|n| app.element_info(n))
        .collect();
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&infos).unwrap_or_default()
        ),
        Format::Text => {
            let rows: Vec<[String; 6]> = infos
                .iter()
                .map(|i| {
                    [
                        i.full_name.clone(),
                        i.kind.as_str().to_string(),
                        i.type_name.clone().unwrap_or_else(|| "-".into()),
                        i.meta.clone().unwrap_or_else(|| "-".into()),
                        i.title.clone(),
                        i.implemented_by
                            .as_ref()
                            .map(|(t, o)| format!("{t} ({o})"))
                            .unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            print_table(
                &[
                    "FULLNAME",
                    "KIND",
                    "TYPE",
                    "META",
                    "TITLE",
                    "IMPLEMENTED BY",
                ],
                &rows,
            );
        }
    }
    let errors: Vec<Diagnostic> = app.diagnostics().errors().cloned().collect();
    if !errors.is_empty() {
        eprintln!(
            "{} error(s) in the app; run `jit check` for details",
            errors.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn show(app_dir: &Path, full_name: &str, format: Format) -> Result<ExitCode, String> {
    let app = load(app_dir, true)?;
    let Some(info) = app.element_info(full_name) else {
        // Reuse the lookup error: it suggests close names.
        return Err(app
            .get_element(full_name)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| format!("no element named `{full_name}`")));
    };
    let config = app.element_config(full_name).map(mask_secrets);
    let functions = app.element_functions(full_name).unwrap_or(&[]);
    let diags = app.diagnostics();
    let problems: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.element.as_deref() == Some(full_name))
        .collect();
    match format {
        Format::Json => {
            let out = json!({
                "element": info,
                "config": config,
                "functions": functions,
                "diagnostics": problems,
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        Format::Text => {
            println!("{}  ({})", info.full_name, info.title);
            println!("  kind:        {}", info.kind.as_str());
            println!("  chain:       {}", info.chain.join(" → "));
            println!(
                "  implemented: {}",
                info.implemented_by
                    .as_ref()
                    .map(|(t, o)| format!("{t} ({o})"))
                    .unwrap_or_else(|| "-".into())
            );
            println!(
                "  declared in: {} (app {})",
                info.file.display(),
                info.app_id
            );
            if let Some(cf) = &info.config_file {
                println!("  config file: {}", cf.display());
            }
            if let Some(c) = &config {
                let text = serde_json::to_string_pretty(c).unwrap_or_default();
                println!("  config:");
                for l in text.lines() {
                    println!("    {l}");
                }
            }
            if !functions.is_empty() {
                println!("  methods:");
                for f in functions {
                    let args: Vec<String> = f
                        .args
                        .iter()
                        .map(|a| {
                            format!(
                                "{}{}: {}",
                                a.name,
                                if a.required { "" } else { "?" },
                                a.data_type
                            )
                        })
                        .collect();
                    println!(
                        "    {}({}) -> {}{}",
                        f.name,
                        args.join(", "),
                        f.return_type.as_deref().unwrap_or("None"),
                        if f.title.is_empty() {
                            String::new()
                        } else {
                            format!("  # {}", f.title)
                        }
                    );
                }
            }
            for d in &problems {
                println!("  {d}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn call(app_dir: &Path, full_name: &str, method: &str, args: &str) -> Result<ExitCode, String> {
    let args: Value = serde_json::from_str(args).map_err(|e| {
        format!("--args is not valid JSON ({e}); pass an object like '{{\"memberId\": \"u1\"}}', an array, or null")
    })?;
    let app = load(app_dir, false)?;
    let errors: Vec<Diagnostic> = app
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error && d.code != DiagCode::Instantiate)
        // Library-level plugin problems have no element but explain failures.
        .filter(|d| d.element.as_deref() == Some(full_name) || d.code == DiagCode::Plugin)
        .cloned()
        .collect();
    print_diagnostics(&errors);
    let handle = app.get_element(full_name).map_err(|e| e.to_string())?;
    let is_method = handle.functions().iter().any(|f| f.name == method);
    if !is_method {
        if let Some(v) = handle.property(method) {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            return Ok(ExitCode::SUCCESS);
        }
    }
    let rt = runtime()?;
    let result = rt
        .block_on(handle.call(method, args))
        .map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string_pretty(&result).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// `--wait SECS`: a number of seconds between 0 and one hour.
fn parse_wait(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "`{s}` is not a number of seconds between 0 and 3600"
        )),
    }
}

fn sync(
    app_dir: &Path,
    full_name: &str,
    flags: sync::Flags,
    format: Format,
) -> Result<ExitCode, String> {
    let sync::Flags { dry_run, force, .. } = flags;
    let app = load(app_dir, true)?;
    let errors: Vec<Diagnostic> = app
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error && d.element.as_deref() == Some(full_name))
        .cloned()
        .collect();
    print_diagnostics(&errors);
    let handle = app.get_element(full_name).map_err(|e| e.to_string())?;
    if handle.downcast_ref::<jit_corps::CorpElement>().is_none() {
        // A plugin org type: its own syncCorp goes through the same engine,
        // but takes no options, so a dry run would silently apply. Refuse.
        if dry_run || force {
            let flag = if dry_run { "--dry-run" } else { "--force" };
            return Err(format!(
                "{full_name} is implemented by {}, whose syncCorp takes no options, so `jit sync` \
                 cannot pass {flag}; run `jit call {full_name} syncCorp` to sync it (its config's \
                 `sync` object sets the safety threshold)",
                handle.type_name()
            ));
        }
        let rt = runtime()?;
        let v = rt
            .block_on(handle.call("syncCorp", Value::Null))
            .map_err(|e| e.to_string())?;
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let rt = runtime()?;
    let json_out = format == Format::Json;
    // On a worker, not on this thread: from here every answer would hop to
    // a third thread that the cores time-slice with the runtime's workers.
    let complete = rt.block_on(async move {
        tokio::spawn(async move {
            let corp = handle
                .downcast_ref::<jit_corps::CorpElement>()
                .expect("checked above to be a CorpElement");
            sync::sync_one(corp, flags, json_out).await
        })
        .await
        .map_err(|e| format!("the sync task failed: {e}"))?
    })?;
    // Not waiting for what the sync left on the blocking pool: only the
    // engine's return of freed memory to the OS, pointless at exit.
    rt.shutdown_background();
    // A partial read is not a success: say so in the exit code.
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
