//! Control methods for network functions: VIP, NAT, neighbour NAT, load balancers and firewall rules.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ironnet_vni::Vni;

use crate::api::{CreateLoadBalancer, LoadBalancerInfo, LocalNatEntry, NatInfo, NeighborNat, VipInfo};
use crate::dataplane::{Dataplane, Dnat, LoadBalancer, MAX_LBS};
use crate::error::DpError;
use crate::firewall::FirewallRule;
use crate::flow::{Flow, FlowKind, NatTag};
use crate::maglev::{MAX_BACKENDS, Maglev};
use crate::underlay::{Vnf, VnfKind};

impl Dataplane {
    /// Removes the flows matching `pred`, releasing their NAT ports.
    pub(crate) fn flush_flows(&mut self, pred: impl FnMut(&Flow) -> bool) {
        let removed = self.flows.drain_where(pred);
        self.stats.flows_flushed += removed.len() as u64;
        for f in &removed {
            self.release_flow_resources(f);
        }
    }

    /// Releases what a removed flow held (its NAT port binding).
    pub(crate) fn release_flow_resources(&mut self, f: &Flow) {
        if f.nat == NatTag::Nat
            && let Some(b) = crate::pipeline::nat_binding_of(f)
        {
            self.nat_ports.release(&b);
        }
    }

    /// Removes the DNAT marker of (`ip`, `vni`) unless a NAT or neighbour NAT still needs it.
    pub(crate) fn release_nat_marker(&mut self, ip: Ipv4Addr, vni: Option<Vni>) {
        let local = self
            .ports
            .iter()
            .filter_map(|p| p.iface.as_ref())
            .any(|i| i.vni == vni && i.nat.is_some_and(|n| n.ip == ip));
        let neighbor = self.neighbor_nats.iter().any(|n| n.nat_ip == ip && n.vni == vni);
        if !local && !neighbor && self.dnat.get(&(ip, vni)) == Some(&Dnat::NatMarker) {
            self.dnat.remove(&(ip, vni));
        }
    }

    /// CreateVip: 1:1 NAT of the interface's IPv4 to `ip`. 205 unknown interface, 204 IPv6, 343 interface has a
    /// VIP, 323 (ip, VNI) already DNATed, 401 underlay.
    pub fn create_vip(
        &mut self,
        id: &str,
        ip: IpAddr,
        preferred: Option<Ipv6Addr>,
    ) -> Result<Ipv6Addr, DpError> {
        let (iface, port) = self.iface(id)?;
        let IpAddr::V4(ip) = ip else {
            return Err(DpError::BadIpVer);
        };
        if iface.vip.is_some() {
            return Err(DpError::SnatExists);
        }
        let vm_ip = iface.ipv4.ok_or(DpError::BadIpVer)?;
        let vni = iface.vni;
        if self.dnat.contains_key(&(ip, vni)) {
            return Err(DpError::DnatExists);
        }
        let underlay = self.alloc_underlay(
            preferred,
            Vnf {
                kind: VnfKind::Vip,
                vni,
                port: Some(port),
                prefix: None,
            },
        )?;
        self.dnat.insert((ip, vni), Dnat::Vip { vm_ip });
        self.iface_mut(id)?.0.vip = Some(VipInfo { ip, underlay });
        Ok(underlay)
    }

    /// GetVip. 205, 341 none.
    pub fn get_vip(&self, id: &str) -> Result<VipInfo, DpError> {
        self.iface(id)?.0.vip.ok_or(DpError::SnatNoData)
    }

    /// DeleteVip: removes underlay, DNAT, SNAT and the VIP's flows. 205, 341.
    pub fn delete_vip(&mut self, id: &str) -> Result<(), DpError> {
        let (iface, port) = self.iface_mut(id)?;
        let vip = iface.vip.take().ok_or(DpError::SnatNoData)?;
        let vni = iface.vni;
        self.vnf.remove(&vip.underlay);
        self.dnat.remove(&(vip.ip, vni));
        self.flush_flows(|f| f.port == Some(port) && matches!(f.nat, NatTag::Vip | NatTag::VipInbound));
        Ok(())
    }

