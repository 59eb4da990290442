//! A minimal `jit call` with plugins and nothing else built in: loads an app
//! through [`PluginProvider`], prints every diagnostic, then calls one method.
//!
//! ```text
//! cargo run -p jit-plugin-host --example plugin_call -- APP_DIR FULL_NAME METHOD [ARGS_JSON]
//! ```

use jit_core::{App, LoadOptions, TypeRegistry};
use jit_plugin_host::PluginProvider;
use serde_json::Value;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [app_dir, full_name, method, rest @ ..] = args.as_slice() else {
        eprintln!("usage: plugin_call APP_DIR FULL_NAME METHOD [ARGS_JSON]");
        return ExitCode::FAILURE;
    };
    let call_args: Value = match rest.first().map(|a| serde_json::from_str(a)) {
        None => Value::Null,
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            eprintln!("ARGS_JSON is not JSON: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut registry = TypeRegistry::new();
    registry.add_provider(Arc::new(PluginProvider::new(registry.clone())));
    let app = match App::load(
        app_dir,
        LoadOptions {
            registry,
            ..Default::default()
        },
    ) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    for d in app.diagnostics().iter() {
        eprintln!("{d}");
    }
    if let Some((type_name, origin)) = app.element_info(full_name).and_then(|i| i.implemented_by) {
        eprintln!("{full_name} is implemented by {type_name} from {origin}");
    }
    let rt = tokio::runtime::Runtime::new().expect("start the async runtime");
    let result = app
        .get_element(full_name)
        .map_err(|e| e.to_string())
        .and_then(|h| {
            rt.block_on(h.call(method, call_args))
                .map_err(|e| e.to_string())
        });
    match result {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
