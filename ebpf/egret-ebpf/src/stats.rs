//! Counting verdicts in `STATS`.

use egret_common::Stat;

use crate::maps::STATS;

/// Adds one to this CPU's counter for `stat`.
#[inline(always)]
pub fn bump(stat: Stat) {
    if let Some(counter) = STATS.get_ptr_mut(stat as u32) {
        // SAFETY: the slot belongs to this CPU and programs do not preempt
        // each other on it, so a plain increment cannot race.
        unsafe { *counter += 1 };
    }
}
