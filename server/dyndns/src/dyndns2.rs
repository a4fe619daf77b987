//! The dyndns2 HTTP protocol of hosted DNS providers:
//! `GET /nic/update?hostname=<name>&myip=<addr>` with basic auth, answered by a text
//! line (`good <ip>`, `nochg <ip>`, `badauth`, `nohost`, ...).

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;

use super::config::Target;
use super::Failure;

/// Checks `dyndns2_url`: https, or plain http to this machine only (basic auth would
/// otherwise cross the network in clear text).
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = if let Some(r) = url.strip_prefix("https://") {
        r
    } else if let Some(r) = url.strip_prefix("http://") {
        let host = r.split(['/', '?']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
            return Err(format!(
                "{url:?}: plain http would send dyndns2_password in clear text; use https:// \
                 (http:// is accepted for localhost only)"
            ));
        }
        r
    } else {
        return Err(format!("{url:?} is not an http(s):// URL"));
    };
    if rest.is_empty() || rest.starts_with('/') || url.chars().any(char::is_whitespace) {
        return Err(format!("{url:?} has no host or contains spaces"));
    }
    Ok(())
}

/// A dyndns2 provider.
pub struct Client {
    url: String,
    auth: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(url: String, user: &str, password: &str, timeout: Duration) -> Client {
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let agent = ureq::AgentBuilder::new()
            .timeout(timeout)
            .user_agent(concat!("hbd/", env!("CARGO_PKG_VERSION")))
            .build();
        Client { url, auth, agent }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Points `t.name` at `addr`. Ok: the provider's answer (`good`, `nochg`).
    pub fn update(&self, t: &Target, addr: IpAddr) -> Result<String, Failure> {
        let hostname = t.name.trim_end_matches('.');
        let result = self
            .agent
            .get(&self.url)
            .query("hostname", hostname)
            .query("myip", &addr.to_string())
            .set("Authorization", &self.auth)
            .call();
        let (status, body) = match result {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(ureq::Error::Transport(e)) => {
                return Err(Failure {
                    code: "UNREACHABLE".into(),
                    detail: format!("{}: {e}", self.url),
                })
            }
        };
        interpret(status, &body, &self.url, hostname)
    }
}

/// The provider's answer as a result (codes from the dyndns2 specification).
fn interpret(status: u16, body: &str, url: &str, hostname: &str) -> Result<String, Failure> {
    let word = body.split_whitespace().next().unwrap_or("");
    let fail = |detail: String| Failure {
        code: if word.is_empty() {
            format!("HTTP{status}")
        } else {
            word.chars().take(32).collect()
        },
        detail,
    };
    match word {
        "good" | "nochg" if status == 200 => Ok(word.to_string()),
        "badauth" => Err(fail(format!(
            "{url} did not accept dyndns2_user/dyndns2_password"
        ))),
        "notfqdn" | "nohost" => Err(fail(format!(
            "{url} has no host {hostname} in this account"
        ))),
        "numhost" => Err(fail(format!("{url}: too many hosts in one request"))),
        "abuse" => Err(fail(format!("{url} blocked {hostname} for abuse"))),
        "badagent" => Err(fail(format!("{url} refuses hbd's user agent"))),
        "!donator" => Err(fail(format!("{url}: this needs a paid account"))),
        "dnserr" | "911" => Err(fail(format!("{url} has a problem on its side; retrying"))),
        _ => {
            let text: String = body.chars().take(200).collect();
            Err(fail(format!(
                "{url} answered HTTP {status}: {:?}",
                text.trim()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    #[test]
    fn urls() {
        check_url("https://members.dyndns.org/nic/update").expect("https");
        check_url("http://127.0.0.1:8080/nic/update").expect("local http");
        for bad in [
            "http://dyn.example.com/nic/update",
            "ftp://x/",
            "https://",
            "https://a b/",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers() {
        assert_eq!(
            interpret(200, "good 10.0.0.1\n", "u", "h").as_deref(),
            Ok("good")
        );
        assert_eq!(
            interpret(200, "nochg 10.0.0.1", "u", "h").as_deref(),
            Ok("nochg")
        );
        let e = interpret(200, "badauth", "u", "h").expect_err("auth");
        assert_eq!(e.code, "badauth");
        assert!(e.detail.contains("dyndns2_user"));
        let e = interpret(401, "", "u", "h").expect_err("401");
        assert_eq!(e.code, "HTTP401");
        assert_eq!(
            interpret(200, "nohost", "u", "h").expect_err("nohost").code,
            "nohost"
        );
    }

    /// A stand-in provider checking the request against the dyndns2 specification:
    /// GET, path, query `hostname`/`myip`, basic auth, a user agent.
    #[test]
    fn request_follows_the_protocol() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/nic/update", l.local_addr().expect("addr"));
        let server = std::thread::spawn(move || {
            let (s, _) = l.accept().expect("accept");
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                r.read_line(&mut line).expect("read");
                if line.trim().is_empty() {
                    break;
                }
                lines.push(line.trim().to_string());
            }
            let mut s = s;
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\ngood 127.0.0.3")
                .expect("write");
            lines
        });
        let c = Client::new(url, "user", "pa:ss", Duration::from_secs(5));
        let t = Target {
            host: "web1".into(),
            name: "web1.dyn.example.".into(),
            zone: "dyn.example.".into(),
            ttl: 60,
            allow_unsigned: false,
        };
        let got = c.update(&t, "127.0.0.3".parse().expect("ip"));
        let lines = server.join().expect("server");
        assert_eq!(got.as_deref(), Ok("good"));
        assert_eq!(
            lines[0],
            "GET /nic/update?hostname=web1.dyn.example&myip=127.0.0.3 HTTP/1.1"
        );
        let auth = base64::engine::general_purpose::STANDARD.encode("user:pa:ss");
        assert!(
            lines
                .iter()
                .any(|l| l.eq_ignore_ascii_case(&format!("authorization: Basic {auth}"))),
            "{lines:?}"
        );
        assert!(lines
            .iter()
            .any(|l| l.to_ascii_lowercase().starts_with("user-agent: hbd/")));
    }
}
