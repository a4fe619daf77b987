//! The small subset of the DNS wire format (RFC 1035, RFC 2136) that dynamic DNS needs:
//! building an UPDATE that replaces one A/AAAA RRset, building a plain query, and parsing
//! a response (header, answers, and the TSIG record at the end). Pure functions over
//! bytes; every parse path returns an error instead of panicking.

use std::fmt;
use std::net::IpAddr;

pub const TYPE_A: u16 = 1;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_TSIG: u16 = 250;
pub const CLASS_IN: u16 = 1;
pub const CLASS_ANY: u16 = 255;

const OPCODE_QUERY: u16 = 0;
const OPCODE_UPDATE: u16 = 5;
/// Header flag: the answer was truncated (retry over TCP).
pub const FLAG_TC: u16 = 0x0200;
/// Header flag: this is a response.
pub const FLAG_QR: u16 = 0x8000;

/// The record types hbd maintains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RType {
    A,
    Aaaa,
}

impl RType {
    /// A for IPv4, AAAA for IPv6.
    pub fn of(addr: IpAddr) -> RType {
        match addr {
            IpAddr::V4(_) => RType::A,
            IpAddr::V6(_) => RType::Aaaa,
        }
    }

    pub fn code(self) -> u16 {
        match self {
            RType::A => TYPE_A,
            RType::Aaaa => TYPE_AAAA,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RType::A => "A",
            RType::Aaaa => "AAAA",
        }
    }
}

impl fmt::Display for RType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a name or a message is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{0:?} is not a usable DNS name: {1}")]
    BadName(String, &'static str),
    #[error("malformed DNS message: {0}")]
    Malformed(&'static str),
}

/// Normalizes a DNS name: lowercase, with the trailing dot; checks label rules
/// (1 to 63 bytes of letters, digits, `-` and `_`; at most 253 characters).
pub fn fqdn(name: &str) -> Result<String, WireError> {
    let bad = |why| WireError::BadName(name.to_string(), why);
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return Err(bad("empty (the root zone cannot be updated)"));
    }
    if trimmed.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    for label in trimmed.split('.') {
        if label.is_empty() {
            return Err(bad("empty label (two dots in a row)"));
        }
        if label.len() > 63 {
            return Err(bad("a label is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("use only letters, digits, '-' and '_' in labels"));
        }
    }
    Ok(format!("{}.", trimmed.to_ascii_lowercase()))
}

/// Appends `name` (as produced by [`fqdn`]) in uncompressed wire form, which is also
/// the canonical form TSIG digests use.
pub fn put_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        // fqdn() keeps labels at most 63 bytes.
        out.push(label.len().min(63) as u8);
        out.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    out.push(0);
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn header(out: &mut Vec<u8>, id: u16, flags: u16, counts: [u16; 4]) {
    put_u16(out, id);
    put_u16(out, flags);
    for c in counts {
        put_u16(out, c);
    }
}

/// An RFC 2136 UPDATE for `zone` that replaces the RRset of `addr`'s type at `name` with
/// the single record `addr` (delete the RRset, then add the record; one transaction).
/// Names must come from [`fqdn`]. Unsigned: see `tsig::sign`.
pub fn build_update(id: u16, zone: &str, name: &str, addr: IpAddr, ttl: u32) -> Vec<u8> {
    let rtype = RType::of(addr).code();
    let mut m = Vec::with_capacity(128);
    // ZOCOUNT 1, PRCOUNT 0, UPCOUNT 2, ADCOUNT 0.
    header(&mut m, id, OPCODE_UPDATE << 11, [1, 0, 2, 0]);
    // Zone section.
    put_name(&mut m, zone);
    put_u16(&mut m, TYPE_SOA);
    put_u16(&mut m, CLASS_IN);
    // Update: delete the whole RRset of this type (class ANY, TTL 0, no RDATA).
    put_name(&mut m, name);
    put_u16(&mut m, rtype);
    put_u16(&mut m, CLASS_ANY);
    put_u32(&mut m, 0);
    put_u16(&mut m, 0);
    // Update: add the new record.
    put_name(&mut m, name);
    put_u16(&mut m, rtype);
    put_u16(&mut m, CLASS_IN);
    put_u32(&mut m, ttl);
    match addr {
        IpAddr::V4(a) => {
            put_u16(&mut m, 4);
            m.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            put_u16(&mut m, 16);
            m.extend_from_slice(&a.octets());
        }
    }
    m
}

/// A non-recursive query for `name`'s records of `rtype`.
pub fn build_query(id: u16, name: &str, rtype: RType) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    header(&mut m, id, OPCODE_QUERY << 11, [1, 0, 0, 0]);
    put_name(&mut m, name);
    put_u16(&mut m, rtype.code());
    put_u16(&mut m, CLASS_IN);
    m
}

/// Adds one to ARCOUNT (after appending a record to the additional section).
pub fn bump_arcount(msg: &mut [u8]) -> Result<(), WireError> {
    let Some(c) = msg.get_mut(10..12) else {
        return Err(WireError::Malformed("shorter than a header"));
    };
    let n = u16::from_be_bytes([c[0], c[1]])
        .checked_add(1)
        .ok_or(WireError::Malformed("too many additional records"))?;
    c.copy_from_slice(&n.to_be_bytes());
    Ok(())
}

/// One resource record of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name, lowercase with the trailing dot.
    pub name: String,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdata: Vec<u8>,
}

