//! A task's config (`<InstanceName>.json`) and its schedule.

use croner::parser::{CronParser, Seconds};
use croner::Cron;
use serde_json::Value;
use std::time::Duration;

/// A config that cannot be a task (the schema checks shape; this says what
/// the schema cannot: a cron pattern that does not parse, an unknown zone).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    /// A required part is missing or has the wrong type.
    #[error("task config: {0}")]
    Shape(String),
    /// `timerCfg.cron` does not parse.
    #[error("task config: timerCfg.cron `{pattern}` is not a cron pattern: {message}")]
    Cron {
        /// The pattern as written.
        pattern: String,
        /// The parser's reason.
        message: String,
    },
    /// `timerCfg.timeZone` is not an IANA zone name.
    #[error(
        "task config: timerCfg.timeZone `{0}` is not a time zone name (e.g. Asia/Shanghai, UTC)"
    )]
    TimeZone(String),
    /// A duration (`repeat`, `lease`) does not parse or is zero.
    #[error("task config: {field} `{text}` is not a duration like 2s, 15m, 1h30m, 1d")]
    Duration {
        /// Which field.
        field: &'static str,
        /// As written.
        text: String,
    },
}

impl SpecError {
    /// The JSON pointer, inside the task config, of the value this is
    /// about (`""`: the whole config).
    pub fn pointer(&self) -> String {
        match self {
            SpecError::Shape(_) => String::new(),
            SpecError::Cron { .. } => "/timerCfg/cron".into(),
            SpecError::TimeZone(_) => "/timerCfg/timeZone".into(),
            SpecError::Duration { field, .. } => format!("/{}", field.replace('.', "/")),
        }
    }
}

/// When a task fires. Slots are instants in milliseconds since the epoch,
/// computed the same way on every host, so replicas agree on them.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A cron pattern read in a time zone.
    Cron {
        /// The pattern as written.
        pattern: String,
        /// Parsed.
        cron: Box<Cron>,
        /// The zone it is read in.
        tz: chrono_tz::Tz,
    },
    /// Every `every`, at multiples of it since the epoch.
    Repeat {
        /// As written (e.g. `2s`).
        text: String,
        /// The interval in milliseconds (> 0).
        every_ms: i64,
    },
}

impl Schedule {
    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: i64) -> Option<i64> {
        match self {
            Schedule::Repeat { every_ms, .. } => Some((t.div_euclid(*every_ms) + 1) * every_ms),
            Schedule::Cron { cron, tz, .. } => {
                let at = chrono::DateTime::from_timestamp_millis(t)?.with_timezone(tz);
                let next = cron.find_next_occurrence(&at, false).ok()?;
                Some(next.timestamp_millis())
            }
        }
    }

    /// The last slot at or before `t`.
    pub fn last_at_or_before(&self, t: i64) -> Option<i64> {
        match self {
            Schedule::Repeat { every_ms, .. } => Some(t.div_euclid(*every_ms) * every_ms),
            Schedule::Cron { cron, tz, .. } => {
                let at = chrono::DateTime::from_timestamp_millis(t)?.with_timezone(tz);
                let prev = cron.find_previous_occurrence(&at, true).ok()?;
                Some(prev.timestamp_millis())
            }
        }
    }

    /// How it reads in a listing: `cron 0 * * * * (Asia/Shanghai)` or `every 2s`.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Cron { pattern, tz, .. } => format!("cron {pattern} ({tz})"),
            Schedule::Repeat { text, .. } => format!("every {text}"),
        }
    }
}

/// What a firing calls.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSpec {
    /// fullName of the element.
    pub element: String,
    /// The method.
    pub method: String,
    /// Arguments by name (`Value::Null` for none).
    pub args: Value,
}

/// A task element's config, checked.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    /// When it fires.
    pub schedule: Schedule,
    /// What it calls.
    pub call: CallSpec,
    /// Run a slot missed while no host ran, once, at start.
    pub catch_up: bool,
    /// How long a host owns a running firing without renewing it.
    pub lease: Duration,
    /// `false`: listed, never fired.
    pub enabled: bool,
}

/// Parses `2s`, `15m`, `1h30m`, `1d`, `500ms` (a sum of parts); `None` for
/// anything else or zero.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.chars().next()? {
                's' => (1_000, 1),
                'm' => (60_000, 1),
                'h' => (3_600_000, 1),
                'd' => (86_400_000, 1),
                _ => return None,
            }
        };
        total = total.checked_add(n.checked_mul(unit_ms)?)?;
        rest = &rest[len..];
    }
    (total > 0).then(|| Duration::from_millis(total))
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

