//! E-mail through SMTP with lettre's blocking transport on rustls: STARTTLS (required,
//! not opportunistic), implicit TLS, or plain for a local relay; optional AUTH; several
//! recipients; a plain-text body with an HTML alternative. One connection per message:
//! notifications are rare, and a fresh connection makes no stale-pool errors.

use lettre::message::{header, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use super::channel::{Channel, SendError, SEND_TIMEOUT};
use super::config::{EmailConfig, SmtpTls};
use super::templates::Rendered;

pub struct Email {
    transport: SmtpTransport,
    from: Mailbox,
    to: Vec<Mailbox>,
    domain: String,
}

impl Email {
    pub fn new(c: EmailConfig) -> Result<Email, String> {
        let mut tls = TlsParameters::builder(c.server.clone());
        if let Some(ca) = &c.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("smtp_ca_file: cannot read {}: {e}", ca.display()))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                format!(
                    "smtp_ca_file: {} is not a PEM certificate: {e}",
                    ca.display()
                )
            })?;
            tls = tls.add_root_certificate(cert);
        }
        let params = |tls: lettre::transport::smtp::client::TlsParametersBuilder| -> Result<TlsParameters, String> {
            tls.build_rustls()
                .map_err(|e| format!("smtpserver: cannot set up TLS for {}: {e}", c.server))
        };
        let mut b = SmtpTransport::builder_dangerous(c.server.as_str())
            .port(c.port)
            .timeout(Some(SEND_TIMEOUT))
            .tls(match c.tls {
                SmtpTls::Starttls => Tls::Required(params(tls)?),
                SmtpTls::Tls => Tls::Wrapper(params(tls)?),
                SmtpTls::None => Tls::None,
            });
        if let (Some(u), Some(p)) = (&c.user, &c.pass) {
            b = b.credentials(Credentials::new(u.clone(), p.expose().to_string()));
        }
        let from: Mailbox = c
            .from
            .parse()
            .map_err(|e| format!("mailfrom: {:?} is not an address: {e}", c.from))?;
        let to =
            c.to.iter()
                .map(|a| {
                    a.parse::<Mailbox>()
                        .map_err(|e| format!("mailto: {a:?} is not an address: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
        let domain = from.email.domain().to_string();
        Ok(Email {
            transport: b.build(),
            from,
            to,
            domain,
        })
    }

    /// The message for `m`; its Message-ID comes from the notification id, so a
    /// receiver can tell a resend after a crash from a new notification.
    pub fn message(&self, m: &Rendered) -> Result<Message, SendError> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(m.title.clone())
            .message_id(Some(format!("<hbd-{}@{}>", m.id, self.domain)))
            .user_agent(concat!("hbd/", env!("CARGO_PKG_VERSION")).to_string());
        for t in &self.to {
            b = b.to(t.clone());
        }
        b.multipart(
            MultiPart::alternative()
                .singlepart(
                    lettre::message::SinglePart::builder()
                        .header(header::ContentType::TEXT_PLAIN)
                        .body(m.text.clone()),
                )
                .singlepart(
                    lettre::message::SinglePart::builder()
                        .header(header::ContentType::TEXT_HTML)
                        .body(m.html.clone()),
                ),
        )
        .map_err(|e| SendError::new(format!("cannot build the e-mail: {e}")))
    }
}

impl Channel for Email {
    fn send(&mut self, m: &Rendered) -> Result<(), SendError> {
        let msg = self.message(m)?;
        self.transport.send(&msg).map(|_| ()).map_err(|e| {
            let what = if e.is_permanent() {
                "rejected the message"
            } else if e.is_transient() {
                "deferred the message"
            } else if e.is_timeout() {
                "timed out"
            } else {
                "failed"
            };
            // lettre's text names the server and the SMTP reply, never the password.
            SendError::new(format!("SMTP server {what}: {e}"))
        })
    }
}
