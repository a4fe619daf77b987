//! Cross-site request checks, as pure functions of header values.
//!
//! A browser tells where a request comes from: `Origin` on every cross-origin request
//! (and on every WebSocket handshake and POST), `Sec-Fetch-Site` in current browsers.
//! hbd never answers a CORS preflight, so a page elsewhere can only send what needs
//! none: a form or a `text/plain` body. Mutating requests therefore must come from the
//! listener's own origin (or no browser at all) and carry a JSON (or, for heartbeats,
//! binary) body; WebSocket handshakes must come from the listener's own origin or an
//! allowed one (cross-site WebSocket hijacking: a browser sends the victim's
//! credentials with a handshake from any page).

/// Why a request was refused (the message is the JSON error the client gets).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 403.
    Forbidden(String),
    /// 415.
    MediaType(String),
}

/// `scheme://host[:port]` in canonical form: lower case, the scheme's default port
/// left out. `None` for what is not an `http`/`https` origin (such as `null`).
pub fn normalize(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/');
    let (scheme, authority) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    let authority = authority.to_ascii_lowercase();
    if authority.is_empty()
        || authority
            .bytes()
            .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@' | b' ' | b'\\') || b < 0x20)
    {
        return None;
    }
    // The port follows the last colon, unless that colon is inside an IPv6 literal.
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (authority.as_str(), None),
    };
    if host.is_empty() {
        return None;
    }
    match port {
        Some(p) if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) => None,
        Some(p) if p.trim_start_matches('0') != default_port => {
            Some(format!("{scheme}://{host}:{}", p.trim_start_matches('0')))
        }
        _ => Some(format!("{scheme}://{host}")),
    }
}

/// The listener's own origin as the client addressed it: the connection's scheme and
/// the `Host` header (or the proxy's `Forwarded`/`X-Forwarded-*` headers, which a page
/// in a browser cannot set).
pub fn own_origin(scheme: &str, host: &str) -> Option<String> {
    normalize(&format!("{scheme}://{host}"))
}

fn same(origin: &str, own: Option<&str>) -> bool {
    normalize(origin).is_some_and(|o| own == Some(o.as_str()))
}

/// The media type of a `Content-Type` value, lower case, without parameters.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Types a page elsewhere may send without a preflight (the CORS-safelisted ones).
const SIMPLE_TYPES: &[&str] = &[
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
];

/// A mutating request (POST, PUT, PATCH, DELETE).
pub struct Mutation<'a> {
    pub sec_fetch_site: Option<&'a str>,
    pub origin: Option<&'a str>,
    /// The listener's own origin (`own_origin`).
    pub own: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub has_body: bool,
    /// The endpoint takes a binary body (`POST /api/v1/heartbeat`).
    pub binary: bool,
}

/// Whether a mutating request may go on to its handler (which still checks the token).
pub fn check_mutation(m: &Mutation<'_>) -> Result<(), Refusal> {
    if m.sec_fetch_site
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("cross-site"))
    {
        return Err(Refusal::Forbidden(
            "cross-site request refused (Sec-Fetch-Site: cross-site)".into(),
        ));
    }
    if let Some(o) = m.origin {
        if !same(o, m.own) {
            return Err(Refusal::Forbidden(format!(
                "cross-origin request refused: Origin {:?} is not this server's",
                o.chars().take(100).collect::<String>()
            )));
        }
    }
    let ctype = m.content_type.map(essence);
    if let Some(t) = &ctype {
        if SIMPLE_TYPES.contains(&t.as_str()) {
            return Err(Refusal::MediaType(format!(
                "Content-Type {t} is not accepted: send application/json"
            )));
        }
    }
    if m.has_body {
        let ok = match ctype.as_deref() {
            Some("application/json") => true,
            Some("application/octet-stream") | None => m.binary,
            _ => false,
        };
        if !ok {
            return Err(Refusal::MediaType(if m.binary {
                "send the heartbeat as application/octet-stream".into()
            } else {
                "send the body as Content-Type: application/json".into()
            }));
        }
    }
    Ok(())
}

/// Whether a WebSocket handshake with this `Origin` may proceed: no `Origin` (not a
/// browser), the listener's own origin, or one of `allowed` (normalized).
pub fn check_websocket(
    origin: Option<&str>,
    own: Option<&str>,
    allowed: &[String],
) -> Result<(), Refusal> {
    let Some(o) = origin else {
        return Ok(());
    };
    let ok = same(o, own) || normalize(o).is_some_and(|n| allowed.contains(&n));
    if ok {
        Ok(())
    } else {
        Err(Refusal::Forbidden(format!(
            "WebSocket from origin {:?} refused: not this server's origin nor in ws_allowed_origins",
            o.chars().take(100).collect::<String>()
        )))
    }
}

/// The names clients may address this server by (the `Host` header), against DNS
/// rebinding: a page on a name its attacker controls, re-pointed at this server's
/// address, is same-origin with itself, so `Origin` alone proves nothing; but the browser
/// still sends the attacker's name in `Host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerNames {
    /// `server_names: ["*"]`: no check (behind a proxy that checks it).
    Any,
    /// Lower case, without a trailing dot. IP literals and `localhost` are always
    /// accepted (no DNS name is involved, so nothing can be rebound).
    Only(Vec<String>),
}

impl ServerNames {
    /// From `server_names`; when it is empty, the machine's own host names.
    pub fn new(configured: &[String], machine: &[String]) -> ServerNames {
        if configured.iter().any(|n| n.trim() == "*") {
            return ServerNames::Any;
        }
        let list = if configured.is_empty() {
            machine
        } else {
            configured
        };
        ServerNames::Only(
            list.iter()
                .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        )
    }

