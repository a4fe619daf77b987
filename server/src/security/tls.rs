//! `tls_cert` / `tls_key`: a PEM certificate chain and its private key turned into the
//! rustls server configuration both listeners use (the `ring` provider, TLS 1.2 and 1.3).
//! Every error names the key and the file, and says what is wrong with it.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::Config;

/// Loads `tls_cert` and `tls_key` when both are set; `None` when neither is (plain HTTP).
pub fn load(config: &Config) -> Result<Option<ServerConfig>, String> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => server_config(cert, key).map(Some),
        (None, None) => Ok(None),
        _ => {
            Err("tls_cert, tls_key: set both (certificate chain and private key) or neither".into())
        }
    }
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))
}

/// The server configuration for the certificate chain in `cert` and the key in `key`.
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, String> {
    let chain = certificates(cert, &read("tls_cert", cert)?)?;
    let private = private_key(key, &read("tls_key", key)?)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth();
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| {
            format!(
                "tls_key: {} is not a usable private key (RSA, ECDSA or Ed25519): {e}",
                key.display()
            )
        })?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        // A key that cannot tell its public half is left to the handshake.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(format!(
                "tls_key: the key in {} does not match the certificate in {} (the first certificate of the chain must be the key's)",
                key.display(),
                cert.display()
            ))
        }
        Err(e) => {
            return Err(format!(
                "tls_cert: cannot use the certificate in {} with the key in {}: {e}",
                cert.display(),
                key.display()
            ))
        }
    }
    // actix-web adds the "http/1.1" ALPN protocol itself.
    Ok(builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified))))
}

/// Every certificate of a PEM file, the server's own first.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_cert: {} is not valid PEM: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "tls_cert: {} holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\")",
            path.display()
        ));
    }
    // A certificate that does not parse as X.509 is named here rather than at the first
    // handshake.
    for (i, c) in chain.iter().enumerate() {
        if webpki_check(c).is_err() {
            return Err(format!(
                "tls_cert: certificate {} in {} is not a valid X.509 certificate",
                i + 1,
                path.display()
            ));
        }
    }
    Ok(chain)
}

fn webpki_check(c: &CertificateDer<'_>) -> Result<(), ()> {
    rustls::server::ParsedCertificate::try_from(c)
        .map(|_| ())
        .map_err(|_| ())
}

fn private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "tls_key: {} holds no private key (expected PEM \"-----BEGIN PRIVATE KEY-----\", RSA or EC)",
            path.display()
        ),
        e => format!("tls_key: {} is not a valid PEM private key: {e}", path.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_and_empty_pem_name_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let e = server_config(&cert, &key).expect_err("missing");
        assert!(
            e.starts_with("tls_cert: cannot read") && e.contains("cert.pem"),
            "{e}"
        );
        std::fs::write(&cert, "not pem at all\n").expect("write");
        let e = server_config(&cert, &key).expect_err("empty");
        assert!(
            e.contains("holds no certificate") && e.contains("cert.pem"),
            "{e}"
        );
        let bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        std::fs::write(&cert, bad).expect("write");
        let e = server_config(&cert, &key).expect_err("not x509");
        assert!(e.contains("not a valid X.509"), "{e}");
    }

    #[test]
    fn one_key_alone_is_an_error() {
        let c = Config {
            tls_cert: Some("/x/cert.pem".into()),
            ..Config::default()
        };
        assert!(load(&c).expect_err("pair").contains("set both"));
        assert!(load(&Config::default()).expect("plain").is_none());
    }
}
