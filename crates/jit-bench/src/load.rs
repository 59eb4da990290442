//! The `load` and `lookup` scenarios.

use crate::emit;
use jit_core::{App, CallFuture, Element, InstanceContext, LoadOptions, TypeImpl, TypeRegistry};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `jit-bench load`.
#[derive(clap::Args)]
pub struct LoadArgs {
    /// Number of instance elements to generate (each with a config file).
    #[arg(long, default_value_t = 10_000)]
    pub elements: usize,
    /// Timed repetitions of each side; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

/// Options of `jit-bench lookup`.
#[derive(clap::Args)]
pub struct LookupArgs {
    /// Number of instance elements in the app.
    #[arg(long, default_value_t = 10_000)]
    pub elements: usize,
    /// Lookups per thread.
    #[arg(long, default_value_t = 2_000_000)]
    pub lookups: usize,
}

/// The generated family's Type: instances are plain records of their config.
struct ItemType;
struct Item(Value);

impl Element for Item {
    fn call<'a>(&'a self, _method: &'a str, _args: Value) -> CallFuture<'a> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl TypeImpl for ItemType {
    fn type_name(&self) -> &str {
        "bench.ItemType"
    }
    fn instantiate(&self, ctx: InstanceContext) -> Result<Arc<dyn Element>, String> {
        Ok(Arc::new(Item(ctx.config.unwrap_or(Value::Null))))
    }
}

fn write(path: &Path, v: &Value) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().expect("has parent"))?;
    std::fs::write(path, serde_json::to_vec_pretty(v).expect("json"))
}

/// Writes an app of `n` instances spread over folders of 100, each with an
/// e.json declaring methods and a config file checked by a JSON Schema.
fn generate(root: &Path, n: usize) -> std::io::Result<()> {
    write(
        &root.join("app.json"),
        &json!({"appId": "bench.app", "title": "Benchmark app"}),
    )?;
    write(&root.join("bench/Meta/e.json"), &json!({"title": "Bench"}))?;
    write(
        &root.join("bench/ItemType/e.json"),
        &json!({
            "title": "Item type", "kind": "Type", "type": "bench.Meta",
            "configSchema": "item.schema.json",
            "functionList": [
                {"name": "get", "title": "Read", "returnType": "JitDict"},
                {"name": "put", "args": [{"name": "key", "dataType": "Stext"}, {"name": "value", "dataType": "JitDict"}]}
            ]
        }),
    )?;
    write(
        &root.join("bench/ItemType/item.schema.json"),
        &json!({
            "type": "object",
            "required": ["owner", "limits"],
            "properties": {
                "owner": {"type": "string", "minLength": 1},
                "limits": {"type": "object", "properties": {"max": {"type": "integer", "minimum": 0}}},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "additionalProperties": false
        }),
    )?;
    for i in 0..n {
        let dir = root.join(format!("items/g{:03}/Item{i:06}", i / 100));
        let name = format!("Item{i:06}");
        write(
            &dir.join("e.json"),
            &json!({
                "title": format!("Item {i}"), "type": "bench.ItemType",
                "tag": "bench,generated", "description": "A generated element for the load benchmark",
                "backendBundleEntry": ".", "accessModifier": "public"
            }),
        )?;
        write(
            &dir.join(format!("{name}.json")),
            &json!({"owner": format!("team{}", i % 17), "limits": {"max": i}, "tags": ["a", "b"]}),
        )?;
    }
    // Every generated folder holds one element: make `items/gNNN` reachable too.
    Ok(())
}

fn options() -> LoadOptions {
    let mut registry = TypeRegistry::new();
    registry.register(Arc::new(ItemType));
    LoadOptions {
        registry,
        env: Some(Default::default()),
        skip_startup: false,
    }
}

/// Threads the loader reads, parses and validates on: every core, at most
/// 8 (`App::load`'s rule). The baseline uses as many, so the ratio compares
/// the same parallelism.
fn loader_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
}

