//! Task elements: the built-in Type `tasks.NormalType` (under `tasks.Meta`),
//! their schedules, and the [`Scheduler`] a host runs.
//!
//! A task is an instance whose config file declares a timer and a call:
//!
//! ```json
//! {
//!   "timerCfg": {"cron": "0 * * * *", "timeZone": "Asia/Shanghai"},
//!   "call": {"element": "corps.MyCorp", "method": "syncCorp", "args": {}},
//!   "catchUp": true
//! }
//! ```
//!
//! (`{"repeat": "1h"}` instead of `cron` fires at multiples of the interval
//! since the epoch.) Every host computes the same slots; each slot is a row
//! of the store's firing table, claimed atomically (see
//! `jit_store::CorpStore::claim_firing`), so any number of `jit serve`
//! replicas on one database run each slot once. The claimer holds a lease
//! it renews while the call runs; if it dies, the lease expires and another
//! replica re-runs the slot as attempt 2, recorded as such. Nothing about
//! tasks is kept in a process that another would need.

#![warn(missing_docs)]

mod check;
mod scheduler;
mod spec;
mod view;

pub use scheduler::{task_elements, Scheduler, SchedulerOptions, Task};
pub use spec::{parse_duration, CallSpec, Schedule, SpecError, TaskSpec};
pub use view::{list_tasks, render_text, utc_text, FiringView, TaskView};

use jit_core::{CallFuture, Element, InstanceContext, TypeImpl, TypeRegistry};
use serde_json::{json, Value};
use std::any::Any;
use std::sync::Arc;

/// fullName of the task Type.
pub const TASK_TYPE: &str = "tasks.NormalType";

/// The `tasks.NormalType` implementation: builds a [`TaskElement`] from an
/// instance's config.
#[derive(Debug, Default)]
pub struct TaskType;

impl TypeImpl for TaskType {
    fn type_name(&self) -> &str {
        TASK_TYPE
    }

    fn config_schema(&self) -> Option<Value> {
        jit_core::embedded::config_schema(TASK_TYPE)
    }

    fn check_instance(
        &self,
        app: &jit_core::App,
        instance: &jit_core::ElementDefine,
        config: &Value,
    ) -> Vec<jit_core::Diagnostic> {
        check::check_task(app, instance, config)
    }

    fn instantiate(&self, ctx: InstanceContext) -> Result<Arc<dyn Element>, String> {
        let config = ctx.config.as_ref().ok_or_else(|| {
            format!(
                "{} has no config file: a task needs <InstanceName>.json with timerCfg and call",
                ctx.define.full_name
            )
        })?;
        let spec = TaskSpec::from_config(config).map_err(|e| e.to_string())?;
        Ok(Arc::new(TaskElement {
            full_name: ctx.define.full_name.clone(),
            title: ctx.define.title.clone(),
            spec,
        }))
    }
}

/// A task element: its schedule and call. Hosts find it with
/// `handle.downcast_ref::<TaskElement>()`.
#[derive(Debug)]
pub struct TaskElement {
    full_name: String,
    title: String,
    spec: TaskSpec,
}

impl TaskElement {
    /// The checked config.
    pub fn spec(&self) -> &TaskSpec {
        &self.spec
    }

    /// The element's fullName.
    pub fn full_name(&self) -> &str {
        &self.full_name
    }

    /// The element's title.
    pub fn title(&self) -> &str {
        &self.title
    }

    fn info(&self, count: usize) -> Value {
        let mut next = Vec::new();
        let mut t = now_ms();
        for _ in 0..count {
            match self.spec.schedule.next_after(t) {
                Some(n) => {
                    next.push(n);
                    t = n;
                }
                None => break,
            }
        }
        json!({
            "fullName": self.full_name,
            "schedule": self.spec.schedule.describe(),
            "call": {
                "element": self.spec.call.element,
                "method": self.spec.call.method,
                "args": self.spec.call.args,
            },
            "catchUp": self.spec.catch_up,
            "enabled": self.spec.enabled,
            "leaseMs": self.spec.lease.as_millis() as u64,
            "nextFirings": next,
        })
    }
}

impl Element for TaskElement {
    fn call<'a>(&'a self, method: &'a str, args: Value) -> CallFuture<'a> {
        Box::pin(async move {
            match method {
                "getTaskInfo" => {
                    let count = args
                        .get("count")
                        .and_then(Value::as_u64)
                        .unwrap_or(3)
                        .min(100) as usize;
                    Ok(self.info(count))
                }
                _ => Err(jit_core::CallError::NotImplemented {
                    element: self.full_name.clone(),
                    method: method.to_string(),
                    type_name: TASK_TYPE.to_string(),
                }),
            }
        })
    }

    fn property(&self, name: &str) -> Option<Value> {
        match name {
            "title" => Some(json!(self.title)),
            "fullName" => Some(json!(self.full_name)),
            "schedule" => Some(json!(self.spec.schedule.describe())),
            _ => None,
        }
    }

    fn property_names(&self) -> Vec<String> {
        vec!["title".into(), "fullName".into(), "schedule".into()]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Registers `tasks.NormalType` in `registry`. A host that runs tasks
/// registers it beside the org Types (`jit_corps::register_builtins`).
pub fn register_builtins(registry: &mut TypeRegistry) {
    registry.register(Arc::new(TaskType));
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