impl TaskSpec {
    /// Reads a task config (already checked against
    /// `tasks.NormalType.config.schema.json`, so shape errors are rare).
    pub fn from_config(config: &Value) -> Result<TaskSpec, SpecError> {
        let timer = config
            .get("timerCfg")
            .ok_or_else(|| SpecError::Shape("timerCfg is required".into()))?;
        let tz_name = str_at(timer, "/timeZone").unwrap_or("UTC");
        let tz: chrono_tz::Tz = tz_name
            .parse()
            .map_err(|_| SpecError::TimeZone(tz_name.to_string()))?;
        let schedule = match (str_at(timer, "/cron"), str_at(timer, "/repeat")) {
            (Some(pattern), None) => {
                let cron = CronParser::builder()
                    .seconds(Seconds::Optional)
                    .build()
                    .parse(pattern)
                    .map_err(|e| SpecError::Cron {
                        pattern: pattern.to_string(),
                        message: e.to_string(),
                    })?;
                Schedule::Cron {
                    pattern: pattern.to_string(),
                    cron: Box::new(cron),
                    tz,
                }
            }
            (None, Some(text)) => {
                let every = parse_duration(text).ok_or_else(|| SpecError::Duration {
                    field: "timerCfg.repeat",
                    text: text.to_string(),
                })?;
                Schedule::Repeat {
                    text: text.to_string(),
                    every_ms: every.as_millis().min(i64::MAX as u128) as i64,
                }
            }
            _ => {
                return Err(SpecError::Shape(
                    "timerCfg needs exactly one of cron and repeat".into(),
                ))
            }
        };
        let element = str_at(config, "/call/element")
            .ok_or_else(|| SpecError::Shape("call.element is required".into()))?;
        let method = str_at(config, "/call/method")
            .ok_or_else(|| SpecError::Shape("call.method is required".into()))?;
        let lease = match str_at(config, "/lease") {
            None => Duration::from_secs(30),
            Some(text) => parse_duration(text).ok_or_else(|| SpecError::Duration {
                field: "lease",
                text: text.to_string(),
            })?,
        };
        Ok(TaskSpec {
            schedule,
            call: CallSpec {
                element: element.to_string(),
                method: method.to_string(),
                args: config.pointer("/call/args").cloned().unwrap_or(Value::Null),
            },
            catch_up: config
                .get("catchUp")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            lease,
            enabled: config
                .get("enabled")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(timer: Value) -> Result<TaskSpec, SpecError> {
        TaskSpec::from_config(&json!({
            "timerCfg": timer,
            "call": {"element": "corps.X", "method": "syncCorp"}
        }))
    }

    #[test]
    fn durations_are_sums_of_parts() {
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        for bad in ["", "0s", "s", "2", "2x", "-1s", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn repeat_slots_are_multiples_of_the_interval() {
        let s = spec(json!({"repeat": "2s"})).unwrap().schedule;
        assert_eq!(s.next_after(10_000), Some(12_000));
        assert_eq!(s.next_after(10_001), Some(12_000));
        assert_eq!(s.last_at_or_before(11_999), Some(10_000));
        assert_eq!(s.last_at_or_before(12_000), Some(12_000));
    }

    #[test]
    fn cron_is_read_in_its_time_zone() {
        // 09:00 every day in Shanghai is 01:00 UTC.
        let s = spec(json!({"cron": "0 9 * * *", "timeZone": "Asia/Shanghai"}))
            .unwrap()
            .schedule;
        let midnight_utc = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        assert_eq!(s.next_after(midnight_utc), Some(midnight_utc + 3_600_000));
        assert_eq!(
            s.last_at_or_before(midnight_utc),
            Some(midnight_utc + 3_600_000 - 86_400_000)
        );
        let hourly = spec(json!({"cron": "0 * * * *"})).unwrap().schedule;
        assert_eq!(
            hourly.next_after(midnight_utc),
            Some(midnight_utc + 3_600_000)
        );
        assert_eq!(hourly.describe(), "cron 0 * * * * (UTC)");
    }

    #[test]
    fn bad_patterns_and_zones_name_the_field() {
        assert!(matches!(
            spec(json!({"cron": "61 * * * *"})),
            Err(SpecError::Cron { .. })
        ));
        assert_eq!(
            spec(json!({"repeat": "1h", "timeZone": "Mars/Olympus"})).unwrap_err(),
            SpecError::TimeZone("Mars/Olympus".into())
        );
    }

    #[test]
    fn defaults_catch_up_with_a_thirty_second_lease() {
        let s = spec(json!({"repeat": "1h"})).unwrap();
        assert!(s.catch_up && s.enabled);
        assert_eq!(s.lease, Duration::from_secs(30));
        assert_eq!(s.call.args, Value::Null);
    }
}