    /// CreateNat: source NAT of the interface to `ip` with ports `[min_port, max_port)`. The gRPC layer
    /// guarantees `min_port < max_port`. 205, 204 IPv6, 343 interface has a NAT, 401 underlay.
    pub fn create_nat(
        &mut self,
        id: &str,
        ip: IpAddr,
        min_port: u16,
        max_port: u16,
        preferred: Option<Ipv6Addr>,
    ) -> Result<Ipv6Addr, DpError> {
        let (iface, port) = self.iface(id)?;
        let IpAddr::V4(ip) = ip else {
            return Err(DpError::BadIpVer);
        };
        if iface.nat.is_some() {
            return Err(DpError::SnatExists);
        }
        if min_port >= max_port {
            return Err(DpError::BadRequest);
        }
        let vni = iface.vni;
        if let Some(Dnat::Vip { .. }) = self.dnat.get(&(ip, vni)) {
            return Err(DpError::DnatExists);
        }
        let underlay = self.alloc_underlay(
            preferred,
            Vnf {
                kind: VnfKind::Nat,
                vni,
                port: Some(port),
                prefix: None,
            },
        )?;
        self.dnat.insert((ip, vni), Dnat::NatMarker);
        self.iface_mut(id)?.0.nat = Some(NatInfo {
            ip,
            min_port,
            max_port,
            underlay,
        });
        Ok(underlay)
    }

    /// GetNat. 205, 341.
    pub fn get_nat(&self, id: &str) -> Result<NatInfo, DpError> {
        self.iface(id)?.0.nat.ok_or(DpError::SnatNoData)
    }

    /// DeleteNat: removes underlay, the DNAT marker (unless still used by another local NAT or a neighbour NAT of
    /// the same IP and VNI) and the interface's NAT flows. 205, 341.
    pub fn delete_nat(&mut self, id: &str) -> Result<(), DpError> {
        let (iface, port) = self.iface_mut(id)?;
        let nat = iface.nat.take().ok_or(DpError::SnatNoData)?;
        let vni = iface.vni;
        self.vnf.remove(&nat.underlay);
        self.release_nat_marker(nat.ip, vni);
        self.flush_flows(|f| f.port == Some(port) && f.nat == NatTag::Nat);
        Ok(())
    }

    /// ListLocalNats: interfaces NATed to `nat_ip` (all for `None`), in port order. 204 for IPv6.
    pub fn list_local_nats(&self, nat_ip: Option<IpAddr>) -> Result<Vec<LocalNatEntry>, DpError> {
        let filter = match nat_ip {
            Some(IpAddr::V6(_)) => return Err(DpError::BadIpVer),
            Some(IpAddr::V4(a)) if !a.is_unspecified() => Some(a),
            _ => None,
        };
        Ok(self
            .ports
            .iter()
            .filter_map(|p| p.iface.as_ref())
            .filter_map(|i| {
                let n = i.nat?;
                let vm_ip = i.ipv4?;
                (filter.is_none_or(|f| f == n.ip)).then_some(LocalNatEntry {
                    vm_ip,
                    min_port: n.min_port,
                    max_port: n.max_port,
                    vni: i.vni,
                    nat_ip: n.ip,
                })
            })
            .collect())
    }

    /// CreateNeighborNat. 202 if the range overlaps a neighbour range of the same NAT IP in any VNI.
    pub fn create_neighbor_nat(&mut self, n: NeighborNat) -> Result<(), DpError> {
        if n.min_port >= n.max_port {
            return Err(DpError::BadRequest);
        }
        let overlaps = self
            .neighbor_nats
            .iter()
            .any(|e| e.nat_ip == n.nat_ip && n.min_port < e.max_port && e.min_port < n.max_port);
        if overlaps {
            return Err(DpError::AlreadyExists);
        }
        if let Some(Dnat::Vip { .. }) = self.dnat.get(&(n.nat_ip, n.vni)) {
            return Err(DpError::DnatExists);
        }
        self.dnat.insert((n.nat_ip, n.vni), Dnat::NatMarker);
        self.neighbor_nats.push(n);
        Ok(())
    }

