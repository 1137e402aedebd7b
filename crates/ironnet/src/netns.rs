//! Network namespaces, links and a DHCP client for the lab (`ironnet up --hypervisors`) and the machine provider
//! stand-in (`ironnet vm`), through iproute2 and ISC dhclient as an operator would run them.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

/// Runs `program args…` and returns its standard output; fails with its standard error otherwise.
pub async fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {program} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `args` inside namespace `ns`.
pub async fn in_ns(ns: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    run("ip", &full).await
}

/// Whether namespace `ns` exists.
pub async fn exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// Creates namespace `ns` with loopback up and duplicate address detection off (addresses in a lab are unique,
/// and DAD would delay every IPv6 address by a second).
pub async fn create(ns: &str) -> anyhow::Result<()> {
    run("ip", &["netns", "add", ns]).await?;
    in_ns(ns, &["ip", "link", "set", "lo", "up"]).await?;
    in_ns(
        ns,
        &[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ],
    )
    .await?;
    Ok(())
}

/// Kills every process left in `ns` and deletes it; a missing namespace is fine.
pub async fn delete(ns: &str) {
    if !exists(ns).await {
        return;
    }
    if let Ok(pids) = run("ip", &["netns", "pids", ns]).await {
        for pid in pids.split_whitespace() {
            let _ = run("kill", &["-9", pid]).await;
        }
    }
    if let Err(e) = run("ip", &["netns", "del", ns]).await {
        tracing::warn!(namespace = ns, error = %e, "could not delete network namespace");
    }
}

/// Whether the link `name` exists in the current namespace.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Waits until the link `name` exists in the current namespace (a TAP device its dataplane creates at start).
pub async fn wait_for_link(name: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    while !link_exists(name) {
        if tokio::time::Instant::now() > deadline {
            bail!("link {name} did not appear within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Waits until no link of `names` exists in this namespace; fails naming the first that remains after `timeout`.
pub async fn wait_until_links_gone(names: &[&str], timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let Some(present) = names
            .iter()
            .find(|n| Path::new("/sys/class/net").join(n).exists())
        else {
            return Ok(());
        };
        if tokio::time::Instant::now() > deadline {
            bail!("link {present} still exists after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Moves link `name` into `ns` and brings it up there.
pub async fn move_link(name: &str, ns: &str) -> anyhow::Result<()> {
    run("ip", &["link", "set", name, "netns", ns]).await?;
    in_ns(ns, &["ip", "link", "set", name, "up"]).await?;
    Ok(())
}

/// Leases an IPv4 address on `link` inside `ns` with dhclient and configures it the way a VM's network
/// scripts do with a lease from dpservice: the address as /32, the gateway 169.254.0.1 on-link and the default
/// route through it. Returns the leased address. `workdir` holds dhclient's script, lease and pid files.
pub async fn dhcp(ns: &str, link: &str, workdir: &Path) -> anyhow::Result<Ipv4Addr> {
    std::fs::create_dir_all(workdir).with_context(|| format!("creating {}", workdir.display()))?;
    let script = workdir.join(format!("{ns}-{link}.dhclient-script"));
    let leased = workdir.join(format!("{ns}-{link}.leased"));
    let _ = std::fs::remove_file(&leased);
    // dhclient runs its script with a scrubbed environment, so the output path is written into it.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$reason\" in BOUND|RENEW|REBIND|REBOOT)\n\
             ip addr add \"$new_ip_address/32\" dev \"$interface\" 2>/dev/null\n\
             ip route replace 169.254.0.1 dev \"$interface\"\n\
             ip route replace default via 169.254.0.1 dev \"$interface\" onlink\n\
             echo \"$new_ip_address\" > \"{}\"\n;; esac\nexit 0\n",
            leased.display()
        ),
    )?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700))?;
    }
    let conf = workdir.join("dhclient.conf");
    std::fs::write(&conf, "")?;
    let path = |suffix: &str| workdir.join(format!("{ns}-{link}.{suffix}"));
    let (script, conf, pid, lease) = (
        script.display().to_string(),
        conf.display().to_string(),
        path("pid").display().to_string(),
        path("lease").display().to_string(),
    );
    // A dhclient from an earlier lease on this link (its device was replaced) would make the new one refuse to
    // start ("already running").
    if let Ok(old) = std::fs::read_to_string(&pid) {
        let _ = run("kill", &[old.trim()]).await;
        let _ = std::fs::remove_file(&pid);
    }
    // -1: try once and exit with an error if no lease comes (bounded by `timeout` as well).
    run(
        "timeout",
        &[
            "30", "ip", "netns", "exec", ns, "dhclient", "-4", "-1", "-cf", &conf, "-sf", &script, "-pf",
            &pid, "-lf", &lease, link,
        ],
    )
    .await
    .context("dhclient (Debian package isc-dhcp-client)")?;
    let text = std::fs::read_to_string(&leased).context("dhclient reported no lease")?;
    text.trim()
        .parse()
        .with_context(|| format!("leased address {text:?}"))
}
