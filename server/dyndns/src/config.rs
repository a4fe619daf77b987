//! Dynamic DNS configuration: [`DyndnsConfig`] (the `dyndnshosts` map or list and the
//! `dns_*`/`dyndns2_*` keys, one section of the flat config file), their checks, BIND key files, and the resolved [`Settings`]
//! the updater works from. DNS names only ever come from here, never from a heartbeat.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::tsig::{Algorithm, Key};
use super::wire::fqdn;
pub use hb_config::Secret;

/// Default TTL of the records hbd writes: short, so a change is seen soon.
pub const DEFAULT_TTL: u32 = 60;

/// One host's DNS settings (`dyndnshosts.<host>`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynDnsHost {
    /// The DNS name; default `<host>.<dns_zone>`.
    pub name: Option<String>,
    /// The zone to update; default `dns_zone`.
    pub zone: Option<String>,
    /// TTL of the record (default 60).
    pub ttl: Option<u32>,
    /// Without a `secret`, unsigned heartbeats may move this host's records.
    #[serde(default)]
    pub allow_unsigned: bool,
}

/// `dyndnshosts`: a list of host names (each `<host>.<dns_zone>`), or a map of host name
/// to a DNS name or to `{name, zone, ttl, allow_unsigned}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DynDnsHosts(pub BTreeMap<String, DynDnsHost>);

impl<'de> Deserialize<'de> for DynDnsHosts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HostsVisitor)
    }
}

/// Hand-written rather than `#[serde(untagged)]`, so that a mistake inside an entry
/// (`ttl: soon`, a misspelt field) is reported with its own message and line.
struct HostsVisitor;

impl<'de> Visitor<'de> for HostsVisitor {
    type Value = DynDnsHosts;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a list of host names, or a map of host name to a DNS name or to \
             {name, zone, ttl, allow_unsigned}",
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DynDnsHosts, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(h) = seq.next_element::<String>()? {
            out.insert(h, DynDnsHost::default());
        }
        Ok(DynDnsHosts(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DynDnsHosts, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((h, e)) = map.next_entry::<String, Entry>()? {
            out.insert(h, e.0);
        }
        Ok(DynDnsHosts(out))
    }
}

/// One map value: empty, a DNS name, or the full settings.
struct Entry(DynDnsHost);

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("nothing, a DNS name, or {name, zone, ttl, allow_unsigned}")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Entry, E> {
                Ok(Entry(DynDnsHost::default()))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Entry, E> {
                Ok(Entry(DynDnsHost::default()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Entry, E> {
                Ok(Entry(DynDnsHost {
                    name: Some(v.to_string()),
                    ..DynDnsHost::default()
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entry, A::Error> {
                DynDnsHost::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Entry)
            }
        }
        d.deserialize_any(V)
    }
}

/// One DNS name hbd keeps pointing at a host.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The monitored host (heartbeat host name).
    pub host: String,
    /// FQDN, lowercase with the trailing dot.
    pub name: String,
    pub zone: String,
    pub ttl: u32,
    pub allow_unsigned: bool,
}

/// Where updates go.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// RFC 2136 UPDATE signed with TSIG, to the primary server.
    Rfc2136 { server: String, key: Key },
    /// The dyndns2 HTTP protocol of hosted providers.
    Dyndns2 {
        url: String,
        user: String,
        password: Secret,
    },
}

/// Everything the updater needs, resolved and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub targets: Vec<Target>,
    pub backend: Backend,
    pub debounce: Duration,
    pub min_interval: Duration,
    pub timeout: Duration,
}

/// The port `dns_server` uses when it names none.
pub const DNS_PORT: u16 = 53;

/// `host:port`, `[v6]:port`, a bare IPv4/IPv6 address or a host name (port 53).
pub fn server_with_port(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(s.to_string());
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, DNS_PORT).to_string());
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{port:?} is not a port number"))?;
            fqdn(host).map_err(|e| e.to_string())?;
            Ok(s.to_string())
        }
        Some(_) => Err("write IPv6 addresses with a port as [addr]:port".into()),
        None => {
            fqdn(s).map_err(|e| e.to_string())?;
            Ok(format!("{s}:{DNS_PORT}"))
        }
    }
}

