//! The node's pod network: a bridge in the agent's namespace, one veth per
//! workload, addresses from the pod CIDR, and masquerade toward the rest of
//! what the node can reach (as a CNI gives pods on a Kubernetes node).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use ipnet::Ipv4Net;

use super::error::WorkloadError;
use super::ipcmd::{ip, run};

/// Name of the nftables table that holds egret's masquerade rule.
const NFT_TABLE: &str = "egret";

/// The bridge all workload veths hang off, with the pod CIDR's first address.
pub struct PodNetwork {
    bridge: String,
    cidr: Ipv4Net,
    gateway: Ipv4Addr,
    used: Mutex<BTreeSet<Ipv4Addr>>,
    masquerade: bool,
}

impl PodNetwork {
    /// Creates (or takes over) the bridge, turns on forwarding in the agent's
    /// namespace and installs masquerade for traffic leaving the pod CIDR.
    pub fn setup(bridge: &str, cidr: Ipv4Net) -> Result<Self, WorkloadError> {
        let gateway = cidr
            .hosts()
            .next()
            .ok_or(WorkloadError::AddressesExhausted {
                cidr: cidr.to_string(),
            })?;
        if ip(&["link", "show", bridge]).is_err() {
            ip(&["link", "add", bridge, "type", "bridge"])?;
        }
        let gw = format!("{gateway}/{}", cidr.prefix_len());
        // `replace` keeps this idempotent across agent restarts.
        ip(&["addr", "replace", &gw, "dev", bridge])?;
        ip(&["link", "set", bridge, "up"])?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(WorkloadError::io("enable net.ipv4.ip_forward"))?;
        let masquerade = match install_masquerade(bridge, cidr) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "no masquerade for the pod network: workloads reach only hosts that route {cidr} back");
                false
            }
        };
        Ok(PodNetwork {
            bridge: bridge.to_string(),
            cidr,
            gateway,
            used: Mutex::new(BTreeSet::new()),
            masquerade,
        })
    }

    /// The workloads' default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// Takes a free workload address.
    pub fn allocate(&self) -> Result<Ipv4Addr, WorkloadError> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let free = self
            .cidr
            .hosts()
            .skip(1)
            .find(|a| !used.contains(a))
            .ok_or(WorkloadError::AddressesExhausted {
                cidr: self.cidr.to_string(),
            })?;
        used.insert(free);
        Ok(free)
    }

    /// Marks an address as taken (a workload taken over from an earlier agent).
    pub fn reserve(&self, addr: Ipv4Addr) {
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(addr);
    }

    /// Returns an address to the pool.
    pub fn release(&self, addr: Ipv4Addr) {
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&addr);
    }

    /// Connects the namespace `netns` to the bridge with a veth pair whose
    /// inner end is `eth0` holding `addr`, default route via the gateway.
    pub fn attach(&self, netns: &str, host_if: &str, addr: Ipv4Addr) -> Result<(), WorkloadError> {
        ip(&[
            "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns,
        ])?;
        ip(&["link", "set", host_if, "master", &self.bridge, "up"])?;
        let cidr = format!("{addr}/{}", self.cidr.prefix_len());
        ip(&["-n", netns, "addr", "add", &cidr, "dev", "eth0"])?;
        ip(&["-n", netns, "link", "set", "eth0", "up"])?;
        let gw = self.gateway.to_string();
        ip(&["-n", netns, "route", "add", "default", "via", &gw])?;
        Ok(())
    }

    /// Removes the bridge and the masquerade rule.
    pub fn teardown(&self) {
        if let Err(e) = ip(&["link", "del", &self.bridge]) {
            tracing::warn!(bridge = %self.bridge, error = %e, "could not delete the pod bridge");
        }
        if self.masquerade {
            if let Err(e) = run("nft", &["delete", "table", "ip", NFT_TABLE]) {
                tracing::warn!(error = %e, "could not delete nftables table {NFT_TABLE}");
            }
        }
    }
}

/// Removes a pod network an agent left (`egret cleanup`): the bridge and
/// the masquerade table. Missing pieces are fine.
pub fn remove(bridge: &str) {
    if ip(&["link", "show", bridge]).is_ok() {
        let _ = ip(&["link", "del", bridge]);
    }
    let _ = run("nft", &["delete", "table", "ip", NFT_TABLE]);
}

/// nftables: masquerade what leaves the pod CIDR through anything but the
/// bridge, so replies find their way back without routes on other hosts.
fn install_masquerade(bridge: &str, cidr: Ipv4Net) -> Result<(), WorkloadError> {
    let rules = format!(
        "table ip {NFT_TABLE} {{}}\n\
         delete table ip {NFT_TABLE}\n\
         table ip {NFT_TABLE} {{\n\
           chain postrouting {{\n\
             type nat hook postrouting priority srcnat; policy accept;\n\
             ip saddr {cidr} oifname != \"{bridge}\" masquerade\n\
           }}\n\
         }}\n"
    );
    let dir = std::env::temp_dir().join(format!("egret-nft-{}", std::process::id()));
    std::fs::write(&dir, rules).map_err(WorkloadError::io("write nftables rules"))?;
    let result = run("nft", &["-f", &dir.to_string_lossy()]);
    let _ = std::fs::remove_file(&dir);
    result.map(|_| ())
}
