//! Checks on the other side's certificate beyond rustls's chain verification:
//! `--peer-cert-allowed-cn` (the certificate's Common Name must be the one allowed, on both the
//! accepting and the dialing side, as etcd checks it) and the self-signed certificates of
//! `--peer-auto-tls`, which the dialing side accepts without a chain (etcd's
//! `InsecureSkipVerify` for self-signed certificates; signatures are still checked).

use super::files::common_name;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use std::sync::Arc;

/// Refuses a certificate whose Common Name is not `allowed`, saying so in the log.
fn check_cn(cert: &CertificateDer<'_>, allowed: &str, side: &str) -> Result<(), Error> {
    let name = common_name(cert).unwrap_or_default();
    if name == allowed {
        return Ok(());
    }
    tracing::warn!(
        common_name = %name,
        allowed = %allowed,
        "refused a {side} certificate: its CN is not the one --peer-cert-allowed-cn allows"
    );
    Err(Error::General(format!("certificate CN {name:?} is not the allowed CN {allowed:?}")))
}

/// A client-certificate verifier that also demands the allowed Common Name.
#[derive(Debug)]
pub struct ClientWithCn {
    /// The chain verification.
    pub inner: Arc<dyn ClientCertVerifier>,
    /// The Common Name allowed.
    pub allowed: String,
}

impl ClientCertVerifier for ClientWithCn {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        check_cn(end_entity, &self.allowed, "peer's client")?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// How a dialing member checks the server it reached.
#[derive(Debug)]
pub enum ServerCheck {
    /// Chain and name verification (rustls's), then the allowed Common Name if any.
    Verified {
        /// The chain and name verification.
        inner: Arc<dyn ServerCertVerifier>,
        /// The Common Name allowed, if restricted.
        allowed: Option<String>,
    },
    /// Self-signed peers (auto TLS): any certificate, as long as the handshake signatures
    /// verify with its key.
    SelfSigned(Arc<CryptoProvider>),
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self {
            ServerCheck::Verified { inner, allowed } => {
                let verified =
                    inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
                if let Some(allowed) = allowed {
                    check_cn(end_entity, allowed, "peer's server")?;
                }
                Ok(verified)
            }
            ServerCheck::SelfSigned(_) => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        match self {
            ServerCheck::Verified { inner, .. } => inner.verify_tls12_signature(message, cert, dss),
            ServerCheck::SelfSigned(provider) => verify_tls12_signature(
                message,
                cert,
                dss,
                &provider.signature_verification_algorithms,
            ),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        match self {
            ServerCheck::Verified { inner, .. } => inner.verify_tls13_signature(message, cert, dss),
            ServerCheck::SelfSigned(provider) => verify_tls13_signature(
                message,
                cert,
                dss,
                &provider.signature_verification_algorithms,
            ),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        match self {
            ServerCheck::Verified { inner, .. } => inner.supported_verify_schemes(),
            ServerCheck::SelfSigned(provider) => {
                provider.signature_verification_algorithms.supported_schemes()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn only_the_allowed_common_name_passes() {
        assert!(check_cn(&cert("member"), "member", "peer's client").is_ok());
        let refused = check_cn(&cert("intruder"), "member", "peer's client").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "unexpected error: certificate CN \"intruder\" is not the allowed CN \"member\""
        );
    }
}