fn resolve_targets(c: &DyndnsConfig) -> Result<Vec<Target>, String> {
    let default_zone = match &c.dns_zone {
        Some(z) => Some(fqdn(z).map_err(|e| format!("dns_zone: {e}"))?),
        None => None,
    };
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for (host, h) in &c.dyndnshosts.0 {
        let key = format!("dyndnshosts.{host}");
        if !hb_proto::valid_host_name(host) {
            return Err(format!(
                "dyndnshosts: {host:?} is not a valid host name (letters, digits, '.', '-', '_')"
            ));
        }
        let zone = match (&h.zone, &default_zone) {
            (Some(z), _) => fqdn(z).map_err(|e| format!("{key}.zone: {e}"))?,
            (None, Some(z)) => z.clone(),
            (None, None) => {
                return Err(format!(
                    "{key}: no zone to update; set dns_zone or {key}.zone"
                ))
            }
        };
        let name = match &h.name {
            Some(n) => fqdn(n).map_err(|e| format!("{key}.name: {e}"))?,
            None => fqdn(&format!("{host}.{zone}"))
                .map_err(|e| format!("{key}: the default name {host}.{zone}: {e}"))?,
        };
        if name != zone && !name.ends_with(&format!(".{zone}")) {
            return Err(format!("{key}: the name {name} is not in the zone {zone}"));
        }
        let ttl = h.ttl.unwrap_or(DEFAULT_TTL);
        if ttl > i32::MAX as u32 {
            return Err(format!("{key}.ttl: {ttl} is above 2147483647 (RFC 2181)"));
        }
        if c.secret.is_none() && !h.allow_unsigned {
            return Err(format!(
                "{key}: no `secret` is configured, so heartbeats are not authenticated and \
                 anyone able to send a UDP datagram with a forged source address could point \
                 {name} anywhere; set `secret` (on hbd and hbc), or accept the risk with \
                 {key}.allow_unsigned: true (see docs/dyndns.md)"
            ));
        }
        if let Some(other) = seen.insert(name.clone(), host.clone()) {
            return Err(format!(
                "{key}: the name {name} is already used by dyndnshosts.{other}"
            ));
        }
        out.push(Target {
            host: host.clone(),
            name,
            zone,
            ttl,
            allow_unsigned: h.allow_unsigned,
        });
    }
    Ok(out)
}

/// The dynamic DNS keys of hbd's config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DyndnsConfig {
    pub dyndnshosts: DynDnsHosts,
    /// Primary name server for RFC 2136 updates (`host[:port]`).
    pub dns_server: Option<String>,
    pub dns_zone: Option<String>,
    pub dns_tsig_name: Option<String>,
    /// Base64 TSIG secret (or `dns_tsig_keyfile`, a BIND key file).
    pub dns_tsig_secret: Option<Secret>,
    pub dns_tsig_keyfile: Option<PathBuf>,
    pub dns_tsig_algorithm: Option<String>,
    /// How long a new source address must stay the latest before the record follows.
    #[serde(deserialize_with = "hb_config::duration")]
    pub dns_debounce: Duration,
    /// Least time between two updates of one record.
    #[serde(deserialize_with = "hb_config::duration")]
    pub dns_min_interval: Duration,
    #[serde(deserialize_with = "hb_config::duration")]
    pub dns_timeout: Duration,
    pub dyndns2_url: Option<String>,
    pub dyndns2_user: Option<String>,
    pub dyndns2_password: Option<Secret>,
    /// hbd's `secret` (also read by hbd itself): without it, a name needs
    /// `allow_unsigned` to follow unsigned heartbeats.
    pub secret: Option<Secret>,
}