/// What the runtime must at least do: walk the tree (one thread, as the
/// loader does), then read every file and parse it, on `threads` threads
/// taking files from a shared counter.
fn baseline(root: &Path, threads: usize) -> usize {
    let files: Vec<std::path::PathBuf> = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.expect("walk"))
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let read_and_parse = || {
        let mut parsed = 0;
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(path) = files.get(i) else {
                return parsed;
            };
            let bytes = std::fs::read(path).expect("read");
            let v: Value = serde_json::from_slice(&bytes).expect("parse");
            parsed += usize::from(!v.is_null());
        }
    };
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| s.spawn(read_and_parse))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("baseline worker"))
            .sum()
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `jit-bench load`.
pub fn run_load(a: &LoadArgs) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    generate(dir.path(), a.elements).map_err(|e| e.to_string())?;
    let threads = loader_threads();
    // Warm the page cache so both sides measure the same thing.
    baseline(dir.path(), threads);
    let mut load_times = Vec::new();
    let mut base_times = Vec::new();
    let mut files = 0;
    for _ in 0..a.runs.max(1) {
        let t = Instant::now();
        files = baseline(dir.path(), threads);
        base_times.push(t.elapsed());
        let t = Instant::now();
        let app = App::load(dir.path(), options()).map_err(|e| e.to_string())?;
        load_times.push(t.elapsed());
        let d = app.diagnostics();
        if !d.is_empty() {
            return Err(format!("generated app has diagnostics: {}", d.0[0]));
        }
    }
    let load = median(load_times).as_secs_f64();
    let base = median(base_times).as_secs_f64();
    emit(json!({
        "scenario": "load",
        "elements": a.elements,
        "files": files,
        "runs": a.runs,
        "load_seconds": load,
        "baseline_seconds": base,
        "baseline": "walk the same tree, then read + JSON-parse every file on as many threads as the loader",
        "threads": threads,
        "ratio": load / base,
        "target_ratio": 1.3,
        "load_avg": crate::sync::load_avg(),
    }));
    Ok(())
}

/// `jit-bench lookup`.
pub fn run_lookup(a: &LookupArgs) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    generate(dir.path(), a.elements).map_err(|e| e.to_string())?;
    let app = App::load(dir.path(), options()).map_err(|e| e.to_string())?;
    let names: Vec<String> = app
        .find_elements(".bench.ItemType")
        .iter()
        .map(|d| d.full_name.clone())
        .collect();
    if names.is_empty() {
        return Err("no generated elements".into());
    }
    // First calls: each builds its instance through the Type.
    let first_n = names.len().min(1000);
    let t = Instant::now();
    for n in &names[..first_n] {
        app.get_element(n).map_err(|e| e.to_string())?;
    }
    let first_ns = t.elapsed().as_nanos() as f64 / first_n as f64;
    for n in &names {
        app.get_element(n).map_err(|e| e.to_string())?;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for threads in [1usize, 8] {
        let t = Instant::now();
        let cpu_ns: Vec<Option<u64>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|k| {
                    let app = &app;
                    let names = &names;
                    s.spawn(move || {
                        let start = thread_cpu_ns();
                        let mut hits = 0usize;
                        for i in 0..a.lookups {
                            let n = &names[(i * 7919 + k * 104_729) % names.len()];
                            hits += usize::from(app.get_element(n).is_ok());
                        }
                        assert_eq!(hits, a.lookups);
                        Some(thread_cpu_ns()? - start?)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("worker"))
                .collect()
        });
        let wall = t.elapsed().as_nanos() as f64;
        let total = (threads * a.lookups) as f64;
        // CPU time each lookup took on its thread: the latency a caller sees
        // when it is running, whatever the number of threads competing for
        // the cores.
        let cpu: Option<f64> = cpu_ns
            .iter()
            .copied()
            .sum::<Option<u64>>()
            .map(|ns| ns as f64 / total);
        emit(json!({
            "scenario": "lookup",
            "kind": "cached",
            "elements": names.len(),
            "threads": threads,
            "cores": cores,
            "lookups_per_thread": a.lookups,
            "cpu_ns_per_lookup": cpu,
            "wall_ns_per_lookup_per_thread": wall / a.lookups as f64,
            "aggregate_lookups_per_second": total / (wall / 1e9),
            "note": "cpu_ns_per_lookup is the on-CPU time of one lookup (from /proc/thread-self/schedstat); with more threads than cores each thread also waits for a core, which wall_ns_per_lookup_per_thread includes",
            "target_ns": 1000.0,
            "ratio": cpu.unwrap_or(wall / a.lookups as f64) / 1000.0,
        }));
    }
    emit(json!({
        "scenario": "lookup",
        "kind": "first",
        "elements": first_n,
        "ns_per_lookup": first_ns,
        "note": "first get_element of an element: resolves its Type and builds the instance",
    }));
    Ok(())
}

/// On-CPU time of the calling thread in nanoseconds (Linux), if available.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}