/// The TSIG record closing a message (RFC 8945 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsigRecord {
    /// Where the record starts: the signed message is everything before it.
    pub start: usize,
    pub key_name: String,
    pub algorithm: String,
    pub time_signed: u64,
    pub fudge: u16,
    pub mac: Vec<u8>,
    pub original_id: u16,
    pub error: u16,
    pub other: Vec<u8>,
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: u16,
    pub flags: u16,
    pub answers: Vec<Record>,
    pub tsig: Option<TsigRecord>,
}

impl Message {
    pub fn rcode(&self) -> u16 {
        self.flags & 0x000f
    }
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_QR != 0
    }
    pub fn truncated(&self) -> bool {
        self.flags & FLAG_TC != 0
    }
    /// The addresses among the answers for `name` (A and AAAA records only).
    pub fn addresses(&self, name: &str, rtype: RType) -> Vec<IpAddr> {
        self.answers
            .iter()
            .filter(|r| r.name == name && r.rtype == rtype.code() && r.class == CLASS_IN)
            .filter_map(|r| match r.rdata.len() {
                4 => <[u8; 4]>::try_from(r.rdata.as_slice())
                    .ok()
                    .map(IpAddr::from),
                16 => <[u8; 16]>::try_from(r.rdata.as_slice())
                    .ok()
                    .map(IpAddr::from),
                _ => None,
            })
            .collect()
    }
}

struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

const SHORT: WireError = WireError::Malformed("ends in the middle of a field");

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(SHORT)?;
        let s = self.msg.get(self.pos..end).ok_or(SHORT)?;
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u48(&mut self) -> Result<u64, WireError> {
        let b = self.take(6)?;
        Ok(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
    }
    /// A possibly compressed name, lowercased, with the trailing dot.
    fn name(&mut self) -> Result<String, WireError> {
        let mut out = String::new();
        let mut pos = self.pos;
        let mut jumped = false;
        let mut jumps = 0;
        loop {
            let len = *self.msg.get(pos).ok_or(SHORT)?;
            match len & 0xc0 {
                0x00 => {
                    let len = usize::from(len);
                    pos += 1;
                    if len == 0 {
                        break;
                    }
                    let label = self.msg.get(pos..pos + len).ok_or(SHORT)?;
                    for b in label {
                        out.push(char::from(b.to_ascii_lowercase()));
                    }
                    out.push('.');
                    if out.len() > 255 {
                        return Err(WireError::Malformed("name longer than 255 bytes"));
                    }
                    pos += len;
                }
                0xc0 => {
                    let lo = *self.msg.get(pos + 1).ok_or(SHORT)?;
                    if !jumped {
                        self.pos = pos + 2;
                        jumped = true;
                    }
                    jumps += 1;
                    if jumps > 64 {
                        return Err(WireError::Malformed("compression pointer loop"));
                    }
                    pos = usize::from(u16::from_be_bytes([len & 0x3f, lo]));
                }
                _ => return Err(WireError::Malformed("unknown label type")),
            }
        }
        if !jumped {
            self.pos = pos;
        }
        if out.is_empty() {
            out.push('.');
        }
        Ok(out)
    }
}