impl Default for DyndnsConfig {
    fn default() -> Self {
        DyndnsConfig {
            dyndnshosts: DynDnsHosts::default(),
            dns_server: None,
            dns_zone: None,
            dns_tsig_name: None,
            dns_tsig_secret: None,
            dns_tsig_keyfile: None,
            dns_tsig_algorithm: None,
            dns_debounce: Duration::from_secs(30),
            dns_min_interval: Duration::from_secs(60),
            dns_timeout: Duration::from_secs(3),
            dyndns2_url: None,
            dyndns2_user: None,
            dyndns2_password: None,
            secret: None,
        }
    }
}

impl DyndnsConfig {
    /// Reads the dynamic DNS keys from YAML text (other keys are left to their owners)
    /// and validates them.
    pub fn from_yaml(text: &str, path: &Path) -> Result<DyndnsConfig, hb_config::ConfigError> {
        let mut doc = hb_config::Document::new(text, path);
        let c: DyndnsConfig = doc.section()?;
        validate(&c).map_err(|m| doc.invalid(m))?;
        Ok(c)
    }
}

/// The checks `Config::validate` runs (no file access: the key file is read by
/// [`Settings::from_config`] when hbd starts).
pub fn validate(c: &DyndnsConfig) -> Result<(), String> {
    if c.dyndnshosts.0.is_empty() {
        return Ok(());
    }
    resolve_targets(c)?;
    for (key, d, max) in [
        ("dns_debounce", c.dns_debounce, Duration::from_secs(86_400)),
        (
            "dns_min_interval",
            c.dns_min_interval,
            Duration::from_secs(86_400),
        ),
        ("dns_timeout", c.dns_timeout, Duration::from_secs(60)),
    ] {
        if d > max {
            return Err(format!("{key}: {d:?} is too long; use at most {max:?}"));
        }
    }
    if c.dns_timeout < Duration::from_millis(10) {
        return Err("dns_timeout: use at least 10ms (default 3s)".into());
    }
    match (&c.dns_server, &c.dyndns2_url) {
        (Some(_), Some(_)) => Err(
            "dns_server and dyndns2_url are both set; dyndnshosts are updated through one of \
             them: remove the other"
                .into(),
        ),
        (None, None) => Err(
            "dyndnshosts: no server to update; set dns_server (RFC 2136, e.g. \
             ns1.example.org:53) or dyndns2_url"
                .into(),
        ),
        (Some(server), None) => {
            server_with_port(server).map_err(|e| format!("dns_server: {server:?}: {e}"))?;
            check_key_settings(c)
        }
        (None, Some(url)) => super::dyndns2::check_url(url)
            .map_err(|e| format!("dyndns2_url: {e}"))
            .and_then(|_| match (&c.dyndns2_user, &c.dyndns2_password) {
                (Some(u), Some(p)) if !u.is_empty() && !p.expose().is_empty() => Ok(()),
                _ => Err("dyndns2_url needs dyndns2_user and dyndns2_password".into()),
            }),
    }
}

fn check_key_settings(c: &DyndnsConfig) -> Result<(), String> {
    if let Some(a) = &c.dns_tsig_algorithm {
        Algorithm::parse(a).ok_or_else(|| {
            format!(
                "dns_tsig_algorithm: {a:?} is not supported; use one of {}",
                Algorithm::ALL.map(Algorithm::as_str).join(", ")
            )
        })?;
    }
    match (&c.dns_tsig_secret, &c.dns_tsig_keyfile) {
        (Some(_), Some(_)) => {
            Err("dns_tsig_secret and dns_tsig_keyfile are both set; keep one".into())
        }
        (None, None) => Err(
            "dns_server is set but no TSIG key: set dns_tsig_keyfile (a BIND key file), or \
             dns_tsig_name and dns_tsig_secret"
                .into(),
        ),
        (Some(secret), None) => {
            let name = c.dns_tsig_name.as_deref().ok_or(
                "dns_tsig_secret needs dns_tsig_name (the key's name as the server knows it)",
            )?;
            fqdn(name).map_err(|e| format!("dns_tsig_name: {e}"))?;
            decode_secret(secret.expose()).map_err(|e| format!("dns_tsig_secret: {e}"))?;
            Ok(())
        }
        (None, Some(_)) => {
            if let Some(n) = &c.dns_tsig_name {
                fqdn(n).map_err(|e| format!("dns_tsig_name: {e}"))?;
            }
            Ok(())
        }
    }
}