    /// DeleteNeighborNat: exact (ip, vni, min, max) match else 201; flushes the relayed flows.
    pub fn delete_neighbor_nat(
        &mut self,
        nat_ip: IpAddr,
        vni: Option<Vni>,
        min_port: u16,
        max_port: u16,
    ) -> Result<(), DpError> {
        let IpAddr::V4(nat_ip) = nat_ip else {
            return Err(DpError::BadIpVer);
        };
        let pos = self
            .neighbor_nats
            .iter()
            .position(|e| {
                e.nat_ip == nat_ip && e.vni == vni && e.min_port == min_port && e.max_port == max_port
            })
            .ok_or(DpError::NotFound)?;
        let n = self.neighbor_nats.remove(pos);
        self.release_nat_marker(nat_ip, vni);
        self.flush_flows(|f| f.kind == FlowKind::NeighborRelay { underlay: n.underlay });
        Ok(())
    }

    /// ListNeighborNats for `nat_ip` (all for `None`), in insertion order. 204 for IPv6.
    pub fn list_neighbor_nats(&self, nat_ip: Option<IpAddr>) -> Result<Vec<NeighborNat>, DpError> {
        let filter = match nat_ip {
            Some(IpAddr::V6(_)) => return Err(DpError::BadIpVer),
            Some(IpAddr::V4(a)) if !a.is_unspecified() => Some(a),
            _ => None,
        };
        Ok(self
            .neighbor_nats
            .iter()
            .filter(|n| filter.is_none_or(|f| f == n.nat_ip))
            .copied()
            .collect())
    }

    /// CreateLoadBalancer. 202 id or (vni, ip) exists, 209 too many LBs, 361 VNI tables, 401 underlay.
    pub fn create_loadbalancer(&mut self, req: CreateLoadBalancer) -> Result<Ipv6Addr, DpError> {
        if self.lbs.contains_key(&req.id) || self.lb_by_ip.contains_key(&(req.vni, req.ip)) {
            return Err(DpError::AlreadyExists);
        }
        if self.lbs.len() >= MAX_LBS {
            return Err(DpError::LimitReached);
        }
        self.vni_ref(req.vni)?;
        let vnf = Vnf {
            kind: VnfKind::Lb,
            vni: req.vni,
            port: None,
            prefix: None,
        };
        let underlay = match self.alloc_underlay(req.preferred_underlay, vnf) {
            Ok(u) => u,
            Err(e) => {
                self.vni_unref(req.vni);
                return Err(e);
            }
        };
        self.lb_by_ip.insert((req.vni, req.ip), req.id.clone());
        self.lbs.insert(
            req.id.clone(),
            LoadBalancer {
                id: req.id,
                vni: req.vni,
                ip: req.ip,
                ports: req.ports,
                underlay,
                maglev: Maglev::default(),
            },
        );
        Ok(underlay)
    }

    /// GetLoadBalancer. 201.
    pub fn get_loadbalancer(&self, id: &str) -> Result<LoadBalancerInfo, DpError> {
        self.lbs.get(id).map(lb_info).ok_or(DpError::NotFound)
    }

