//! DHCPv4 server for the VM behind a VF (dpservice's `dhcp` graph node, `src/nodes`): DISCOVER ⇒ OFFER,
//! REQUEST ⇒ ACK, options in dpservice's exact order.

use std::net::Ipv4Addr;

use crate::packet::be16;
use crate::port::MacAddr;

/// The gateway address dpservice answers as.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 1);
/// Length of the fixed BOOTP part including the magic cookie.
const BOOTP_LEN: usize = 240;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Offset and length of the BOOTP client hardware address field.
const CHADDR: usize = 28;
const CHADDR_LEN: usize = 16;
/// DHCP message types.
pub const DISCOVER: u8 = 1;
/// OFFER.
pub const OFFER: u8 = 2;
/// REQUEST.
pub const REQUEST: u8 = 3;
/// ACK.
pub const ACK: u8 = 5;

/// The fields of a client request the server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpRequest {
    /// Message type (option 53).
    pub msg_type: u8,
    /// Transaction id.
    pub xid: u32,
    /// Flags field.
    pub flags: u16,
    /// Client hardware address field (16 bytes).
    pub chaddr: [u8; 16],
    /// Vendor class identifier (option 60) contains `PXEClient:Arch:00007`.
    pub pxe_uefi: bool,
    /// User class (option 77) is `iPXE`.
    pub ipxe: bool,
}

/// Why a DHCP payload was not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DhcpError {
    /// Shorter than BOOTP, not a BOOTREQUEST, bad magic, or options overrun the buffer.
    #[error("malformed DHCP message")]
    Malformed,
    /// No message type option.
    #[error("missing DHCP message type")]
    NoMessageType,
}

impl DhcpRequest {
    /// Parses the UDP payload of a client message.
    pub fn parse(b: &[u8]) -> Result<Self, DhcpError> {
        if b.len() < BOOTP_LEN || b[0] != 1 || b[236..240] != MAGIC {
            return Err(DhcpError::Malformed);
        }
        let mut chaddr = [0u8; 16];
        chaddr.copy_from_slice(&b[CHADDR..CHADDR + CHADDR_LEN]);
        let mut req = DhcpRequest {
            msg_type: 0,
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            flags: be16(b, 10),
            chaddr,
            pxe_uefi: false,
            ipxe: false,
        };
        let mut i = BOOTP_LEN;
        while i < b.len() {
            let code = b[i];
            if code == 255 {
                break;
            }
            if code == 0 {
                i += 1;
                continue;
            }
            let len = usize::from(*b.get(i + 1).ok_or(DhcpError::Malformed)?);
            let val = b.get(i + 2..i + 2 + len).ok_or(DhcpError::Malformed)?;
            match code {
                53 if len == 1 => req.msg_type = val[0],
                60 => req.pxe_uefi = val.windows(20).any(|w| w == b"PXEClient:Arch:00007"),
                77 => req.ipxe = val == b"iPXE",
                _ => {}
            }
            i += 2 + len;
        }
        if req.msg_type == 0 {
            return Err(DhcpError::NoMessageType);
        }
        Ok(req)
    }
}

/// What the server puts into a reply.
#[derive(Debug, Clone)]
pub struct DhcpReply<'a> {
    /// OFFER or ACK.
    pub msg_type: u8,
    /// The VM's address.
    pub yiaddr: Ipv4Addr,
    /// Boot server (PXE) or the gateway.
    pub siaddr: Ipv4Addr,
    /// Boot file name (PXE), written into the `file` field.
    pub file: Option<String>,
    /// Interface MTU (option 26).
    pub mtu: u16,
    /// DNS servers (option 6, omitted when empty).
    pub dns: &'a [Ipv4Addr],
    /// Hostname (option 12).
    pub hostname: Option<&'a str>,
    /// Include option 3 (router), PXE mode only.
    pub router: bool,
}

impl DhcpReply<'_> {
    /// Writes the BOOTP reply to `req` with options 53, 51, 54, 121, 1, 26, [3], [6], [12], 255. `client_mac` (the
    /// request frame's Ethernet source) replaces the first six bytes of the request's `chaddr`.
    pub fn emit(&self, req: &DhcpRequest, client_mac: MacAddr) -> Vec<u8> {
        let mut b = vec![0u8; BOOTP_LEN];
        b[0] = 2;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&req.xid.to_be_bytes());
        b[10..12].copy_from_slice(&req.flags.to_be_bytes());
        b[16..20].copy_from_slice(&self.yiaddr.octets());
        b[20..24].copy_from_slice(&self.siaddr.octets());
        b[24..28].copy_from_slice(&GATEWAY.octets());
        b[CHADDR..CHADDR + CHADDR_LEN].copy_from_slice(&req.chaddr);
        b[CHADDR..CHADDR + client_mac.0.len()].copy_from_slice(&client_mac.0);
        if let Some(f) = &self.file {
            let n = f.len().min(127);
            b[108..108 + n].copy_from_slice(&f.as_bytes()[..n]);
        }
        b[236..240].copy_from_slice(&MAGIC);
        b.extend_from_slice(&[53, 1, self.msg_type]);
        b.extend_from_slice(&[51, 4, 0xff, 0xff, 0xff, 0xff]);
        b.extend_from_slice(&[54, 4]);
        b.extend_from_slice(&GATEWAY.octets());
        b.extend_from_slice(&[121, 12, 16, 169, 254, 0, 0, 0, 0, 0, 169, 254, 0, 1]);
        b.extend_from_slice(&[1, 4, 255, 255, 255, 255]);
        b.extend_from_slice(&[26, 2]);
        b.extend_from_slice(&self.mtu.to_be_bytes());
        if self.router {
            b.extend_from_slice(&[3, 4]);
            b.extend_from_slice(&GATEWAY.octets());
        }
        if !self.dns.is_empty() {
            let dns = &self.dns[..self.dns.len().min(63)];
            // Truncation impossible: at most 63 addresses of 4 bytes, 252 bytes.
            #[allow(clippy::cast_possible_truncation)]
            let dns_len = (dns.len() * 4) as u8;
            b.extend_from_slice(&[6, dns_len]);
            for d in dns {
                b.extend_from_slice(&d.octets());
            }
        }
        if let Some(h) = self.hostname {
            let h = &h.as_bytes()[..h.len().min(255)];
            // Truncation impossible: cut to 255 bytes above.
            #[allow(clippy::cast_possible_truncation)]
            let h_len = h.len() as u8;
            b.extend_from_slice(&[12, h_len]);
            b.extend_from_slice(h);
        }
        b.push(255);
        b
    }
}
