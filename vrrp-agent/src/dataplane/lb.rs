//! The load balancer's maps (see `vrrp-ebpf/src/lb.rs`): services and their tables written by
//! the agent, per real server counters read back.

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, PerCpuArray},
};
use vrrp_common::lb::{
    LbBackend, LbCounters, LbPersist, LbPersistKey, LbService, LbServiceKey, MAX_REAL_SERVERS,
    TABLE_SLOTS, lb_counters,
};

use super::take;

/// The load balancer's maps.
pub struct LbMaps {
    services: HashMap<MapData, LbServiceKey, LbService>,
    tables: Array<MapData, LbBackend>,
    persist: HashMap<MapData, LbPersistKey, LbPersist>,
    counters: PerCpuArray<MapData, LbCounters>,
    nat_in_use: Array<MapData, u32>,
}

impl LbMaps {
    pub(super) fn take(ebpf: &mut Ebpf) -> Result<Self> {
        Ok(Self {
            services: HashMap::try_from(take(ebpf, "LB_SERVICES")?)?,
            tables: Array::try_from(take(ebpf, "LB_TABLES")?)?,
            persist: HashMap::try_from(take(ebpf, "LB_PERSIST")?)?,
            counters: PerCpuArray::try_from(take(ebpf, "LB_COUNTERS")?)?,
            nat_in_use: Array::try_from(take(ebpf, "LB_NAT_IN_USE")?)?,
        })
    }

    /// Writes a service and its table (the table first, so no packet sees a service with a
    /// table it does not have yet).
    pub fn set_service(
        &mut self,
        key: LbServiceKey,
        service: LbService,
        table: &[LbBackend],
    ) -> Result<()> {
        for (slot, backend) in table.iter().enumerate().take(TABLE_SLOTS as usize) {
            self.tables
                .set(service.id * TABLE_SLOTS + slot as u32, backend, 0)
                .context("writing a load-balancing table")?;
        }
        self.services
            .insert(key, service, 0)
            .context("writing a virtual service")
    }

    /// Removes a service (its flows age out of the LRU map).
    pub fn remove_service(&mut self, key: &LbServiceKey) {
        let _ = self.services.remove(key);
    }

    /// Whether NAT replies must be looked for.
    pub fn set_nat_in_use(&mut self, on: bool) -> Result<()> {
        self.nat_in_use
            .set(0, u32::from(on), 0)
            .context("writing LB_NAT_IN_USE")
    }

    /// Forgets the clients `persistence_timeout` keeps on real servers that left `service`'s
    /// table, so they are placed afresh.
    pub fn forget_persistence(&mut self, service: u32, kept: impl Fn(&LbBackend) -> bool) {
        let stale: Vec<LbPersistKey> = self
            .persist
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, v)| k.service == service && !kept(&v.backend))
            .map(|(k, _)| k)
            .collect();
        for key in stale {
            let _ = self.persist.remove(&key);
        }
    }

    /// Packets, bytes and new flows of real server `index` of service `id`, summed over CPUs.
    pub fn counters(&self, id: u32, index: u32) -> LbCounters {
        let mut total = [0u64; lb_counters::COUNT];
        if index >= MAX_REAL_SERVERS {
            return total;
        }
        if let Ok(per_cpu) = self.counters.get(&(id * MAX_REAL_SERVERS + index), 0) {
            for row in per_cpu.iter() {
                for (t, v) in total.iter_mut().zip(row) {
                    *t += v;
                }
            }
        }
        total
    }
}
