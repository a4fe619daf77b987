//! TSIG (RFC 8945): signing a request with a shared HMAC key and verifying the server's
//! signed response, so neither the update nor the answer can be forged or replayed
//! outside the time window. HMAC-SHA224/256/384/512; pure functions with the time passed
//! in.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Sha224, Sha256, Sha384, Sha512};

use super::wire::{self, Message, WireError, CLASS_ANY, TYPE_TSIG};

/// Allowed difference between our clock and the server's (RFC 8945 recommends 300 s).
pub const FUDGE: u16 = 300;

/// A TSIG HMAC algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha224,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Algorithm {
    pub const ALL: [Algorithm; 4] = [
        Algorithm::HmacSha224,
        Algorithm::HmacSha256,
        Algorithm::HmacSha384,
        Algorithm::HmacSha512,
    ];

    /// The name in config files and BIND key files (`hmac-sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HmacSha224 => "hmac-sha224",
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha384 => "hmac-sha384",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    /// Parses `hmac-sha256` (any case, trailing dot allowed).
    pub fn parse(s: &str) -> Option<Algorithm> {
        let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
        Algorithm::ALL.into_iter().find(|a| a.as_str() == s)
    }

    fn wire_name(self) -> String {
        format!("{}.", self.as_str())
    }
}

/// A shared TSIG key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    /// Key name, lowercase with the trailing dot (as `wire::fqdn` makes it).
    pub name: String,
    pub algorithm: Algorithm,
    pub secret: Vec<u8>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Why a response's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsigError {
    #[error("the response is not signed")]
    Unsigned,
    #[error("the response is signed with key {0:?}, not ours")]
    OtherKey(String),
    #[error("the response's signature does not match (forged, or not for our request)")]
    BadMac,
    #[error("the response was signed {0} s away from our clock (more than {FUDGE} s)")]
    BadTime(u64),
    #[error(transparent)]
    Wire(#[from] WireError),
}

enum Hasher {
    S224(Hmac<Sha224>),
    S256(Hmac<Sha256>),
    S384(Hmac<Sha384>),
    S512(Hmac<Sha512>),
}

impl Hasher {
    fn new(key: &Key) -> Hasher {
        // HMAC accepts keys of any length, so new_from_slice cannot fail; an empty
        // secret is refused by the config check, and falls back to the zero key here.
        match key.algorithm {
            Algorithm::HmacSha224 => Hasher::S224(
                Hmac::new_from_slice(&key.secret)
                    .unwrap_or_else(|_| <Hmac<Sha224> as Mac>::new(&Default::default())),
            ),
            Algorithm::HmacSha256 => Hasher::S256(
                Hmac::new_from_slice(&key.secret)
                    .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default())),
            ),
            Algorithm::HmacSha384 => Hasher::S384(
                Hmac::new_from_slice(&key.secret)
                    .unwrap_or_else(|_| <Hmac<Sha384> as Mac>::new(&Default::default())),
            ),
            Algorithm::HmacSha512 => Hasher::S512(
                Hmac::new_from_slice(&key.secret)
                    .unwrap_or_else(|_| <Hmac<Sha512> as Mac>::new(&Default::default())),
            ),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::S224(h) => h.update(data),
            Hasher::S256(h) => h.update(data),
            Hasher::S384(h) => h.update(data),
            Hasher::S512(h) => h.update(data),
        }
    }

    fn finalize(self) -> Vec<u8> {
        match self {
            Hasher::S224(h) => h.finalize().into_bytes().to_vec(),
            Hasher::S256(h) => h.finalize().into_bytes().to_vec(),
            Hasher::S384(h) => h.finalize().into_bytes().to_vec(),
            Hasher::S512(h) => h.finalize().into_bytes().to_vec(),
        }
    }

    /// Constant-time comparison.
    fn verify(self, mac: &[u8]) -> bool {
        match self {
            Hasher::S224(h) => h.verify_slice(mac).is_ok(),
            Hasher::S256(h) => h.verify_slice(mac).is_ok(),
            Hasher::S384(h) => h.verify_slice(mac).is_ok(),
            Hasher::S512(h) => h.verify_slice(mac).is_ok(),
        }
    }
}

