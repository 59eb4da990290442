//! The floors a sync is measured against: when the simulator's rate
//! windows would answer the last call at the earliest (the rate floor), and
//! what the latency costs at the client's concurrency (the latency floor).
//!
//! The rate floor models the simulator's windows exactly as it applies them
//! (`jit_sim::RateRule`): per app and per API path, fixed windows aligned to
//! the server's start — WeCom 10,000 calls per minute *and* 150,000 per
//! hour, DingTalk 20 per second — starting from the windows' state at the
//! moment the sync began (calls an earlier sync made in the same window
//! count). A burst that fits in the current window is legal, so a sync whose
//! calls all fit has a rate floor of one latency; a sync with more calls
//! than the window allows cannot finish before the window that admits its
//! last call opens, plus that call's latency. Nothing here assumes a
//! sustained rate: a floor of "calls ÷ (limit ÷ window)" would be higher
//! than what the platform allows and make any client look fast.

use jit_sim::{RateRule, RateState, RateWindow};
use std::collections::BTreeMap;

/// The earliest moment, in ms after `start_ms`, at which the last of
/// `calls` further calls on one API can be admitted by fixed windows of
/// `rule`, given the API's windows (`window`) as they stood at `start_ms`.
pub fn last_admission_ms(
    rule: RateRule,
    window: Option<RateWindow>,
    start_ms: u64,
    calls: u64,
) -> u64 {
    const HOUR_MS: u64 = 3_600_000;
    let limited = |limit: u32| (limit > 0).then_some(u64::from(limit));
    let (minute_limit, hour_limit) = (limited(rule.limit), limited(rule.hour_limit));
    let period = rule.window_ms.max(1);
    let mut t = start_ms;
    // Calls already admitted in the windows `t` falls in.
    let used_in = |index: u64, seen: Option<(u64, u32)>| match seen {
        Some((i, used)) if i == index => u64::from(used),
        _ => 0,
    };
    let mut used = used_in(t / period, window.map(|w| (w.index, w.used)));
    let mut hour_used = used_in(t / HOUR_MS, window.map(|w| (w.hour_index, w.hour_used)));
    let mut remaining = calls;
    loop {
        let room = minute_limit.map_or(u64::MAX, |l| l.saturating_sub(used));
        let hour_room = hour_limit.map_or(u64::MAX, |l| l.saturating_sub(hour_used));
        let admitted = remaining.min(room).min(hour_room);
        remaining -= admitted;
        if remaining == 0 {
            return t - start_ms;
        }
        // This window is full (or the hour is); the hour keeps its count
        // until it ends.
        hour_used += admitted;
        // The next moment anything can change: the hour's end when the hour
        // is spent, otherwise the current window's end.
        let next = if hour_room == admitted && hour_limit.is_some() {
            (t / HOUR_MS + 1) * HOUR_MS
        } else {
            (t / period + 1) * period
        };
        if next / HOUR_MS != t / HOUR_MS {
            hour_used = 0;
        }
        t = next;
        used = 0;
    }
}

/// The rate floor of one sync: over every API it called, the moment its
/// last answered call could be admitted plus that call's latency; with the
/// API that sets it.
#[derive(Debug, Clone, PartialEq)]
pub struct RateFloor {
    /// Seconds from the sync's start.
    pub seconds: f64,
    /// `app path` of the API that sets the floor (empty when nothing was called).
    pub api: String,
    /// Per API (`app path`): the seconds its own windows allow.
    pub per_api: BTreeMap<String, f64>,
}

/// Computes the rate floor from the windows at the sync's start and the
/// answered calls per app and path during it.
pub fn rate_floor(
    at_start: &RateState,
    answered: &BTreeMap<(String, String), u64>,
    latency_ms: u64,
) -> RateFloor {
    let mut per_api = BTreeMap::new();
    let mut best = (0.0f64, String::new());
    for ((app, path), &calls) in answered {
        if calls == 0 {
            continue;
        }
        // Calls the simulator could not attribute to an app are not limited.
        let Some(rule) = at_start.rules.get(app) else {
            continue;
        };
        let window = at_start.windows.get(app).and_then(|w| w.get(path)).copied();
        let ms = last_admission_ms(*rule, window, at_start.elapsed_ms, calls) + latency_ms;
        let s = ms as f64 / 1000.0;
        let key = format!("{app} {path}");
        if s > best.0 || best.1.is_empty() {
            best = (s, key.clone());
        }
        per_api.insert(key, s);
    }
    RateFloor {
        seconds: best.0,
        api: best.1,
        per_api,
    }
}

