//! TLS for `wss://` hosts (feature `tls`): rustls with the ring provider,
//! the operating system's trust store by default, extra CA certificates and
//! client certificates (mTLS) when asked. Certificate and host name checks
//! are always on; there is no way to turn them off.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// How the client checks the nodes' certificates, and which certificate it
/// shows them, for `wss://` hosts. The Go client has no TLS (W9).
///
/// ```
/// # fn demo(ca_pem: &[u8]) -> Result<(), isp_cluster::TlsError> {
/// use isp_cluster::TlsConfig;
///
/// // The operating system's trust store plus the company's own CA.
/// let tls = TlsConfig::new().add_ca_pem(ca_pem)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    os_roots: bool,
    roots: Vec<CertificateDer<'static>>,
    client_auth: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    custom: Option<Arc<ClientConfig>>,
}

impl fmt::Debug for TlsConfig {
    /// Never shows key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("os_roots", &self.os_roots)
            .field("extra_roots", &self.roots.len())
            .field("client_auth", &self.client_auth.is_some())
            .field("custom_rustls_config", &self.custom.is_some())
            .finish()
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// What is wrong with a [`TlsConfig`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM input could not be read or parsed.
    Pem {
        /// What it was meant to hold (e.g. "CA certificate", or a file).
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A PEM input held no certificate.
    NoCertificate(String),
    /// Not one trusted root: the OS store is empty or off and no CA added.
    NoRoots,
    /// rustls refused the configuration (e.g. a key that does not match).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pem { what, reason } => write!(f, "cannot read {what}: {reason}"),
            Self::NoCertificate(what) => write!(f, "{what} holds no certificate"),
            Self::NoRoots => f.write_str(
                "no trusted root certificate: the system trust store is empty or off and no CA was added",
            ),
            Self::Rustls(e) => write!(f, "invalid tls configuration: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Rustls(e) => Some(e),
            _ => None,
        }
    }
}

/// The certificates of a PEM input, at least one; `what` names it in errors.
pub(crate) fn certificates(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(what.to_owned()));
    }
    Ok(certs)
}

/// The private key of a PEM input; `what` names it in errors.
pub(crate) fn private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Pem {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

impl TlsConfig {
    /// Trusts the operating system's certificate store.
    pub fn new() -> Self {
        Self {
            os_roots: true,
            roots: Vec::new(),
            client_auth: None,
            custom: None,
        }
    }

    /// Trusts only the CA certificates added with
    /// [`add_ca_pem`](Self::add_ca_pem), not the system store.
    #[must_use]
    pub fn without_os_roots(mut self) -> Self {
        self.os_roots = false;
        self
    }

    /// Also trusts the CA certificate(s) in `pem`.
    pub fn add_ca_pem(mut self, pem: &[u8]) -> Result<Self, TlsError> {
        self.roots.extend(certificates(pem, "CA certificate")?);
        Ok(self)
    }

    /// Also trusts the CA certificate(s) in the PEM file at `path`.
    pub fn add_ca_file(self, path: impl AsRef<Path>) -> Result<Self, TlsError> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| TlsError::Pem {
            what: format!("CA file {}", path.display()),
            reason: e.to_string(),
        })?;
        let certs = certificates(&pem, &format!("CA file {}", path.display()))?;
        let mut this = self;
        this.roots.extend(certs);
        Ok(this)
    }

    /// Shows this client certificate chain and key to the nodes (mTLS).
    pub fn client_auth_pem(mut self, chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let chain = certificates(chain_pem, "client certificate chain")?;
        let key = private_key(key_pem, "client key")?;
        self.client_auth = Some((chain, Arc::new(key)));
        Ok(self)
    }

    /// Uses a rustls client configuration as it is (it must use a crypto
    /// provider and verify certificates; ALPN is set to HTTP/1.1).
    pub fn from_rustls(config: Arc<ClientConfig>) -> Self {
        Self {
            custom: Some(config),
            ..Self::new()
        }
    }

    /// The rustls configuration the connector uses. Blocking when it uses
    /// the system trust store (it reads files): call it off the actix
    /// thread.
    pub(crate) fn build(&self) -> Result<Arc<ClientConfig>, TlsError> {
        self.build_with(true)
    }

    /// Everything [`build`](Self::build) checks but the system trust store,
    /// which is not loaded: cheap, for `start()`.
    pub(crate) fn check(&self) -> Result<(), TlsError> {
        self.build_with(false).map(drop)
    }

    fn build_with(&self, load_os_roots: bool) -> Result<Arc<ClientConfig>, TlsError> {
        if let Some(custom) = &self.custom {
            let mut config = (**custom).clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            return Ok(Arc::new(config));
        }
        let mut roots = RootCertStore::empty();
        if self.os_roots && load_os_roots {
            let native = rustls_native_certs::load_native_certs();
            for error in &native.errors {
                log::warn!("system trust store: {error}");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            log::debug!("system trust store: {added} certificates, {ignored} ignored");
        }
        for root in &self.roots {
            roots.add(root.clone()).map_err(TlsError::Rustls)?;
        }
        // Unloaded, the system store may still hold roots.
        let os_roots_unknown = self.os_roots && !load_os_roots;
        if roots.is_empty() && !os_roots_unknown {
            return Err(TlsError::NoRoots);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rustls)?
            .with_root_certificates(roots);
        let mut config = match &self.client_auth {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(TlsError::Rustls)?,
            None => builder.with_no_client_auth(),
        };
        // The ETP endpoint is a WebSocket upgrade: HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// What failed in a TLS handshake, in words an operator acts on.
pub(crate) fn describe(error: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer | C::BadSignature => {
                format!("untrusted certificate ({cert:?}): its issuer is not in the trust store")
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "certificate not valid for this host name".to_owned()
            }
            C::Expired | C::ExpiredContext { .. } => "expired certificate".to_owned(),
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate not valid yet".to_owned(),
            other => format!("invalid certificate: {other:?}"),
        },
        other => format!("tls handshake failed: {other}"),
    }
}
