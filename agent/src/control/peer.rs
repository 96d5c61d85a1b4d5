//! Who may use the control socket: processes in the agent's own network
//! namespace (the node's CLI). A workload — in its own namespace — must not
//! create workloads of another identity, read the agent's state or watch
//! other workloads' verdicts, even if it can reach the socket file.

use tokio::net::UnixStream;

/// `Ok` when the peer of `stream` runs in the agent's network namespace,
/// else why it is refused.
pub fn check(stream: &UnixStream) -> Result<(), String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("cannot read the peer's credentials: {e}"))?;
    let Some(pid) = cred.pid() else {
        return Err("the peer's process is unknown".into());
    };
    let ours = netns_inode("/proc/self/ns/net")?;
    let theirs = netns_inode(&format!("/proc/{pid}/ns/net"))?;
    if ours == theirs {
        Ok(())
    } else {
        Err(format!(
            "process {pid} runs in another network namespace (a workload's): egret's control socket serves the node only"
        ))
    }
}

fn netns_inode(path: &str) -> Result<u64, String> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|e| format!("cannot read {path}: {e}"))
}
