//! Firewall enforcement (dpservice's rule semantics, with ironnet's enforcement and DROP rules).

use super::*;
use crate::firewall::{Action, Direction, FirewallRule, PortRange, ProtocolFilter};
use crate::stats::DropReason;

fn rule(id: &str, direction: Direction, action: Action, protocol: ProtocolFilter) -> FirewallRule {
    FirewallRule {
        id: id.into(),
        direction,
        action,
        priority: 1000,
        source: "0.0.0.0/0".parse().unwrap(),
        destination: "0.0.0.0/0".parse().unwrap(),
        protocol,
    }
}

fn tcp_dst(port: u16) -> ProtocolFilter {
    ProtocolFilter::Tcp {
        src: PortRange::ANY,
        dst: PortRange {
            lower: Some(port),
            upper: Some(port),
        },
    }
}

#[test]
fn egress_rules_default_deny_and_replies_of_accepted_flows_pass() {
    let mut env = Env::new();
    env.default_route();
    env.dp
        .create_firewall_rule("vm0", rule("web", Direction::Egress, Action::Accept, tcp_dst(80)))
        .unwrap();
    // An ingress rule that accepts nothing relevant: replies must still pass (stateful).
    env.dp
        .create_firewall_rule(
            "vm0",
            rule("ssh", Direction::Ingress, Action::Accept, tcp_dst(22)),
        )
        .unwrap();
    let remote = Ipv4Addr::new(8, 8, 8, 8);
    let web = ip4_tcp(vm_ip(0), remote, 5000, 80, true, false, b"");
    assert_eq!(
        env.run(env.vf[0], &frame(VF_MACS[0], VM_MACS[0], &web)).0,
        Verdict::Tx(env.pf[0])
    );
    let reply = ip4_tcp(remote, vm_ip(0), 80, 5000, true, true, b"");
    let u = env.underlay[0];
    assert_eq!(
        env.run(env.pf[0], &tunnel(PF0_MAC, ROUTER_MAC, router6(), u, &reply))
            .0,
        Verdict::Tx(env.vf[0])
    );
    let dns = ip4_udp(vm_ip(0), remote, 5001, 53, b"q");
    assert_eq!(
        env.run(env.vf[0], &frame(VF_MACS[0], VM_MACS[0], &dns)).0,
        Verdict::Drop(DropReason::Firewall)
    );
    // Unsolicited inbound: only port 22 is accepted.
    let http_in = ip4_tcp(remote, vm_ip(0), 6000, 80, true, false, b"");
    assert_eq!(
        env.run(env.pf[0], &tunnel(PF0_MAC, ROUTER_MAC, router6(), u, &http_in))
            .0,
        Verdict::Drop(DropReason::Firewall)
    );
    let ssh_in = ip4_tcp(remote, vm_ip(0), 6001, 22, true, false, b"");
    assert_eq!(
        env.run(env.pf[0], &tunnel(PF0_MAC, ROUTER_MAC, router6(), u, &ssh_in))
            .0,
        Verdict::Tx(env.vf[0])
    );
    assert_eq!(env.dp.stats().dropped(DropReason::Firewall), 2);
}

#[test]
fn vm_to_vm_needs_sender_egress_and_receiver_ingress_acceptance() {
    let mut env = Env::new();
    env.dp
        .create_firewall_rule(
            "vm1",
            rule("ssh-only", Direction::Ingress, Action::Accept, tcp_dst(22)),
        )
        .unwrap();
    let to = |port| {
        frame(
            VF_MACS[0],
            VM_MACS[0],
            &ip4_tcp(vm_ip(0), vm_ip(1), 7000 + port, port, true, false, b""),
        )
    };
    assert_eq!(env.run(env.vf[0], &to(22)).0, Verdict::Tx(env.vf[1]));
    assert_eq!(env.run(env.vf[0], &to(80)).0, Verdict::Drop(DropReason::Firewall));
    // A DROP rule before an accept-all rule on the sender.
    env.dp
        .create_firewall_rule("vm0", rule("no-22", Direction::Egress, Action::Drop, tcp_dst(22)))
        .unwrap();
    env.dp
        .create_firewall_rule(
            "vm0",
            rule("all", Direction::Egress, Action::Accept, ProtocolFilter::Any),
        )
        .unwrap();
    let again = frame(
        VF_MACS[0],
        VM_MACS[0],
        &ip4_tcp(vm_ip(0), vm_ip(1), 7100, 22, true, false, b""),
    );
    assert_eq!(env.run(env.vf[0], &again).0, Verdict::Drop(DropReason::Firewall));
    assert_eq!(env.dp.list_firewall_rules("vm0").unwrap().len(), 2);
    assert_eq!(
        env.dp.get_firewall_rule("vm0", "no-22").unwrap().action,
        Action::Drop
    );
    assert_eq!(
        env.dp.delete_firewall_rule("vm0", "nope"),
        Err(crate::DpError::NotFound)
    );
    assert_eq!(
        env.dp.create_firewall_rule(
            "vm0",
            rule("all", Direction::Egress, Action::Accept, ProtocolFilter::Any)
        ),
        Err(crate::DpError::AlreadyExists)
    );
}

#[test]
fn disabled_enforcement_computes_but_never_drops() {
    let mut c = config();
    c.enforce_firewall = false;
    let mut env = Env::with_config(c);
    env.dp
        .create_firewall_rule(
            "vm1",
            rule("ssh-only", Direction::Ingress, Action::Accept, tcp_dst(22)),
        )
        .unwrap();
    let f = frame(
        VF_MACS[0],
        VM_MACS[0],
        &ip4_tcp(vm_ip(0), vm_ip(1), 7000, 80, true, false, b""),
    );
    assert_eq!(env.run(env.vf[0], &f).0, Verdict::Tx(env.vf[1]));
    assert_eq!(env.dp.stats().dropped(DropReason::Firewall), 0);
}
