//! The lab's network: one bridge on the machine per lab, and per host a
//! network namespace with one end of a veth pair as its `eth0`. Addresses
//! are configured from outside before the host boots, so nothing inside the
//! host has to manage its network.

use std::net::Ipv4Addr;

use super::state::NetPlan;
use super::system::{run, run_quietly};
use crate::error::Result;

/// Creates the lab's bridge if it is missing, and makes sure it is up and
/// holds the gateway address the machine talks to hosts from.
pub fn ensure_bridge(plan: &NetPlan) -> Result<()> {
    let bridge = plan.bridge();
    let step = "create the lab bridge";
    if !link_exists(&bridge) {
        run(step, "ip", &["link", "add", &bridge, "type", "bridge"])?;
    }
    let gateway = format!("{}/24", plan.gateway());
    let addresses = run(step, "ip", &["-o", "-4", "addr", "show", "dev", &bridge])?;
    if !addresses.contains(&format!("inet {gateway} ")) {
        run(step, "ip", &["addr", "add", &gateway, "dev", &bridge])?;
    }
    run(step, "ip", &["link", "set", &bridge, "up"])?;
    Ok(())
}

/// Removes the bridge (after every host of the lab is gone).
pub fn remove_bridge(plan: &NetPlan) {
    run_quietly("ip", &["link", "del", &plan.bridge()]);
}

/// Builds a host's namespace from scratch: any leftover of the same name is
/// removed first (a stale veth once left the peer missing).
pub fn create_host_network(
    plan: &NetPlan,
    netns: &str,
    number: usize,
    address: Ipv4Addr,
) -> Result<()> {
    remove_host_network(plan, netns, number);
    let step = "create the host's network";
    let veth = plan.veth(number);
    let peer = plan.veth_peer(number);
    let cidr = format!("{address}/24");
    let gateway = plan.gateway().to_string();
    run(step, "ip", &["netns", "add", netns])?;
    run(
        step,
        "ip",
        &["link", "add", &veth, "type", "veth", "peer", "name", &peer],
    )?;
    run(step, "ip", &["link", "set", &peer, "netns", netns])?;
    run(
        step,
        "ip",
        &["link", "set", &veth, "master", &plan.bridge(), "up"],
    )?;
    run(
        step,
        "ip",
        &["-n", netns, "link", "set", &peer, "name", "eth0"],
    )?;
    // A fixed MAC per address, and no neighbour entry left from an earlier
    // host at this address: otherwise the machine keeps sending to the old
    // MAC until its neighbour entry goes stale (tens of seconds).
    run(
        step,
        "ip",
        &[
            "-n",
            netns,
            "link",
            "set",
            "eth0",
            "address",
            &mac_for(address),
        ],
    )?;
    run_quietly(
        "ip",
        &["neigh", "del", &address.to_string(), "dev", &plan.bridge()],
    );
    run(
        step,
        "ip",
        &["-n", netns, "addr", "add", &cidr, "dev", "eth0"],
    )?;
    run(step, "ip", &["-n", netns, "link", "set", "eth0", "up"])?;
    run(step, "ip", &["-n", netns, "link", "set", "lo", "up"])?;
    run(
        step,
        "ip",
        &["-n", netns, "route", "add", "default", "via", &gateway],
    )?;
    Ok(())
}

/// A locally administered unicast MAC that encodes the IPv4 address.
fn mac_for(address: Ipv4Addr) -> String {
    let [a, b, c, d] = address.octets();
    format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// Removes a host's namespace and veth; missing pieces are fine.
pub fn remove_host_network(plan: &NetPlan, netns: &str, number: usize) {
    run_quietly("ip", &["netns", "del", netns]);
    run_quietly("ip", &["link", "del", &plan.veth(number)]);
}

/// The addresses and routed networks the machine already uses (any table):
/// a lab must not take a range that something else holds.
pub fn networks_in_use() -> Vec<super::state::Ipv4Net> {
    let mut text = String::new();
    for args in [
        &["-o", "-4", "addr", "show"][..],
        &["-4", "route", "show", "table", "all"][..],
    ] {
        if let Ok(out) = run("read the machine's addresses and routes", "ip", args) {
            text.push_str(&out);
            text.push('\n');
        }
    }
    super::state::networks_in(&text)
}

pub fn link_exists(name: &str) -> bool {
    run_quietly("ip", &["link", "show", "dev", name])
}

pub fn netns_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

/// Namespaces whose name starts with `prefix` (leftovers of a killed lab).
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Links on the machine whose name starts with `prefix`.
pub fn links_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_local_unicast_and_follow_the_address() {
        assert_eq!(mac_for(Ipv4Addr::new(198, 18, 0, 11)), "02:00:c6:12:00:0b");
        assert_ne!(
            mac_for(Ipv4Addr::new(198, 18, 0, 11)),
            mac_for(Ipv4Addr::new(198, 18, 1, 11))
        );
    }
}