fn decode_secret(s: &str) -> Result<Vec<u8>, String> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let b = base64::engine::general_purpose::STANDARD
        .decode(&s)
        .map_err(|e| format!("not valid base64 ({e})"))?;
    if b.is_empty() {
        return Err("is empty".into());
    }
    Ok(b)
}

/// One `key "name" { algorithm ...; secret "..."; };` clause of a BIND key file.
#[derive(Debug, PartialEq)]
struct KeyClause {
    name: String,
    algorithm: Option<String>,
    secret: Option<String>,
}

/// Splits BIND configuration syntax into words, quoted strings and `{`, `}`, `;`,
/// dropping `#`, `//` and `/* */` comments.
fn tokens(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                let mut closed = false;
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        closed = true;
                        break;
                    }
                    prev = c;
                }
                if !closed {
                    return Err("a /* comment is not closed".into());
                }
            }
            '{' | '}' | ';' => out.push(c.to_string()),
            '"' => {
                let mut s = String::from("\"");
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '"' {
                        closed = true;
                        break;
                    }
                    s.push(c);
                }
                if !closed {
                    return Err("a quoted string is not closed".into());
                }
                out.push(s);
            }
            c => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || "{};\"#".contains(n) {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                out.push(s);
            }
        }
    }
    Ok(out)
}

fn unquote(t: &str) -> &str {
    t.strip_prefix('"').unwrap_or(t)
}

