//! Safety checks run on a plan before anything is written.

use crate::SyncOptions;
use jit_org::{CorpSnapshot, Coverage, MemberStatus, SyncPlan, Verdict};

/// Why a plan must not be applied, and how to override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What is wrong, with the counts.
    pub reason: String,
    /// How to apply anyway, if the change is really wanted.
    pub hint: String,
}

/// The outcome of [`check`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SafetyVerdict {
    /// `Some` when the plan must not be applied.
    pub refusal: Option<Refusal>,
    /// Things worth telling even when the plan goes ahead (e.g. a forced override).
    pub notes: Vec<String>,
}

/// The most members one run may offline: `max_offline_count`, or
/// `max_offline_ratio` of the `current` members, whichever allows more.
pub fn offline_limit(opts: &SyncOptions, current: usize) -> usize {
    let by_ratio = (opts.max_offline_ratio * current as f64).floor() as usize;
    by_ratio.max(opts.max_offline_count)
}

/// Checks a plan:
/// - an upstream read without a single present member while the store has
///   current members (in the synced scope) is refused;
/// - offlining more than [`offline_limit`] members is refused.
///
/// Both counts are over the same members: the current ones (every status
/// but offline — not-activated and disabled members are employees too) that
/// the synced scope contains.
///
/// `opts.force` turns refusals into notes.
pub fn check(
    local: &CorpSnapshot,
    remote: &CorpSnapshot,
    plan: &SyncPlan,
    opts: &SyncOptions,
) -> SafetyVerdict {
    Counts::new(local, remote).check(plan, opts)
}

/// What [`check`] needs from the two snapshots, taken before the plan:
/// the engine hands the read to [`crate::plan_owned`], which consumes it.
#[derive(Debug, Clone)]
pub struct Counts {
    /// Current local members inside the synced scope.
    local_active: usize,
    /// Members the read returned as present.
    remote_present: usize,
    /// The read's first three failures, as `what (error)`.
    failed: Vec<String>,
    /// How many parts of the read failed.
    failures: usize,
}

impl Counts {
    /// Counts `local` and `remote` as [`check`] does.
    pub fn new(local: &CorpSnapshot, remote: &CorpSnapshot) -> Counts {
        let cov = Coverage::new(local, remote);
        let local_active = local
            .members
            .values()
            .filter(|m| m.status != MemberStatus::Offline && cov.member(m) != Verdict::OutsideScope)
            .count();
        let remote_present = remote
            .members
            .values()
            .filter(|m| m.status != MemberStatus::Offline)
            .count();
        // Named in a refusal, so it points at the request to look at.
        let failed = remote
            .failures
            .iter()
            .take(3)
            .map(|f| format!("{} ({})", f.what, f.error))
            .collect();
        Counts {
            local_active,
            remote_present,
            failed,
            failures: remote.failures.len(),
        }
    }

    /// [`check`] of `plan` against the counted snapshots.
    pub fn check(&self, plan: &SyncPlan, opts: &SyncOptions) -> SafetyVerdict {
        let (local_active, remote_present) = (self.local_active, self.remote_present);
        let mut refusal = None;
        if remote_present == 0 && local_active > 0 {
            let failed = &self.failed;
            let failed = match self.failures {
                0 => String::new(),
                n if n > failed.len() => {
                    format!(
                        "; failed reads: {} and {} more",
                        failed.join("; "),
                        n - failed.len()
                    )
                }
                _ => format!("; failed reads: {}", failed.join("; ")),
            };
            refusal = Some(Refusal {
                reason: format!(
                    "the upstream read returned no members while the store has {local_active} current member(s); \
                     this usually means the app cannot see the contacts (visible range, permissions) or the read failed{failed}"
                ),
                hint: "Check the app's visible range and contact permissions; if the organization really is empty, \
                       re-run with --force (SyncOptions::force)"
                    .to_string(),
            });
        } else {
            let offlined = plan.offline_members.len();
            let limit = offline_limit(opts, local_active);
            if offlined > limit {
                let share = if local_active == 0 {
                    100.0
                } else {
                    offlined as f64 * 100.0 / local_active as f64
                };
                refusal = Some(Refusal {
                    reason: format!(
                        "the plan would offline {offlined} of {local_active} current member(s) ({share:.1}%), \
                         more than the limit of {limit} member(s) (sync.maxOfflineRatio {:.1}%, sync.maxOfflineCount {})",
                        opts.max_offline_ratio * 100.0,
                        opts.max_offline_count
                    ),
                    hint: "Inspect the plan with a dry run (--dry-run, or syncCorp {\"dryRun\": true}); if these members \
                           really left, re-run with --force (syncCorp {\"force\": true}) or raise sync.maxOfflineRatio / \
                           sync.maxOfflineCount"
                        .to_string(),
                });
            }
        }
        match refusal {
            Some(r) if opts.force => SafetyVerdict {
                refusal: None,
                notes: vec![format!("forced past a safety check: {}", r.reason)],
            },
            refusal => SafetyVerdict {
                refusal,
                notes: Vec::new(),
            },
        }
    }
}
