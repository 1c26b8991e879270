//! Certificates and keys from PEM files, and the certificate a member presents, re-read when
//! its files change so that rotation needs no restart (etcd re-reads them per handshake; stead
//! reads them per handshake too, but parses them again only when their bytes changed).

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where Debian (and Go, on Linux) keeps the system's trusted CAs.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The certificates in a PEM file, in order.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| format!("{}: no usable PEM private key: {e}", path.display()))
}

/// The CAs in `file`, or the system's when no file is given.
pub fn read_roots(file: Option<&Path>) -> Result<RootCertStore, String> {
    let path = file.unwrap_or(Path::new(SYSTEM_ROOTS));
    let mut roots = RootCertStore::empty();
    let certs = match read_certs(path) {
        Ok(certs) => certs,
        Err(_) if file.is_none() => Vec::new(),
        Err(error) => return Err(error),
    };
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The Common Name of a certificate's subject, if it has one.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let name = parsed.subject().iter_common_name().next()?;
    name.as_str().ok().map(str::to_string)
}

/// Refuses a certificate that is not valid now, saying when it was or will be.
fn check_validity(cert: &CertificateDer<'_>, path: &Path) -> Result<(), String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("{}: not an X.509 certificate: {e}", path.display()))?;
    let validity = parsed.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now > validity.not_after {
        return Err(format!(
            "{}: the certificate expired at {}",
            path.display(),
            validity.not_after
        ));
    }
    if now < validity.not_before {
        let from = validity.not_before;
        return Err(format!("{}: the certificate is not valid before {from}", path.display()));
    }
    Ok(())
}

/// A certificate chain and its key, checked to belong together and to be valid now.
pub fn certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let certs = read_certs(cert_file)?;
    check_validity(&certs[0], cert_file)?;
    let key = read_key(key_file)?;
    CertifiedKey::from_der(certs, key, provider).map_err(|e| {
        format!(
            "{} and {}: the key does not fit the certificate: {e}",
            key_file.display(),
            cert_file.display()
        )
    })
}

/// One version of the files: their bytes (empty if unreadable). Comparing bytes, not sizes and
/// modification times, sees every change, even two writes within one clock tick.
type Stamp = [Vec<u8>; 2];

fn stamp(files: [&Path; 2]) -> Stamp {
    files.map(|file| std::fs::read(file).unwrap_or_default())
}

/// The certificate this member presents, re-read when its files change. A change that does not
/// load (a half-written file, a key that does not fit) is logged and the last good certificate
/// stays in use; it is tried again at the next handshake.
#[derive(Debug)]
pub struct Presented {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<(Stamp, Arc<CertifiedKey>)>,
}

impl Presented {
    /// Loads the certificate now: a missing, unreadable, expired or mismatched file is an error.
    pub fn load(
        cert_file: &Path,
        key_file: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<Presented, String> {
        let stamp = stamp([cert_file, key_file]);
        let key = certified_key(cert_file, key_file, &provider)?;
        Ok(Presented {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            provider,
            current: Mutex::new((stamp, Arc::new(key))),
        })
    }

    /// The certificate to present now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let now = stamp([&self.cert_file, &self.key_file]);
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.0 != now {
            match certified_key(&self.cert_file, &self.key_file, &self.provider) {
                Ok(key) => {
                    tracing::info!(cert = %self.cert_file.display(), "reloaded the certificate");
                    *current = (now, Arc::new(key));
                }
                Err(error) => {
                    tracing::warn!(%error, "the certificate changed but does not load; keeping the old one");
                }
            }
        }
        current.1.clone()
    }
}

impl rustls::server::ResolvesServerCert for Presented {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl rustls::client::ResolvesClientCert for Presented {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("stead-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(super::super::suites::provider(&[]).unwrap())
    }

    /// A self-signed certificate and key in `dir`.
    fn made(dir: &Path) -> (PathBuf, PathBuf) {
        let info = super::super::auto::self_signed(dir, &["127.0.0.1".into()]).unwrap();
        (info.cert_file.unwrap(), info.key_file.unwrap())
    }

    #[test]
    fn missing_foreign_and_mismatched_files_are_clear_errors() {
        let dir = temp("bad");
        let (cert, key) = made(&dir.join("one"));
        let (_, other_key) = made(&dir.join("two"));
        let missing = certified_key(&dir.join("nope.pem"), &key, &provider()).unwrap_err();
        assert!(missing.contains("nope.pem") && missing.contains("No such file"), "{missing}");
        let not_pem = dir.join("junk.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let junk = certified_key(&not_pem, &key, &provider()).unwrap_err();
        assert!(junk.contains("no certificate in the file"), "{junk}");
        let mismatch = certified_key(&cert, &other_key, &provider()).unwrap_err();
        assert!(mismatch.contains("the key does not fit the certificate"), "{mismatch}");
        assert!(read_key(&cert).unwrap_err().contains("no usable PEM private key"));
        assert!(certified_key(&cert, &key, &provider()).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_changed_certificate_is_presented_and_a_broken_change_is_not() {
        let dir = temp("reload");
        let (cert, key) = made(&dir.join("served"));
        let presented = Presented::load(&cert, &key, provider()).unwrap();
        let first = presented.current().cert[0].clone();
        assert_eq!(presented.current().cert[0], first, "unchanged files, same certificate");

        let (new_cert, new_key) = made(&dir.join("next"));
        std::fs::copy(&new_key, &key).unwrap();
        std::fs::copy(&new_cert, &cert).unwrap();
        let second = presented.current().cert[0].clone();
        assert_ne!(second, first, "the rotated certificate is presented");
        assert_eq!(second, read_certs(&new_cert).unwrap()[0]);

        std::fs::write(&cert, "half-written").unwrap();
        assert_eq!(presented.current().cert[0], second, "a broken change keeps the last good one");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_common_name_is_read_from_the_subject() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()).as_deref(), Some("alice"));
        let anonymous = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut anonymous = anonymous;
        anonymous.distinguished_name = rcgen::DistinguishedName::new();
        let cert = anonymous.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()), None);
    }
}
