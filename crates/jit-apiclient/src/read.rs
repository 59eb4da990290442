//! Pieces of an organization read that both platform readers share: the
//! optional parts (roles, admins) and what a failed admin-list read means.

use crate::ApiError;
use jit_org::{Admin, CorpSnapshot};
use std::future::Future;

/// Runs `read` only when the caller asked for that part of the org (roles
/// and admins are optional reads); `None` when it was not asked for.
pub async fn read_if<T>(wanted: bool, read: impl Future<Output = T>) -> Option<T> {
    if wanted {
        Some(read.await)
    } else {
        None
    }
}

/// Records the outcome of an admin-list read (`None`: not asked for) in
/// `snap`. An error whose errcode is one of `refusals` is the platform
/// saying the app may not read admins at all, a standing refusal; anything
/// else (retries exhausted, a malformed answer) leaves the read incomplete.
pub fn record_admins(
    snap: &mut CorpSnapshot,
    read: Option<Result<Vec<Admin>, ApiError>>,
    path: &str,
    refusals: &[i64],
) {
    match read {
        Some(Ok(list)) => snap.admins = Some(list),
        Some(Err(e)) => {
            let refused = e.errcode().is_some_and(|code| refusals.contains(&code));
            snap.admins_not_read(path, e.to_string(), refused)
        }
        None => {}
    }
}
