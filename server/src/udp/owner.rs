//! hbd owns its heartbeat port. With `ingest_threads` ≥ 2 the sockets share the port
//! through `SO_REUSEPORT`, and Linux lets any process of the same user (any root process,
//! for root) join that group: the kernel would then split the fleet between the two, and
//! each side would turn the other's hosts DOWN. So after binding, hbd lists the sockets
//! on its port (`/proc/net/udp`, `/proc/net/udp6`) and compares their inodes with its
//! own: any other socket that can receive the same datagrams stops start-up, naming the
//! process when it can be found. Housekeeping repeats the check while hbd runs and
//! raises a `system` event (and an error in the log) when a stranger has joined.
//!
//! A `SO_ATTACH_REUSEPORT_CBPF` program that only picks our sockets would not do: any
//! member of the group may replace it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// One UDP socket of `/proc/net/udp[6]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub addr: IpAddr,
    pub port: u16,
    pub inode: u64,
}

/// Parses the text of `/proc/net/udp` or `/proc/net/udp6` (lines that do not parse
/// are skipped: the header, and whatever a future kernel adds).
pub fn parse_proc_net_udp(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let local = f.nth(1)?;
            let inode = f.nth(7)?.parse().ok()?;
            let (addr, port) = local.split_once(':')?;
            Some(Entry {
                addr: parse_hex_addr(addr)?,
                port: u16::from_str_radix(port, 16).ok()?,
                inode,
            })
        })
        .collect()
}

/// The kernel prints each 32-bit word of the address as a native-endian number.
fn parse_hex_addr(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// Whether a socket bound to `other` may receive datagrams meant for `ours`.
fn overlaps(ours: SocketAddr, other: &Entry) -> bool {
    let norm = |a: IpAddr| match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        a => a,
    };
    other.port == ours.port()
        && (norm(other.addr) == norm(ours.ip())
            || other.addr.is_unspecified()
            || ours.ip().is_unspecified())
}

/// Sockets on `addr`'s port that are not among `ours`, from the given table texts.
pub fn strangers(addr: SocketAddr, ours: &[u64], tables: &[String]) -> Vec<Entry> {
    tables
        .iter()
        .flat_map(|t| parse_proc_net_udp(t))
        .filter(|e| overlaps(addr, e) && !ours.contains(&e.inode))
        .collect()
}

/// The inode of a socket (what `/proc/net/udp` lists).
fn inode(sock: &UdpSocket) -> std::io::Result<u64> {
    // SAFETY: fstat on a descriptor we own, into a zeroed stat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(sock.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.st_ino)
}

/// The process holding socket `inode`, when `/proc` lets us see it.
fn owner_pid(inode: u64) -> Option<u32> {
    let want = format!("socket:[{inode}]");
    for p in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

/// Someone else's socket on our port.
#[derive(Debug, thiserror::Error)]
#[error("UDP {addr} is also bound by {who}; the kernel would split heartbeats between them (is another hbd running on this port?)")]
pub struct Shared {
    pub addr: SocketAddr,
    pub who: String,
}

/// Checks that no other socket can receive datagrams for `socks`' address. An error
/// reading `/proc` is not a finding (the check is then skipped, and logged at debug).
pub fn check(socks: &[UdpSocket]) -> Result<(), Shared> {
    let Some(addr) = socks.first().and_then(|s| s.local_addr().ok()) else {
        return Ok(());
    };
    let ours: Vec<u64> = socks.iter().filter_map(|s| inode(s).ok()).collect();
    let tables: Vec<String> = ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    if tables.is_empty() || ours.len() != socks.len() {
        tracing::debug!("cannot list UDP sockets in /proc; port ownership not checked");
        return Ok(());
    }
    match strangers(addr, &ours, &tables).first() {
        None => Ok(()),
        Some(e) => Err(Shared {
            addr,
            who: match owner_pid(e.inode) {
                Some(pid) => format!("process {pid} (socket inode {})", e.inode),
                None => format!("another process (socket inode {})", e.inode),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on Linux 6.1 (x86_64): hbd's two sockets on 127.0.0.1:50003 and one more.
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  527: 0100007F:C353 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 81234 2 0000000000000000 0
  527: 0100007F:C353 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 81235 2 0000000000000000 0
  528: 00000000:C354 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 900 2 0000000000000000 0
";
    const UDP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  527: 00000000000000000000000001000000:C353 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 777 2 0000000000000000 0
";

    #[test]
    fn parses_both_tables() {
        let v4 = parse_proc_net_udp(UDP);
        assert_eq!(v4.len(), 3);
        assert_eq!(v4[0].addr, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(v4[0].port, 50003);
        assert_eq!(v4[1].inode, 81235);
        let v6 = parse_proc_net_udp(UDP6);
        assert_eq!(v6[0].addr, IpAddr::V6(Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn finds_only_strangers_on_our_port() {
        let tables = [UDP.to_string(), UDP6.to_string()];
        let addr: SocketAddr = "127.0.0.1:50003".parse().expect("addr");
        assert!(strangers(addr, &[81234, 81235], &tables).is_empty());
        let s = strangers(addr, &[81234], &tables);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].inode, 81235);
        // A wildcard bind of ours overlaps every address on the port.
        let any: SocketAddr = "0.0.0.0:50004".parse().expect("addr");
        assert_eq!(strangers(any, &[], &tables).len(), 1);
    }

    #[test]
    fn a_second_group_member_is_found() {
        let ours =
            crate::udp::bind_group("127.0.0.1:0".parse().expect("addr"), 1 << 16, 2).expect("bind");
        check(&ours).expect("only ours");
        let addr = ours[0].local_addr().expect("addr");
        let other = crate::udp::bind_group(addr, 1 << 16, 2).expect("joins the group");
        let e = check(&ours).expect_err("stranger");
        assert!(
            e.to_string()
                .contains(&format!("process {}", std::process::id())),
            "{e}"
        );
        drop(other);
        check(&ours).expect("only ours again");
    }
}
