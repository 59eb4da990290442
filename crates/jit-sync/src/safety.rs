//! Safety checks run on a plan before anything is written.

use crate::plan::Scope;
use crate::SyncOptions;
use jit_org::{CorpSnapshot, MemberStatus, SyncPlan};

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

/// Checks a plan:
/// - an upstream read without a single present member while the store has
///   active members (in the synced scope) is refused;
/// - offlining more than `opts.max_offline_ratio` of the active local members
///   (and more than `opts.offline_allowance`) is refused.
///
/// `opts.force` turns refusals into notes.
pub fn check(
    local: &CorpSnapshot,
    remote: &CorpSnapshot,
    plan: &SyncPlan,
    opts: &SyncOptions,
) -> SafetyVerdict {
    let scope = Scope::new(local, remote);
    let local_active = local
        .members
        .values()
        .filter(|m| m.status == MemberStatus::Active && scope.covers_member(m))
        .count();
    let remote_present = remote
        .members
        .values()
        .filter(|m| m.status != MemberStatus::Offline)
        .count();
    let mut refusal = None;
    if remote_present == 0 && local_active > 0 {
        refusal = Some(Refusal {
            reason: format!(
                "the upstream read returned no members while the store has {local_active} active member(s); \
                 this usually means the app cannot see the contacts (visible range, permissions) or the read failed"
            ),
            hint: "Check the app's visible range and contact permissions; if the organization really is empty, \
                   re-run with --force (SyncOptions::force)"
                .to_string(),
        });
    } else {
        let offlined = plan.offline_members.len();
        let limit = (opts.max_offline_ratio * local_active as f64).floor() as usize;
        if offlined > limit.max(opts.offline_allowance) {
            let share = if local_active == 0 {
                100.0
            } else {
                offlined as f64 * 100.0 / local_active as f64
            };
            refusal = Some(Refusal {
                reason: format!(
                    "the plan would offline {offlined} of {local_active} active member(s) ({share:.1}%), \
                     more than the limit of {:.1}% ({} member(s))",
                    opts.max_offline_ratio * 100.0,
                    limit.max(opts.offline_allowance)
                ),
                hint: "Inspect the plan with a dry run (--dry-run); if these members really left, re-run with \
                       --force (SyncOptions::force) or raise max_offline_ratio"
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
