//! `greeters.HelloType`: the Type plugin built step by step in PLUGINS.md.
//!
//! Config of an instance (`<Instance>.json`): `{"greeting": "Hello"}`.
//! Methods: `greet(name)` answers a greeting; `ask(element, method, args)`
//! calls another element of the app through the host; `explode()` panics,
//! to show that a panic becomes an error of that call and nothing more.

use jit_plugin_sdk::{
    arg, export_plugin, json, opt_arg, Host, Init, PluginError, PluginType, Value,
};

/// One greeter element.
pub struct Hello {
    greeting: String,
    full_name: String,
}

impl PluginType for Hello {
    const TYPE_NAME: &'static str = "greeters.HelloType";
    const METHODS: &'static [&'static str] = &["greet", "ask", "explode"];

    fn config_schema() -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": { "greeting": { "type": "string", "minLength": 1 } },
            "additionalProperties": false
        }))
    }

    fn create(init: Init, _host: &Host) -> Result<Self, PluginError> {
        let greeting = init
            .config
            .get("greeting")
            .and_then(Value::as_str)
            .unwrap_or("Hello");
        Ok(Hello {
            greeting: greeting.to_string(),
            full_name: init.full_name,
        })
    }

    fn call(&self, host: &Host, method: &str, args: Value) -> Result<Value, PluginError> {
        match method {
            "greet" => {
                let name: String = arg(&args, "name")?;
                host.info(&format!("{} greets {name}", self.full_name));
                Ok(json!(format!("{}, {name}!", self.greeting)))
            }
            "ask" => {
                let element: String = arg(&args, "element")?;
                let method: String = arg(&args, "method")?;
                let call_args: Value = opt_arg(&args, "args")?.unwrap_or(Value::Null);
                host.call_element(&element, &method, call_args)
            }
            "explode" => panic!("{} was asked to explode", self.full_name),
            other => Err(PluginError::unknown_method(other)),
        }
    }
}

export_plugin!(types: [Hello]);