    /// Whether a request whose `Host` (or forwarded host) is `host` may proceed.
    pub fn check(&self, host: &str) -> Result<(), Refusal> {
        let ServerNames::Only(names) = self else {
            return Ok(());
        };
        let name = host_name(host);
        let ok = name.parse::<std::net::IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || names.contains(&name);
        if ok {
            Ok(())
        } else {
            Err(Refusal::Forbidden(format!(
                "Host {:?} is not a name of this server (DNS rebinding?); add it to server_names",
                name.chars().take(100).collect::<String>()
            )))
        }
    }
}

/// The host part of a `Host` value (`name[:port]`, `[v6]:port`), lower case, without a
/// trailing dot.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(v6, _)| v6)
    } else {
        match host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_refuse_rebound_names() {
        let machine = ["mon1".to_string()];
        let default = ServerNames::new(&[], &machine);
        for ok in [
            "127.0.0.1:50004",
            "[::1]:50004",
            "localhost:50004",
            "MON1:50004",
            "mon1.",
            "10.1.2.3",
        ] {
            assert_eq!(default.check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "evil.example:50004",
            "mon1.evil.example",
            "127.0.0.1.nip.io",
        ] {
            assert!(default.check(bad).is_err(), "{bad}");
        }
        let set = ServerNames::new(&["Mon.Example.org".into()], &machine);
        assert_eq!(set.check("mon.example.org:443"), Ok(()));
        assert!(
            set.check("mon1").is_err(),
            "the list replaces the machine's names"
        );
        assert_eq!(ServerNames::new(&["*".into()], &machine).check("x"), Ok(()));
    }

    #[test]
    fn origins_are_normalized() {
        let n = |s: &str| normalize(s);
        assert_eq!(
            n("http://Mon.Example.org").as_deref(),
            Some("http://mon.example.org")
        );
        assert_eq!(n("https://mon:443").as_deref(), Some("https://mon"));
        assert_eq!(n("http://mon:80/").as_deref(), Some("http://mon"));
        assert_eq!(n("http://mon:443").as_deref(), Some("http://mon:443"));
        assert_eq!(
            n("http://127.0.0.1:50004").as_deref(),
            Some("http://127.0.0.1:50004")
        );
        assert_eq!(n("http://[::1]:8080").as_deref(), Some("http://[::1]:8080"));
        assert_eq!(n("http://[::1]").as_deref(), Some("http://[::1]"));
        for bad in [
            "null",
            "file://",
            "ws://mon",
            "http://",
            "http://mon/path",
            "http://u@mon",
            "http://mon:x",
            "http://mon:",
        ] {
            assert_eq!(n(bad), None, "{bad}");
        }
        assert_eq!(
            own_origin("https", "mon:443").as_deref(),
            Some("https://mon")
        );
    }

    fn mutation<'a>(origin: Option<&'a str>, ctype: Option<&'a str>, body: bool) -> Mutation<'a> {
        Mutation {
            sec_fetch_site: None,
            origin,
            own: Some("http://127.0.0.1:8000"),
            content_type: ctype,
            has_body: body,
            binary: false,
        }
    }

    #[test]
    fn cross_site_mutations_are_refused() {
        assert!(check_mutation(&mutation(None, None, false)).is_ok());
        assert!(check_mutation(&mutation(Some("http://127.0.0.1:8000"), None, false)).is_ok());
        assert!(matches!(
            check_mutation(&mutation(Some("http://evil.example"), None, false)),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            check_mutation(&mutation(Some("null"), None, false)),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            check_mutation(&mutation(Some("https://127.0.0.1:8000"), None, false)),
            Err(Refusal::Forbidden(_))
        ));
        let mut m = mutation(None, None, false);
        m.sec_fetch_site = Some("cross-site");
        assert!(matches!(check_mutation(&m), Err(Refusal::Forbidden(_))));
        m.sec_fetch_site = Some("same-origin");
        assert!(check_mutation(&m).is_ok());
    }

    #[test]
    fn bodies_must_be_json_or_binary_heartbeats() {
        let ok = |c: Option<&str>, body: bool| check_mutation(&mutation(None, c, body)).is_ok();
        assert!(ok(Some("application/json"), true));
        assert!(ok(Some("Application/JSON; charset=utf-8"), true));
        assert!(!ok(Some("text/plain"), true));
        assert!(!ok(Some("text/plain;charset=UTF-8"), false), "even empty");
        assert!(!ok(Some("application/x-www-form-urlencoded"), false));
        assert!(!ok(Some("multipart/form-data; boundary=x"), true));
        assert!(!ok(None, true));
        assert!(!ok(Some("application/octet-stream"), true));
        let mut hb = mutation(None, Some("application/octet-stream"), true);
        hb.binary = true;
        assert!(check_mutation(&hb).is_ok());
        hb.content_type = None;
        assert!(
            check_mutation(&hb).is_ok(),
            "hbc-style clients send no type"
        );
        hb.content_type = Some("text/plain");
        assert!(matches!(check_mutation(&hb), Err(Refusal::MediaType(_))));
    }

    #[test]
    fn websocket_origins() {
        let own = Some("http://mon:50004");
        let allowed = vec!["https://dash.example.org".to_string()];
        assert!(check_websocket(None, own, &allowed).is_ok());
        assert!(check_websocket(Some("http://MON:50004"), own, &allowed).is_ok());
        assert!(check_websocket(Some("https://dash.example.org:443"), own, &allowed).is_ok());
        assert!(check_websocket(Some("http://mon:50005"), own, &allowed).is_err());
        assert!(check_websocket(Some("http://evil.example"), own, &[]).is_err());
        assert!(check_websocket(Some("null"), own, &[]).is_err());
    }
}
