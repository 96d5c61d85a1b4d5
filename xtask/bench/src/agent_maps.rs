//! The agent's own SERVICES map, opened by id (found through the agent's
//! fds), so the bench can see the moment a key lands in the kernel.

use aya::maps::{HashMap, Map, MapData, MapInfo};
use egret_common::{ServiceKey, ServiceValue};

use crate::bpf::key;

/// A read handle on a running agent's SERVICES.
pub struct AgentServices {
    map: HashMap<MapData, ServiceKey, ServiceValue>,
}

impl AgentServices {
    /// Finds the SERVICES map among the bpf maps process `pid` holds.
    pub fn open(pid: u32) -> anyhow::Result<AgentServices> {
        for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))?.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let Some(id) = text
                .lines()
                .find_map(|l| l.strip_prefix("map_id:"))
                .and_then(|v| v.trim().parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(info) = MapInfo::from_id(id) else {
                continue;
            };
            if info.name_as_str() == Some("SERVICES") {
                let map = HashMap::try_from(Map::HashMap(MapData::from_id(id)?))?;
                return Ok(AgentServices { map });
            }
        }
        anyhow::bail!("process {pid} holds no SERVICES map")
    }

    /// Whether `addr` is in the map (any port key the agent uses: 80 or 0).
    pub fn has(&self, addr: [u8; 4]) -> bool {
        [80, 0]
            .iter()
            .any(|&p| self.map.get(&key(addr, p), 0).is_ok())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.keys().filter(Result::is_ok).count()
    }
}