    /// ListLoadBalancers, sorted by id.
    pub fn list_loadbalancers(&self) -> Vec<LoadBalancerInfo> {
        let mut v: Vec<LoadBalancerInfo> = self.lbs.values().map(lb_info).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// DeleteLoadBalancer: removes underlay, VNI reference (the VNI, its neighbour NATs and address reservations
    /// with the last one) and the LB's flows. 201.
    pub fn delete_loadbalancer(&mut self, id: &str) -> Result<(), DpError> {
        let lb = self.lbs.remove(id).ok_or(DpError::NotFound)?;
        self.lb_by_ip.remove(&(lb.vni, lb.ip));
        self.vnf.remove(&lb.underlay);
        self.vni_release(lb.vni);
        let backends = lb.maglev.backends().to_vec();
        self.flush_flows(
            |f| matches!(f.kind, FlowKind::LbForward { backend } if backends.contains(&backend)),
        );
        Ok(())
    }

    /// CreateLoadBalancerTarget. 422 unknown LB, 204 IPv4 target, 202 duplicate, 423 more than 64.
    pub fn create_lb_target(&mut self, id: &str, target: IpAddr) -> Result<(), DpError> {
        let lb = self.lbs.get_mut(id).ok_or(DpError::NoLb)?;
        let IpAddr::V6(t) = target else {
            return Err(DpError::BadIpVer);
        };
        let mut targets = lb.maglev.backends().to_vec();
        if targets.contains(&t) {
            return Err(DpError::AlreadyExists);
        }
        if targets.len() >= MAX_BACKENDS {
            return Err(DpError::BackIpAdd);
        }
        targets.push(t);
        lb.maglev = Maglev::new(&targets);
        Ok(())
    }

    /// DeleteLoadBalancerTarget: also flushes the flows forwarded to the target. 422, 204, 201 missing.
    pub fn delete_lb_target(&mut self, id: &str, target: IpAddr) -> Result<(), DpError> {
        let lb = self.lbs.get_mut(id).ok_or(DpError::NoLb)?;
        let IpAddr::V6(t) = target else {
            return Err(DpError::BadIpVer);
        };
        let targets = lb.maglev.backends().to_vec();
        if !targets.contains(&t) {
            return Err(DpError::NotFound);
        }
        let rest: Vec<Ipv6Addr> = targets.into_iter().filter(|x| *x != t).collect();
        lb.maglev = Maglev::new(&rest);
        self.flush_flows(|f| f.kind == FlowKind::LbForward { backend: t });
        Ok(())
    }

    /// ListLoadBalancerTargets of `id` (all LBs' for `None`), sorted. 422 unknown LB.
    pub fn list_lb_targets(&self, id: Option<&str>) -> Result<Vec<Ipv6Addr>, DpError> {
        match id {
            Some(id) => Ok(self.lbs.get(id).ok_or(DpError::NoLb)?.maglev.backends().to_vec()),
            None => {
                let mut v: Vec<Ipv6Addr> = self
                    .lbs
                    .values()
                    .flat_map(|l| l.maglev.backends().iter().copied())
                    .collect();
                v.sort_unstable();
                Ok(v)
            }
        }
    }

    /// CreateFirewallRule: appends the rule (ACCEPT and DROP are both supported). 205, 202 duplicate id. Existing
    /// flows keep their verdict; the rule applies to new flows.
    pub fn create_firewall_rule(&mut self, id: &str, rule: FirewallRule) -> Result<String, DpError> {
        let (iface, _) = self.iface_mut(id)?;
        if iface.rules.iter().any(|r| r.id == rule.id) {
            return Err(DpError::AlreadyExists);
        }
        let rid = rule.id.clone();
        iface.rules.push(rule);
        Ok(rid)
    }

    /// GetFirewallRule. 205, 201.
    pub fn get_firewall_rule(&self, id: &str, rule_id: &str) -> Result<FirewallRule, DpError> {
        self.iface(id)?
            .0
            .rules
            .iter()
            .find(|r| r.id == rule_id)
            .cloned()
            .ok_or(DpError::NotFound)
    }

    /// DeleteFirewallRule. 205, 201.
    pub fn delete_firewall_rule(&mut self, id: &str, rule_id: &str) -> Result<(), DpError> {
        let (iface, _) = self.iface_mut(id)?;
        let pos = iface
            .rules
            .iter()
            .position(|r| r.id == rule_id)
            .ok_or(DpError::NotFound)?;
        iface.rules.remove(pos);
        Ok(())
    }

    /// ListFirewallRules, in insertion (= evaluation) order. 205.
    pub fn list_firewall_rules(&self, id: &str) -> Result<Vec<FirewallRule>, DpError> {
        Ok(self.iface(id)?.0.rules.clone())
    }
}

fn lb_info(l: &LoadBalancer) -> LoadBalancerInfo {
    LoadBalancerInfo {
        id: l.id.clone(),
        vni: l.vni,
        ip: l.ip,
        ports: l.ports.clone(),
        underlay: l.underlay,
    }
}