/// The "TSIG variables" every digest ends with (RFC 8945 §4.3.3).
fn variables(key: &Key, time_signed: u64, fudge: u16, error: u16, other: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    wire::put_name(&mut v, &key.name);
    v.extend_from_slice(&CLASS_ANY.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    wire::put_name(&mut v, &key.algorithm.wire_name());
    v.extend_from_slice(&time_signed.to_be_bytes()[2..8]);
    v.extend_from_slice(&fudge.to_be_bytes());
    v.extend_from_slice(&error.to_be_bytes());
    v.extend_from_slice(&(other.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    v.extend_from_slice(other);
    v
}

/// Signs a request in place: appends the TSIG record and counts it in ARCOUNT. Returns
/// the MAC, which the response's signature covers.
pub fn sign(msg: &mut Vec<u8>, key: &Key, now_s: u64) -> Result<Vec<u8>, WireError> {
    let id = msg
        .get(0..2)
        .map(|b| [b[0], b[1]])
        .ok_or(WireError::Malformed("shorter than a header"))?;
    let mut h = Hasher::new(key);
    h.update(msg);
    h.update(&variables(key, now_s, FUDGE, 0, &[]));
    let mac = h.finalize();

    let mut rdata = Vec::with_capacity(32 + mac.len());
    wire::put_name(&mut rdata, &key.algorithm.wire_name());
    rdata.extend_from_slice(&now_s.to_be_bytes()[2..8]);
    rdata.extend_from_slice(&FUDGE.to_be_bytes());
    rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rdata.extend_from_slice(&mac);
    rdata.extend_from_slice(&id);
    rdata.extend_from_slice(&0u16.to_be_bytes()); // error
    rdata.extend_from_slice(&0u16.to_be_bytes()); // other len

    wire::put_name(msg, &key.name);
    msg.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    msg.extend_from_slice(&CLASS_ANY.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    msg.extend_from_slice(&rdata);
    wire::bump_arcount(msg)?;
    Ok(mac)
}

/// Verifies the TSIG record of `raw` (parsed as `parsed`): a response to a request whose
/// MAC was `request_mac`, or a request when `request_mac` is None. A TSIG error the
/// server reports (BADSIG, BADKEY, BADTIME) is not checked here: such answers are
/// unsigned, and the caller reports the error code.
pub fn verify(
    raw: &[u8],
    parsed: &Message,
    key: &Key,
    request_mac: Option<&[u8]>,
    now_s: u64,
) -> Result<(), TsigError> {
    let t = parsed.tsig.as_ref().ok_or(TsigError::Unsigned)?;
    if t.key_name != key.name || t.algorithm != key.algorithm.wire_name() {
        return Err(TsigError::OtherKey(format!(
            "{} ({})",
            t.key_name, t.algorithm
        )));
    }
    let mut unsigned = raw
        .get(..t.start)
        .ok_or(WireError::Malformed("TSIG offset out of range"))?
        .to_vec();
    // Digest the message as it was before the TSIG record was added.
    let ar = unsigned
        .get(10..12)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .and_then(|n| n.checked_sub(1))
        .ok_or(WireError::Malformed(
            "ARCOUNT does not count the TSIG record",
        ))?;
    unsigned[10..12].copy_from_slice(&ar.to_be_bytes());
    unsigned[0..2].copy_from_slice(&t.original_id.to_be_bytes());

    let mut h = Hasher::new(key);
    if let Some(m) = request_mac {
        h.update(&(m.len() as u16).to_be_bytes());
        h.update(m);
    }
    h.update(&unsigned);
    h.update(&variables(key, t.time_signed, t.fudge, t.error, &t.other));
    if !h.verify(&t.mac) {
        return Err(TsigError::BadMac);
    }
    let skew = now_s.abs_diff(t.time_signed);
    if skew > u64::from(t.fudge) {
        return Err(TsigError::BadTime(skew));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::{unhex, BIND_RESPONSE};
    use crate::wire::{build_query, parse, RType};
    use base64::Engine;

    fn key() -> Key {
        Key {
            name: "hbd-key.".into(),
            algorithm: Algorithm::HmacSha256,
            secret: base64::engine::general_purpose::STANDARD
                .decode("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=")
                .expect("b64"),
        }
    }

    /// The query `dig -y hmac-sha256:hbd-key:... ns.dyn.test A` sent (BIND 9.18).
    const DIG_REQUEST: &str = "ff9100200001000000000001026e730364796e04746573740000010001076862642d6b65790000fa00ff00000000003d0b686d61632d7368613235360000006b050b69012c002021f3545733009aacff317677487cec24af2fd966a081b7aa4ab1df6a93317e93ff9100000000";
    const SIGNED_AT: u64 = 0x6b05_0b69;

    #[test]
    fn verifies_bind_signatures() {
        let req = unhex(DIG_REQUEST);
        let parsed = parse(&req).expect("request parses");
        verify(&req, &parsed, &key(), None, SIGNED_AT).expect("dig's request verifies");
        let request_mac = parsed.tsig.expect("tsig").mac;

        let resp = unhex(BIND_RESPONSE);
        let parsed = parse(&resp).expect("response parses");
        verify(&resp, &parsed, &key(), Some(&request_mac), SIGNED_AT + 10)
            .expect("BIND's response verifies");

        // The same response against another request, a wrong secret, a late clock.
        assert_eq!(
            verify(&resp, &parsed, &key(), Some(&[0; 32]), SIGNED_AT),
            Err(TsigError::BadMac)
        );
        let mut wrong = key();
        wrong.secret[0] ^= 1;
        assert_eq!(
            verify(&resp, &parsed, &wrong, Some(&request_mac), SIGNED_AT),
            Err(TsigError::BadMac)
        );
        assert_eq!(
            verify(&resp, &parsed, &key(), Some(&request_mac), SIGNED_AT + 301),
            Err(TsigError::BadTime(301))
        );
        // A flipped bit anywhere in the signed part.
        let mut forged = resp.clone();
        forged[44] ^= 1; // the answer's address
        let p = parse(&forged).expect("parses");
        assert_eq!(
            verify(&forged, &p, &key(), Some(&request_mac), SIGNED_AT),
            Err(TsigError::BadMac)
        );
    }

    #[test]
    fn signing_reproduces_dig() {
        // Our signature over the same query at the same time is byte-identical to dig's.
        let mut q = build_query(0xff91, "ns.dyn.test.", RType::A);
        // dig sets RD=0 and AD=1 (flags 0x0020); copy its header flags.
        q[2..4].copy_from_slice(&[0x00, 0x20]);
        sign(&mut q, &key(), SIGNED_AT).expect("sign");
        assert_eq!(q, unhex(DIG_REQUEST));
    }

    #[test]
    fn every_algorithm_round_trips() {
        for a in Algorithm::ALL {
            let k = Key {
                algorithm: a,
                ..key()
            };
            let mut q = build_query(7, "x.dyn.test.", RType::Aaaa);
            let mac = sign(&mut q, &k, 1_000).expect("sign");
            let p = parse(&q).expect("parse");
            assert_eq!(p.tsig.as_ref().expect("tsig").mac, mac);
            verify(&q, &p, &k, None, 1_000).expect("verifies");
            assert_eq!(
                Algorithm::parse(&format!("{}.", a.as_str().to_uppercase())),
                Some(a)
            );
        }
        assert_eq!(Algorithm::parse("hmac-md5"), None);
        let k = Key {
            algorithm: Algorithm::HmacSha512,
            ..key()
        };
        let mut q = build_query(7, "x.dyn.test.", RType::A);
        sign(&mut q, &key(), 1).expect("sign");
        assert!(matches!(
            verify(&q, &parse(&q).expect("parse"), &k, None, 1),
            Err(TsigError::OtherKey(_))
        ));
    }

    #[test]
    fn debug_hides_the_secret() {
        let d = format!("{:?}", key());
        assert!(d.contains("hbd-key.") && !d.contains("115"), "{d}");
    }
}
