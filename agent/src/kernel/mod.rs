//! The eBPF side: loading egret's kernel programs and keeping their maps.
