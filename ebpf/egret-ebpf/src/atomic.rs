//! Atomic adds on map values. The BPF target offers no read-modify-write
//! atomics in `core`, so this is the instruction itself (`BPF_ATOMIC_ADD`,
//! "lock xadd"), which every kernel egret supports has.

/// Adds `delta` (two's complement, so a subtraction too) to `*value`.
///
/// # Safety
/// `value` points at a valid 8-byte map value.
#[inline(always)]
pub unsafe fn add(value: *mut u64, delta: u64) {
    // SAFETY: the caller guarantees the pointer; the instruction reads and
    // writes only those 8 bytes.
    unsafe {
        core::arch::asm!(
            "lock *(u64 *)({ptr} + 0) += {delta}",
            ptr = in(reg) value,
            delta = in(reg) delta,
        );
    }
}