fn parse_key_file(text: &str) -> Result<Vec<KeyClause>, String> {
    let t = tokens(text)?;
    let mut keys = Vec::new();
    let mut i = 0;
    let at = |i: usize| t.get(i).map(String::as_str).unwrap_or("<end of file>");
    while i < t.len() {
        if t[i] != "key" {
            // Skip any other statement (e.g. a whole named.conf fragment).
            let mut depth = 0usize;
            while i < t.len() {
                match t[i].as_str() {
                    "{" => depth += 1,
                    "}" => depth = depth.saturating_sub(1),
                    ";" if depth == 0 => break,
                    _ => {}
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        let name = unquote(at(i + 1)).to_string();
        if at(i + 2) != "{" {
            return Err(format!(
                "expected {{ after key {name:?}, found {:?}",
                at(i + 2)
            ));
        }
        i += 3;
        let mut k = KeyClause {
            name,
            algorithm: None,
            secret: None,
        };
        while at(i) != "}" {
            if i >= t.len() {
                return Err(format!("key {:?} is not closed", k.name));
            }
            let (field, value, end) = (at(i), at(i + 1), at(i + 2));
            if end != ";" {
                return Err(format!(
                    "in key {:?}: expected `{field} <value>;`, found {:?} after {value:?}",
                    k.name, end
                ));
            }
            match field {
                "algorithm" => k.algorithm = Some(unquote(value).to_string()),
                "secret" => k.secret = Some(unquote(value).to_string()),
                other => return Err(format!("in key {:?}: unknown field {other:?}", k.name)),
            }
            i += 3;
        }
        if at(i + 1) != ";" {
            return Err(format!(
                "expected ; after the closing }} of key {:?}",
                k.name
            ));
        }
        i += 2;
        keys.push(k);
    }
    Ok(keys)
}

/// Reads the TSIG key from a BIND key file (as `tsig-keygen` writes it). With `want`
/// (dns_tsig_name), that key; else the only key in the file.
pub fn read_key_file(path: &Path, want: Option<&str>) -> Result<Key, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("dns_tsig_keyfile: cannot read {}: {e}", path.display()))?;
    key_from_file_text(&text, want).map_err(|e| format!("dns_tsig_keyfile {}: {e}", path.display()))
}

fn key_from_file_text(text: &str, want: Option<&str>) -> Result<Key, String> {
    let keys = parse_key_file(text)?;
    let want = want.map(fqdn).transpose().map_err(|e| e.to_string())?;
    let k = match &want {
        Some(w) => keys
            .iter()
            .find(|k| fqdn(&k.name).ok().as_ref() == Some(w))
            .ok_or_else(|| format!("no key named {w:?} (dns_tsig_name) in the file"))?,
        None => match keys.as_slice() {
            [k] => k,
            [] => return Err("no `key \"name\" { ... };` clause found".into()),
            _ => {
                return Err(
                    "holds several keys; set dns_tsig_name to the one hbd should use".into(),
                )
            }
        },
    };
    let name = fqdn(&k.name).map_err(|e| format!("key name: {e}"))?;
    let alg = k.algorithm.as_deref().unwrap_or("hmac-sha256");
    let algorithm = Algorithm::parse(alg).ok_or_else(|| {
        format!(
            "key {name}: algorithm {alg:?} is not supported; use one of {}",
            Algorithm::ALL.map(Algorithm::as_str).join(", ")
        )
    })?;
    let secret = k
        .secret
        .as_deref()
        .ok_or_else(|| format!("key {name} has no secret"))
        .and_then(|s| decode_secret(s).map_err(|e| format!("key {name}: secret {e}")))?;
    Ok(Key {
        name,
        algorithm,
        secret,
    })
}

impl Settings {
    /// Resolves the config (reading the key file); None when no dyndnshosts are set.
    pub fn from_config(c: &DyndnsConfig) -> Result<Option<Settings>, String> {
        if c.dyndnshosts.0.is_empty() {
            return Ok(None);
        }
        validate(c)?;
        let targets = resolve_targets(c)?;
        let backend = if let Some(server) = &c.dns_server {
            let server =
                server_with_port(server).map_err(|e| format!("dns_server: {server:?}: {e}"))?;
            let key = match (&c.dns_tsig_keyfile, &c.dns_tsig_secret) {
                (Some(path), _) => {
                    let key = read_key_file(path, c.dns_tsig_name.as_deref())?;
                    if let Some(a) = c.dns_tsig_algorithm.as_deref().and_then(Algorithm::parse) {
                        if a != key.algorithm {
                            return Err(format!(
                                "dns_tsig_algorithm is {} but the key in {} is {}; remove \
                                 dns_tsig_algorithm or make them agree",
                                a.as_str(),
                                path.display(),
                                key.algorithm.as_str()
                            ));
                        }
                    }
                    key
                }
                (None, Some(secret)) => Key {
                    name: fqdn(c.dns_tsig_name.as_deref().unwrap_or_default())
                        .map_err(|e| format!("dns_tsig_name: {e}"))?,
                    algorithm: c
                        .dns_tsig_algorithm
                        .as_deref()
                        .and_then(Algorithm::parse)
                        .unwrap_or(Algorithm::HmacSha256),
                    secret: decode_secret(secret.expose())
                        .map_err(|e| format!("dns_tsig_secret: {e}"))?,
                },
                (None, None) => return Err("dns_server is set but no TSIG key".into()),
            };
            Backend::Rfc2136 { server, key }
        } else {
            Backend::Dyndns2 {
                url: c.dyndns2_url.clone().unwrap_or_default(),
                user: c.dyndns2_user.clone().unwrap_or_default(),
                password: c.dyndns2_password.clone().unwrap_or_default(),
            }
        };
        Ok(Some(Settings {
            targets,
            backend,
            debounce: c.dns_debounce,
            min_interval: c.dns_min_interval,
            timeout: c.dns_timeout,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DyndnsConfig, String> {
        DyndnsConfig::from_yaml(text, Path::new("hbd.yaml")).map_err(|e| e.to_string())
    }

    const BASE: &str = "secret: s3cret\ndns_server: 127.0.0.1:5353\ndns_zone: dyn.test\n\
                        dns_tsig_name: hbd-key\ndns_tsig_secret: c2VjcmV0\n";

    #[test]
    fn list_and_map_forms() {
        let c = parse(&format!("{BASE}dyndnshosts: [web1, Db2]\n")).expect("list");
        let s = Settings::from_config(&c).expect("ok").expect("some");
        assert_eq!(s.targets[0].name, "db2.dyn.test.");
        assert_eq!(s.targets[1].name, "web1.dyn.test.");
        assert_eq!(s.targets[1].ttl, 60);
        assert_eq!(s.debounce, Duration::from_secs(30));
        let Backend::Rfc2136 { server, key } = &s.backend else {
            panic!("rfc2136")
        };
        assert_eq!(server, "127.0.0.1:5353");
        assert_eq!(key.name, "hbd-key.");
        assert_eq!(key.secret, b"secret");

        let c = parse(&format!(
            "{BASE}dyndnshosts:\n  web1:\n  web2: www.dyn.test\n  \
             web3: {{name: w3.other.test, zone: other.test, ttl: 5}}\n"
        ))
        .expect("map");
        let s = Settings::from_config(&c).expect("ok").expect("some");
        let names: Vec<_> = s
            .targets
            .iter()
            .map(|t| (&t.name[..], &t.zone[..], t.ttl))
            .collect();
        assert_eq!(
            names,
            [
                ("web1.dyn.test.", "dyn.test.", 60),
                ("www.dyn.test.", "dyn.test.", 60),
                ("w3.other.test.", "other.test.", 5)
            ]
        );
        assert_eq!(
            Settings::from_config(&parse("").expect("empty")).expect("ok"),
            None
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("dyndnshosts: [web1]\ndns_server: 127.0.0.1\ndns_zone: d.test\ndns_tsig_name: k\ndns_tsig_secret: c2VjcmV0\n",
             "allow_unsigned"),
            (&format!("{BASE}dyndnshosts: {{web1: {{name: web1.elsewhere.test}}}}\n")[..], "not in the zone"),
            (&format!("{BASE}dyndnshosts:\n  web1: {{nmae: x}}\n")[..], "unknown field `nmae`"),
            (&format!("{BASE}dyndnshosts:\n  web1: {{ttl: soon}}\n")[..], "line 7"),
            (&format!("{BASE}dyndnshosts: 5\n")[..], "dyndnshosts"),
            (&format!("{BASE}dyndnshosts: {{'a/b': {{}}}}\n")[..], "not a valid host name"),
            (&format!("{BASE}dyndnshosts: {{web1: {{name: 'a..b'}}}}\n")[..], "dyndnshosts.web1.name"),
            (&format!("{BASE}dyndnshosts: {{web1: w.dyn.test, web2: w.dyn.test}}\n")[..], "already used"),
            (&format!("{BASE}dns_tsig_algorithm: hmac-md5\ndyndnshosts: [web1]\n")[..], "dns_tsig_algorithm"),
            (&format!("{BASE}dns_timeout: 0s\ndyndnshosts: [web1]\n")[..], "dns_timeout"),
            (&format!("{BASE}dns_debounce: soon\ndyndnshosts: [web1]\n")[..], "dns_debounce"),
            (&format!("{BASE}dyndns2_url: http://x/nic/update\ndyndnshosts: [web1]\n")[..], "both set"),
            ("secret: s\ndns_zone: d.test\ndyndnshosts: [web1]\n", "no server"),
            ("secret: s\ndns_server: 'ns1:99999'\ndns_zone: d.test\ndyndnshosts: [web1]\n", "dns_server"),
            ("secret: s\ndns_server: ns1\ndns_zone: d.test\ndyndnshosts: [web1]\n", "no TSIG key"),
            ("secret: s\ndns_server: ns1\ndns_zone: d.test\ndns_tsig_secret: c2VjcmV0\ndyndnshosts: [web1]\n", "dns_tsig_name"),
            ("secret: s\ndns_server: ns1\ndns_zone: d.test\ndns_tsig_name: k\ndns_tsig_secret: '%%'\ndyndnshosts: [web1]\n", "dns_tsig_secret: not valid base64"),
            ("secret: s\ndns_server: ns1\ndyndnshosts: [web1]\n", "dns_zone"),
        ];
        for (text, want) in cases {
            let e = parse(text).expect_err(text);
            assert!(e.contains(want), "{text}\n→ {e}\n(wanted {want:?})");
        }
        // Opting in without a secret is allowed.
        parse(
            "dns_server: 127.0.0.1\ndns_zone: d.test\ndns_tsig_name: k\ndns_tsig_secret: c2VjcmV0\n\
             dyndnshosts: {web1: {allow_unsigned: true}}\n",
        )
        .expect("opt-in");
    }

    #[test]
    fn servers() {
        assert_eq!(server_with_port("10.0.0.1").as_deref(), Ok("10.0.0.1:53"));
        assert_eq!(server_with_port("::1").as_deref(), Ok("[::1]:53"));
        assert_eq!(server_with_port("[::1]:5353").as_deref(), Ok("[::1]:5353"));
        assert_eq!(
            server_with_port("ns1.example.org").as_deref(),
            Ok("ns1.example.org:53")
        );
        assert_eq!(server_with_port("ns1:54").as_deref(), Ok("ns1:54"));
        assert!(server_with_port("ns1:0").is_err());
        assert!(server_with_port("a b").is_err());
    }

    #[test]
    fn bind_key_files() {
        let text = "# made by tsig-keygen\nkey \"hbd-key\" {\n\talgorithm hmac-sha512;\n\
                    \tsecret \"c2VjcmV0\";\n};\n/* another */ key other { algorithm \
                    hmac-sha256; secret \"b3RoZXI=\"; }; // done\n";
        let k = key_from_file_text(text, Some("hbd-key")).expect("named");
        assert_eq!(
            (k.name.as_str(), k.algorithm, k.secret.as_slice()),
            ("hbd-key.", Algorithm::HmacSha512, &b"secret"[..])
        );
        let k = key_from_file_text(text, Some("OTHER.")).expect("other");
        assert_eq!(k.secret, b"other");
        assert!(key_from_file_text(text, None)
            .expect_err("ambiguous")
            .contains("dns_tsig_name"));
        let one = "key \"k\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; };";
        assert_eq!(key_from_file_text(one, None).expect("one").name, "k.");
        for (bad, why) in [
            ("", "no `key"),
            (
                "key k { algorithm hmac-md5; secret \"c2VjcmV0\"; };",
                "not supported",
            ),
            ("key k { algorithm hmac-sha256; };", "no secret"),
            (
                "key k { algorithm hmac-sha256; secret \"c2VjcmV0\" };",
                "expected",
            ),
            (
                "key k { algorithm hmac-sha256; secret \"c2VjcmV0\"; ",
                "not closed",
            ),
            ("key k { secret \"unterminated; };", "not closed"),
        ] {
            let e = key_from_file_text(bad, None).expect_err(bad);
            assert!(e.contains(why), "{bad:?} → {e}");
        }
        let e = read_key_file(Path::new("/nonexistent/k.key"), None).expect_err("missing");
        assert!(e.contains("/nonexistent/k.key"), "{e}");
    }
}
