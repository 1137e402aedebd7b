//! DHCPv6 server for the VM behind a VF (dpservice's `dhcpv6` graph node, `src/nodes`): SOLICIT ⇒ ADVERTISE,
//! REQUEST/RELEASE ⇒ REPLY with the VM's address, CONFIRM ⇒ bare REPLY; without an IPv6 address only SOLICIT
//! and REQUEST are answered (NoAddrsAvail).

use std::net::Ipv6Addr;

use crate::port::MacAddr;

/// SOLICIT.
pub const SOLICIT: u8 = 1;
/// ADVERTISE.
pub const ADVERTISE: u8 = 2;
/// REQUEST.
pub const REQUEST: u8 = 3;
/// CONFIRM.
pub const CONFIRM: u8 = 4;
/// REPLY.
pub const REPLY: u8 = 7;
/// RELEASE.
pub const RELEASE: u8 = 8;

const OPT_CLIENTID: u16 = 1;
const OPT_SERVERID: u16 = 2;
const OPT_IA_NA: u16 = 3;
const OPT_IAADDR: u16 = 5;
const OPT_STATUS: u16 = 13;
const OPT_RAPID_COMMIT: u16 = 14;
const OPT_USER_CLASS: u16 = 15;
const OPT_VENDOR_CLASS: u16 = 16;
const OPT_DNS: u16 = 23;
const OPT_BOOTFILE_URL: u16 = 59;

/// The parts of a client message the server uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dhcpv6Request {
    /// Message type.
    pub msg_type: u8,
    /// Transaction id (3 bytes).
    pub xid: [u8; 3],
    /// Client identifier option value.
    pub client_id: Option<Vec<u8>>,
    /// IAID of the first IA_NA.
    pub iaid: Option<[u8; 4]>,
    /// Rapid commit requested.
    pub rapid_commit: bool,
    /// Vendor class contains `PXEClient:Arch:00007`.
    pub pxe_uefi: bool,
    /// User class contains `iPXE`.
    pub ipxe: bool,
}

/// Why a DHCPv6 payload was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed DHCPv6 message")]
pub struct Dhcpv6Error;

impl Dhcpv6Request {
    /// Parses a client message (UDP payload).
    pub fn parse(b: &[u8]) -> Result<Self, Dhcpv6Error> {
        if b.len() < 4 {
            return Err(Dhcpv6Error);
        }
        let mut r = Dhcpv6Request {
            msg_type: b[0],
            xid: [b[1], b[2], b[3]],
            ..Default::default()
        };
        let mut i = 4;
        while i < b.len() {
            let hdr = b.get(i..i + 4).ok_or(Dhcpv6Error)?;
            let code = u16::from_be_bytes([hdr[0], hdr[1]]);
            let len = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
            let val = b.get(i + 4..i + 4 + len).ok_or(Dhcpv6Error)?;
            match code {
                OPT_CLIENTID => r.client_id = Some(val.to_vec()),
                OPT_IA_NA if len >= 4 && r.iaid.is_none() => r.iaid = Some([val[0], val[1], val[2], val[3]]),
                OPT_RAPID_COMMIT => r.rapid_commit = true,
                OPT_VENDOR_CLASS => r.pxe_uefi = val.windows(20).any(|w| w == b"PXEClient:Arch:00007"),
                OPT_USER_CLASS => r.ipxe = val.windows(4).any(|w| w == b"iPXE"),
                _ => {}
            }
            i += 4 + len;
        }
        Ok(r)
    }
}

fn opt(out: &mut Vec<u8>, code: u16, val: &[u8]) -> Option<()> {
    let len = u16::try_from(val.len()).ok()?;
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(val);
    Some(())
}

/// Builds the server's answer to `req`, or `None` if the message type is not answered (or an option would not
/// fit its 16-bit length). `addr` is the VM's IPv6
/// (without one, SOLICIT/REQUEST get a REPLY with status NoAddrsAvail and every other type is not answered);
/// `server_mac` forms the server DUID-LL.
pub fn reply(
    req: &Dhcpv6Request,
    addr: Option<Ipv6Addr>,
    server_mac: MacAddr,
    dns: &[Ipv6Addr],
    boot_url: Option<&str>,
) -> Option<Vec<u8>> {
    let msg = match req.msg_type {
        SOLICIT => ADVERTISE,
        REQUEST | RELEASE | CONFIRM => REPLY,
        _ => return None,
    };
    let mut out = vec![msg, req.xid[0], req.xid[1], req.xid[2]];
    let mut duid = vec![0, 3, 0, 1];
    duid.extend_from_slice(&server_mac.0);
    let Some(addr) = addr else {
        // Without an address to hand out only SOLICIT and REQUEST get an answer (NoAddrsAvail); everything else,
        // CONFIRM included, is dropped, as dpservice's `src/nodes/dhcpv6_node.c` does.
        if !matches!(req.msg_type, SOLICIT | REQUEST) {
            return None;
        }
        out[0] = REPLY;
        if let Some(c) = &req.client_id {
            opt(&mut out, OPT_CLIENTID, c)?;
        }
        opt(&mut out, OPT_SERVERID, &duid)?;
        opt(&mut out, OPT_STATUS, &[0, 2])?;
        return Some(out);
    };
    if req.msg_type == CONFIRM {
        return Some(out);
    }
    opt(&mut out, OPT_SERVERID, &duid)?;
    if let Some(c) = &req.client_id {
        opt(&mut out, OPT_CLIENTID, c)?;
    }
    let mut iaaddr = addr.octets().to_vec();
    iaaddr.extend_from_slice(&[0xff; 8]);
    let mut ia = req.iaid.unwrap_or_default().to_vec();
    ia.extend_from_slice(&[0xff; 8]);
    opt(&mut ia, OPT_IAADDR, &iaaddr)?;
    opt(&mut ia, OPT_STATUS, &[0, 0])?;
    opt(&mut out, OPT_IA_NA, &ia)?;
    if req.rapid_commit {
        opt(&mut out, OPT_RAPID_COMMIT, &[])?;
    }
    let dns_bytes: Vec<u8> = dns.iter().flat_map(|d| d.octets()).collect();
    opt(&mut out, OPT_DNS, &dns_bytes)?;
    if let Some(url) = boot_url {
        opt(&mut out, OPT_BOOTFILE_URL, url.as_bytes())?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An option value longer than its 16-bit length field gets no answer rather than a wrapped length.
    #[test]
    fn no_reply_when_an_option_would_not_fit_its_length_field() {
        let req = Dhcpv6Request {
            msg_type: SOLICIT,
            xid: [1, 2, 3],
            ..Default::default()
        };
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let addr = Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 5));
        let dns = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x53);
        // 4095 servers are 65520 bytes, the most that fits.
        let fits = vec![dns; 4095];
        let answer = reply(&req, addr, mac, &fits, None).expect("4095 servers fit the option");
        let [code_hi, code_lo] = OPT_DNS.to_be_bytes();
        assert!(answer.windows(4).any(|w| w == [code_hi, code_lo, 0xff, 0xf0]));
        assert_eq!(reply(&req, addr, mac, &vec![dns; 4096], None), None);
    }
}
