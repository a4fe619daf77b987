//! Test certificates (a CA and a server certificate for 127.0.0.1), HTTPS and WSS
//! clients trusting a given CA, plain requests with chosen headers, and a log capture.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tungstenite::client::IntoClientRequest;

/// A CA, and a server certificate for 127.0.0.1 and localhost signed by it.
pub struct TestCert {
    pub ca_pem: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA")
}

/// Writes `server.pem` (the chain: server certificate, then the CA) and `server.key`.
pub fn test_cert(dir: &Path) -> TestCert {
    use rcgen::{CertificateParams, DnType, KeyPair};
    let ca = ca("hbd security tests CA");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let cert = params.signed_by(&key, &ca).expect("server certificate");
    let out = TestCert {
        ca_pem: ca.pem(),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&out.cert, format!("{}{}", cert.pem(), ca.pem())).expect("write chain");
    std::fs::write(&out.key, key.serialize_pem()).expect("write key");
    out
}

/// The PEM of a CA that signed nothing hbd holds.
pub fn other_ca_pem() -> String {
    ca("some other CA").pem()
}

/// A PEM private key that belongs to no certificate.
pub fn stray_key_pem() -> String {
    rcgen::KeyPair::generate().expect("key").serialize_pem()
}

/// A rustls client configuration trusting only `ca_pem`.
pub fn client_tls(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("CA PEM")).expect("add CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// An HTTPS agent trusting only `ca_pem`.
pub fn https_agent(ca_pem: &str) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .tls_config(client_tls(ca_pem))
        .timeout(Duration::from_secs(10))
        .build()
}

/// A response's status, headers of interest and body (errors included).
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

fn answer(r: ureq::Response) -> Answer {
    let status = r.status();
    let headers = r
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = r.header(&n).unwrap_or("").to_string();
            (n, v)
        })
        .collect();
    Answer {
        status,
        headers,
        body: r.into_string().unwrap_or_default(),
    }
}

/// Sends a request with `headers` and an optional body through `agent`.
pub fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Answer, String> {
    let mut req = agent.request(method, url);
    for (n, v) in headers {
        req = req.set(n, v);
    }
    let res = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    match res {
        Ok(r) | Err(ureq::Error::Status(_, r)) => Ok(answer(r)),
        Err(ureq::Error::Transport(t)) => Err(t.to_string()),
    }
}

/// `send` over plain HTTP, which must get an answer.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Answer {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    send(&agent, method, url, headers, body).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// `Authorization: Basic ...` for `user` and `password`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

pub type Ws<S> = tungstenite::WebSocket<S>;

/// A WebSocket handshake with `headers` over `stream`; the first message on success,
/// the refusal's status otherwise.
pub fn ws_handshake<S: std::io::Read + std::io::Write>(
    stream: S,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<(Ws<S>, serde_json::Value), u16> {
    let mut req = url.into_client_request().expect("request");
    for (n, v) in headers {
        req.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(n.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    match tungstenite::client(req, stream) {
        Ok((mut ws, _)) => {
            let first = loop {
                match ws.read().expect("read") {
                    tungstenite::Message::Text(t) => break serde_json::from_str(&t).expect("json"),
                    tungstenite::Message::Close(c) => panic!("closed: {c:?}"),
                    _ => {}
                }
            };
            Ok((ws, first))
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            Err(r.status().as_u16())
        }
        Err(e) => panic!("WebSocket handshake with {url}: {e}"),
    }
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// A plain WebSocket to `addr` (`path` such as `/` or `/ws`).
pub fn ws(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(Ws<TcpStream>, serde_json::Value), u16> {
    ws_handshake(tcp(addr), &format!("ws://{addr}{path}"), headers)
}

pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `addr` verified against `ca_pem`, handshake done (or its error).
pub fn tls_connect(addr: SocketAddr, ca_pem: &str) -> Result<TlsStream, std::io::Error> {
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(client_tls(ca_pem), name).expect("client");
    let mut s = rustls::StreamOwned::new(conn, tcp(addr));
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// A WebSocket over TLS to `addr`.
pub fn wss(
    addr: SocketAddr,
    ca_pem: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(Ws<TlsStream>, serde_json::Value), u16> {
    let s = tls_connect(addr, ca_pem).expect("TLS handshake");
    ws_handshake(s, &format!("wss://{addr}{path}"), headers)
}

/// Everything hbd logs in this test process (each test runs in its own process).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn install() -> LogCapture {
        let cap = LogCapture::default();
        let writer = cap.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        cap
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