/// What the latency alone costs: every call waits `latency_ms`, and at most
/// `concurrency` are in flight at a time.
pub fn latency_floor_s(total_calls: u64, latency_ms: u64, concurrency: usize) -> f64 {
    total_calls as f64 * latency_ms as f64 / 1000.0 / concurrency.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const WECOM: RateRule = RateRule {
        limit: 10_000,
        window_ms: 60_000,
        hour_limit: 150_000,
    };
    const DINGTALK: RateRule = RateRule {
        limit: 20,
        window_ms: 1_000,
        hour_limit: 0,
    };

    fn window(index: u64, used: u32, hour_index: u64, hour_used: u32) -> Option<RateWindow> {
        Some(RateWindow {
            index,
            used,
            hour_index,
            hour_used,
        })
    }

    #[test]
    fn calls_that_fit_in_the_current_window_can_all_go_at_once() {
        assert_eq!(last_admission_ms(WECOM, None, 5_000, 10_000), 0);
        assert_eq!(last_admission_ms(DINGTALK, None, 0, 20), 0);
    }

    #[test]
    fn calls_beyond_the_window_wait_for_the_next_fixed_window() {
        // 15,000 calls 5 s into the first minute: 10,000 now, the rest when
        // the second minute opens at 60 s, 55 s later.
        assert_eq!(last_admission_ms(WECOM, None, 5_000, 15_000), 55_000);
        // 1,000 DingTalk calls from 0.3 s: 20 per second, the last window
        // is the 50th, opening at 49 s.
        assert_eq!(last_admission_ms(DINGTALK, None, 300, 1_000), 48_700);
    }

    #[test]
    fn calls_an_earlier_sync_made_in_the_same_window_count() {
        // The full sync left 5,000 calls in minute 1; the repeat, at 63 s,
        // has 5,000 left there and the rest at 120 s.
        assert_eq!(
            last_admission_ms(WECOM, window(1, 5_000, 0, 15_000), 63_000, 15_000),
            57_000
        );
        // A window the earlier calls are no longer in is empty.
        assert_eq!(
            last_admission_ms(WECOM, window(0, 10_000, 0, 10_000), 61_000, 10_000),
            0
        );
    }

    #[test]
    fn the_hour_limit_binds_across_minute_windows() {
        // 145,000 calls made this hour: 5,000 more now, the next ones when
        // the hour ends.
        assert_eq!(
            last_admission_ms(WECOM, window(30, 0, 0, 145_000), 1_800_000, 6_000),
            1_800_000
        );
    }

    #[test]
    fn the_floor_is_the_slowest_api_plus_its_answers_latency() {
        let state = RateState {
            elapsed_ms: 0,
            rules: [("dingtalk-0".to_string(), DINGTALK)].into(),
            windows: BTreeMap::new(),
        };
        let answered = [
            (("dingtalk-0".into(), "/a".into()), 100u64),
            (("dingtalk-0".into(), "/b".into()), 1_000),
            (("unknown".into(), "/v1.0/oauth2/accessToken".into()), 5),
        ]
        .into();
        let f = rate_floor(&state, &answered, 10);
        assert_eq!(f.api, "dingtalk-0 /b");
        assert!((f.seconds - 49.01).abs() < 1e-9, "{}", f.seconds);
        assert_eq!(f.per_api.len(), 2, "unattributed calls are not limited");
    }

    #[test]
    fn the_latency_floor_divides_by_the_concurrency() {
        assert!((latency_floor_s(1_016, 10, 32) - 0.3175).abs() < 1e-9);
    }
}
