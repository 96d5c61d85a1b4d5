//! `SOCK_STATE`: egret's state on each socket (`SockState`), in socket-local
//! storage. A BTF-defined map (the kernel needs the key and value types of
//! a socket storage map), pinned by name like every other map, so a new
//! agent's programs see the state of sockets opened before it.

use core::ffi::c_void;
use core::ptr;

use aya_ebpf::bindings::{bpf_map_type::BPF_MAP_TYPE_SK_STORAGE, bpf_sock, BPF_F_NO_PREALLOC};
use aya_ebpf::helpers::generated::bpf_sk_storage_get;
use egret_common::SockState;

/// libbpf's `LIBBPF_PIN_BY_NAME`.
const PIN_BY_NAME: usize = 1;
/// `BPF_SK_STORAGE_GET_F_CREATE`.
const F_CREATE: u64 = 1;

/// A socket storage map of `SockState`, pinned by name. The fields only
/// describe the map in BTF (`__uint`/`__type` in libbpf's terms); the loader
/// creates it.
#[repr(C)]
pub struct SockStateMap {
    r#type: *const [i32; BPF_MAP_TYPE_SK_STORAGE as usize],
    key: *const i32,
    value: *const SockState,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; BPF_F_NO_PREALLOC as usize],
    pinning: *const [i32; PIN_BY_NAME],
}

// SAFETY: the fields are BTF placeholders, never dereferenced.
unsafe impl Sync for SockStateMap {}

impl SockStateMap {
    /// The placeholder the loader fills in.
    pub const fn new() -> Self {
        SockStateMap {
            r#type: ptr::null(),
            key: ptr::null(),
            value: ptr::null(),
            max_entries: ptr::null(),
            map_flags: ptr::null(),
            pinning: ptr::null(),
        }
    }

    /// The state of `sk`, or `None` when it has none.
    #[inline(always)]
    pub fn get(&self, sk: *mut bpf_sock) -> Option<&mut SockState> {
        self.lookup(sk, 0)
    }

    /// The state of `sk`, created zeroed when it has none; `None` only when
    /// the kernel could not allocate it.
    #[inline(always)]
    pub fn get_or_create(&self, sk: *mut bpf_sock) -> Option<&mut SockState> {
        self.lookup(sk, F_CREATE)
    }

    #[inline(always)]
    fn lookup(&self, sk: *mut bpf_sock, flags: u64) -> Option<&mut SockState> {
        if sk.is_null() {
            return None;
        }
        let map = ptr::from_ref(self).cast_mut().cast::<c_void>();
        // SAFETY: `sk` is a socket pointer the verifier accepts for this
        // helper; the returned value is socket-local and lives as long as the
        // socket, beyond this program run.
        let value = unsafe { bpf_sk_storage_get(map, sk.cast(), ptr::null_mut(), flags) };
        // SAFETY: the kernel returns NULL or a valid, aligned SockState.
        unsafe { value.cast::<SockState>().as_mut() }
    }
}
