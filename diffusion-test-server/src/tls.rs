//! TLS for `wss://`: a certificate and key in PEM, a self-signed one made with rcgen for
//! tests, and the rustls acceptor (ring provider) built from them.

use std::fmt;

/// A server certificate chain and its private key, both PEM. `Debug` hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    /// The certificate chain, leaf first (PEM `CERTIFICATE` blocks). Clients trust it by
    /// adding it to their root store.
    pub cert_pem: String,
    /// The private key (PEM, PKCS#8, SEC1 or PKCS#1).
    pub key_pem: String,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_pem", &format!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl TlsIdentity {
    /// The first certificate of [`TlsIdentity::cert_pem`] in DER, for a client's root
    /// store (`rustls::RootCertStore::add`). Empty when the PEM holds no certificate, which
    /// a root store refuses.
    #[cfg(feature = "tls")]
    pub fn certificate_der(&self) -> rustls::pki_types::CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| rustls::pki_types::CertificateDer::from(Vec::new()))
    }
}

/// A fresh self-signed certificate for `hosts` (DNS names or IP literals, e.g.
/// `["localhost", "127.0.0.1"]`), for `wss://` tests: the client trusts
/// [`TlsIdentity::certificate_der`] (or [`TlsIdentity::cert_pem`]) as a root.
///
/// # Panics
///
/// When a host is neither an IP literal nor a valid DNS name (see [`try_self_signed`]).
#[cfg(feature = "tls")]
pub fn self_signed(hosts: &[&str]) -> TlsIdentity {
    match try_self_signed(hosts) {
        Ok(identity) => identity,
        Err(e) => panic!("self-signed certificate for {hosts:?}: {e}"),
    }
}

/// [`self_signed`], with an error instead of a panic for a host name rcgen refuses.
#[cfg(feature = "tls")]
pub fn try_self_signed(hosts: &[&str]) -> std::io::Result<TlsIdentity> {
    let names: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
    let key = rcgen::generate_simple_self_signed(names)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    Ok(TlsIdentity {
        cert_pem: key.cert.pem(),
        key_pem: key.signing_key.serialize_pem(),
    })
}

/// The acceptor for `identity`, with the ring provider chosen explicitly so that no
/// process-wide default provider is needed.
#[cfg(feature = "tls")]
pub(crate) fn acceptor(identity: &TlsIdentity) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{Error, ErrorKind};
    use std::sync::Arc;

    let invalid =
        |what: &str, e: &dyn fmt::Display| Error::new(ErrorKind::InvalidInput, format!("TLS {what}: {e}"));
    let certs = CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("certificate PEM", &e))?;
    if certs.is_empty() {
        return Err(invalid("certificate PEM", &"no CERTIFICATE block"));
    }
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
        .map_err(|e| invalid("private key PEM", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("protocol versions", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("certificate and key", &e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
