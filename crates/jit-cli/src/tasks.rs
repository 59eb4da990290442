//! `jit tasks [APP]`: the app's task elements with their schedule and their
//! next and newest firings, read from the org store.

use crate::Format;
use std::path::Path;
use std::process::ExitCode;

/// Lists the tasks of the app at `app_dir`.
pub(crate) fn run(app_dir: &Path, format: Format) -> Result<ExitCode, String> {
    let app = crate::load(app_dir, true)?;
    let database_url = app
        .manifest()
        .pointer("/settings/databaseUrl")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    let rt = crate::runtime()?;
    let (tasks, problems) = rt.block_on(async {
        let store = jit_store::open_for_app(app_dir, database_url.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        jit_tasks::list_tasks(&app, store.as_ref())
            .await
            .map_err(|e| e.to_string())
    })?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({
                "tasks": tasks,
                "problems": problems
                    .iter()
                    .map(|(n, r)| serde_json::json!({"fullName": n, "reason": r}))
                    .collect::<Vec<_>>(),
            })
        ),
        Format::Text => {
            if tasks.is_empty() {
                println!("no task elements (instances of tasks.NormalType)");
            } else {
                print!("{}", jit_tasks::render_text(&tasks));
            }
            for (name, reason) in &problems {
                eprintln!("{name}: not scheduled: {reason}");
            }
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