/// Parses a DNS message: header, answers, and a TSIG record if the additional section
/// ends with one.
pub fn parse(msg: &[u8]) -> Result<Message, WireError> {
    let mut r = Reader { msg, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    let qd = r.u16()?;
    let an = r.u16()?;
    let ns = r.u16()?;
    let ar = r.u16()?;
    for _ in 0..qd {
        r.name()?;
        r.take(4)?;
    }
    let mut answers = Vec::new();
    let mut tsig = None;
    let total = usize::from(an) + usize::from(ns) + usize::from(ar);
    for i in 0..total {
        let start = r.pos;
        let name = r.name()?;
        let rtype = r.u16()?;
        let class = r.u16()?;
        let ttl = r.u32()?;
        let len = usize::from(r.u16()?);
        let rdata_start = r.pos;
        let rdata = r.take(len)?;
        if rtype == TYPE_TSIG {
            if i + 1 != total {
                return Err(WireError::Malformed("TSIG is not the last record"));
            }
            let mut t = Reader {
                msg,
                pos: rdata_start,
            };
            let algorithm = t.name()?;
            let time_signed = t.u48()?;
            let fudge = t.u16()?;
            let mac_len = usize::from(t.u16()?);
            let mac = t.take(mac_len)?.to_vec();
            let original_id = t.u16()?;
            let error = t.u16()?;
            let other_len = usize::from(t.u16()?);
            let other = t.take(other_len)?.to_vec();
            if t.pos != rdata_start + len {
                return Err(WireError::Malformed("TSIG record length does not match"));
            }
            tsig = Some(TsigRecord {
                start,
                key_name: name,
                algorithm,
                time_signed,
                fudge,
                mac,
                original_id,
                error,
                other,
            });
        } else if i < usize::from(an) {
            answers.push(Record {
                name,
                rtype,
                class,
                ttl,
                rdata: rdata.to_vec(),
            });
        }
    }
    if r.pos != msg.len() {
        return Err(WireError::Malformed("bytes after the last record"));
    }
    Ok(Message {
        id,
        flags,
        answers,
        tsig,
    })
}

/// The response codes of RFC 1035/2136 and the TSIG errors of RFC 8945, by name.
pub fn rcode_name(code: u16) -> String {
    match code {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        6 => "YXDOMAIN".into(),
        7 => "YXRRSET".into(),
        8 => "NXRRSET".into(),
        9 => "NOTAUTH".into(),
        10 => "NOTZONE".into(),
        16 => "BADSIG".into(),
        17 => "BADKEY".into(),
        18 => "BADTIME".into(),
        22 => "BADTRUNC".into(),
        n => format!("RCODE{n}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn names_are_normalized_and_checked() {
        assert_eq!(fqdn("Web1.Dyn.Example").as_deref(), Ok("web1.dyn.example."));
        assert_eq!(fqdn("a.b.").as_deref(), Ok("a.b."));
        for bad in [
            "",
            ".",
            "a..b",
            "a b.c",
            "a/b",
            &"x".repeat(64),
            "é.example",
        ] {
            assert!(fqdn(bad).is_err(), "{bad:?} accepted");
        }
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(fqdn(&long).is_err(), "{} chars accepted", long.len());
    }

    #[test]
    fn update_wire_bytes() {
        let m = build_update(
            0x1234,
            "dyn.test.",
            "web1.dyn.test.",
            "127.0.0.3".parse().expect("ip"),
            60,
        );
        expect_test::expect![[r#"
            1234 2800 0001 0000 0002 0000
            0364796e04746573740000060001
            0477656231 0364796e047465737400 0001 00ff 00000000 0000
            0477656231 0364796e047465737400 0001 0001 0000003c 0004 7f000003"#]]
        .assert_eq(&format!(
            "{} {} {} {} {} {}\n{}\n{} {} {} {} {} {}\n{} {} {} {} {} {} {}",
            hex(&m[0..2]),
            hex(&m[2..4]),
            hex(&m[4..6]),
            hex(&m[6..8]),
            hex(&m[8..10]),
            hex(&m[10..12]),
            hex(&m[12..26]),
            hex(&m[26..31]),
            hex(&m[31..41]),
            hex(&m[41..43]),
            hex(&m[43..45]),
            hex(&m[45..49]),
            hex(&m[49..51]),
            hex(&m[51..56]),
            hex(&m[56..66]),
            hex(&m[66..68]),
            hex(&m[68..70]),
            hex(&m[70..74]),
            hex(&m[74..76]),
            hex(&m[76..]),
        ));
        let v6 = build_update(
            1,
            "dyn.test.",
            "h.dyn.test.",
            "::1".parse().expect("ip"),
            30,
        );
        assert_eq!(&v6[v6.len() - 18..v6.len() - 16], &[0, 16]);
        let mut loopback = [0u8; 16];
        loopback[15] = 1;
        assert_eq!(&v6[v6.len() - 16..], &loopback);
    }

    #[test]
    fn query_wire_bytes() {
        let q = build_query(0xabcd, "ns.dyn.test.", RType::Aaaa);
        assert_eq!(
            hex(&q),
            "abcd00000001000000000000026e730364796e047465737400001c0001"
        );
    }

    /// A response captured from BIND 9.18 (`dig -y ... ns.dyn.test A`), with compressed
    /// names in the answer and authority sections and a TSIG record.
    pub const BIND_RESPONSE: &str = "ff9184000001000100010001026e730364796e04746573740000010001c00c000100010000003c00047f000001c00f000200010000003c0002c00c076862642d6b65790000fa00ff00000000003d0b686d61632d7368613235360000006b050b69012c0020c4fb6f04082a0cd57bd67df5ec2d81adc5ebf709cbb2b5acb5dd618c3e3f755fff9100000000";

    pub fn unhex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn parses_a_bind_response() {
        let m = parse(&unhex(BIND_RESPONSE)).expect("parses");
        assert_eq!(m.id, 0xff91);
        assert!(m.is_response());
        assert_eq!(m.rcode(), 0);
        assert_eq!(
            m.addresses("ns.dyn.test.", RType::A),
            vec!["127.0.0.1".parse::<IpAddr>().expect("ip")]
        );
        assert!(m.addresses("ns.dyn.test.", RType::Aaaa).is_empty());
        let t = m.tsig.expect("tsig");
        assert_eq!(t.key_name, "hbd-key.");
        assert_eq!(t.algorithm, "hmac-sha256.");
        assert_eq!(t.fudge, 300);
        assert_eq!(t.mac.len(), 32);
        assert_eq!(t.original_id, 0xff91);
    }

    #[test]
    fn hostile_messages_are_errors_not_panics() {
        let good = unhex(BIND_RESPONSE);
        for n in 0..good.len() {
            let _ = parse(&good[..n]);
        }
        // A pointer to itself.
        let mut looped = unhex("000081800001000000000000");
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(parse(&looped).is_err());
        assert!(parse(&[0xff; 3]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse(&data);
        }
    }
}
