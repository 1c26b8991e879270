//! `--auto-tls` and `--peer-auto-tls`: a self-signed certificate for the hosts a member listens
//! on, made once and kept in the data dir (`fixtures/client` or `fixtures/peer`, as etcd keeps
//! it), valid for a year, reused on every later start.

use super::flags::TlsInfo;
use std::path::Path;

/// The self-signed certificate in `dir` (made now if it is not there yet) for `hosts`.
pub fn self_signed(dir: &Path, hosts: &[String]) -> Result<TlsInfo, String> {
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    let info = TlsInfo {
        cert_file: Some(cert_file.clone()),
        key_file: Some(key_file.clone()),
        auto: true,
        ..TlsInfo::default()
    };
    if cert_file.exists() && key_file.exists() {
        return Ok(info);
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let fail = |e: rcgen::Error| format!("cannot make a self-signed certificate: {e}");
    let mut params = rcgen::CertificateParams::new(hosts.to_vec()).map_err(fail)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "etcd");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(365);
    params.key_usages =
        vec![rcgen::KeyUsagePurpose::DigitalSignature, rcgen::KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    write_private(&key_file, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_file, cert.pem()).map_err(|e| format!("{}: {e}", cert_file.display()))?;
    tracing::info!(dir = %dir.display(), "made a self-signed certificate");
    Ok(info)
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(bytes).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_made_once_and_loads() {
        let dir = std::env::temp_dir().join(format!("stead-auto-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let info = self_signed(&dir, &["127.0.0.1".into(), "localhost".into()]).unwrap();
        let cert = info.cert_file.clone().unwrap();
        let made = std::fs::read(&cert).unwrap();
        let again = self_signed(&dir, &["127.0.0.1".into()]).unwrap();
        assert_eq!(again, info);
        assert_eq!(std::fs::read(&cert).unwrap(), made, "kept, not made again");
        let provider = super::super::suites::provider(&[]).unwrap();
        let key = info.key_file.unwrap();
        assert!(super::super::files::certified_key(&cert, &key, &provider).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
