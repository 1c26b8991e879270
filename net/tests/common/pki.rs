//! Test certificates, made fresh by every test run with rcgen (no private key is committed):
//! a CA, and certificates it signs for members (server and client use, SAN 127.0.0.1) and
//! clients (client use, the user name as Common Name).

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// A certificate authority writing what it issues into `dir`.
pub struct Ca {
    /// The CA's own certificate (what the other side trusts).
    pub cert: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

/// What a certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// A member: server and client authentication, SAN 127.0.0.1 and localhost.
    Member,
    /// A client: client authentication only.
    Client,
}

impl Ca {
    /// A new CA named `name`, its certificate written to `dir/<name>.pem`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        std::fs::create_dir_all(dir).expect("a certificate dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("a CA certificate");
        let cert = dir.join(format!("{name}.pem"));
        std::fs::write(&cert, issuer.pem()).expect("CA written");
        Ca { cert, issuer, dir: dir.to_path_buf() }
    }

    /// Issues a certificate with Common Name `cn`, written to `dir/<stem>.pem` and
    /// `dir/<stem>-key.pem`.
    pub fn issue(&self, stem: &str, cn: &str, usage: Usage) -> Issued {
        self.issue_valid(stem, cn, usage, None)
    }

    /// Like [`Ca::issue`], valid only until `not_after` (to make expired certificates).
    pub fn issue_valid(
        &self,
        stem: &str,
        cn: &str,
        usage: Usage,
        not_after: Option<time::OffsetDateTime>,
    ) -> Issued {
        let sans = match usage {
            Usage::Member => vec!["127.0.0.1".to_string(), "localhost".to_string()],
            Usage::Client => Vec::new(),
        };
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages =
            vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = match usage {
            Usage::Member => {
                vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]
            }
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        if let Some(not_after) = not_after {
            params.not_before = not_after - time::Duration::days(30);
            params.not_after = not_after;
        }
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.issuer).expect("a certificate");
        let issued = Issued {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}-key.pem")),
        };
        std::fs::write(&issued.cert, cert.pem()).expect("certificate written");
        std::fs::write(&issued.key, key.serialize_pem()).expect("key written");
        issued
    }
}
