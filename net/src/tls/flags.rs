//! etcd's security flags, for the client port and the peer port, and what they mean for one
//! side ([`TlsInfo`], etcd's `transport.TLSInfo`).

use clap::{ArgAction, Args};
use std::path::PathBuf;

/// etcd 3.4's security flags. The booleans take etcd's `--flag=true` form as well as `--flag`.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsFlags {
    /// Path to the client server TLS cert file.
    #[arg(long, env = "ETCD_CERT_FILE")]
    pub cert_file: Option<PathBuf>,
    /// Path to the client server TLS key file.
    #[arg(long, env = "ETCD_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Enable client cert authentication.
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH", action = ArgAction::Set, num_args = 0..=1,
          default_value_t = false, default_missing_value = "true")]
    pub client_cert_auth: bool,
    /// Path to the client server TLS trusted CA cert file.
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<PathBuf>,
    /// Client TLS using generated certificates.
    #[arg(long, env = "ETCD_AUTO_TLS", action = ArgAction::Set, num_args = 0..=1,
          default_value_t = false, default_missing_value = "true")]
    pub auto_tls: bool,
    /// Path to the peer server TLS cert file.
    #[arg(long, env = "ETCD_PEER_CERT_FILE")]
    pub peer_cert_file: Option<PathBuf>,
    /// Path to the peer server TLS key file.
    #[arg(long, env = "ETCD_PEER_KEY_FILE")]
    pub peer_key_file: Option<PathBuf>,
    /// Enable peer client cert authentication.
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_AUTH", action = ArgAction::Set, num_args = 0..=1,
          default_value_t = false, default_missing_value = "true")]
    pub peer_client_cert_auth: bool,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE")]
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// Peer TLS using generated certificates.
    #[arg(long, env = "ETCD_PEER_AUTO_TLS", action = ArgAction::Set, num_args = 0..=1,
          default_value_t = false, default_missing_value = "true")]
    pub peer_auto_tls: bool,
    /// Allowed CN for inter peer authentication.
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_CN")]
    pub peer_cert_allowed_cn: Option<String>,
    /// Comma-separated list of supported TLS cipher suites between client/server and peers
    /// (empty: rustls's defaults).
    #[arg(long, env = "ETCD_CIPHER_SUITES", default_value = "")]
    pub cipher_suites: String,
}

/// One side's TLS: the certificate it presents, whom it trusts, and what it checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// The certificate (chain) this member presents, PEM.
    pub cert_file: Option<PathBuf>,
    /// Its private key, PEM.
    pub key_file: Option<PathBuf>,
    /// The CA bundle client certificates (and, when dialing, servers) must chain to.
    pub trusted_ca_file: Option<PathBuf>,
    /// Demand a verified client certificate.
    pub client_cert_auth: bool,
    /// The Common Name the other side's certificate must have, if any.
    pub allowed_cn: Option<String>,
    /// Generate a self-signed certificate (`--auto-tls`); the other side is then not verified.
    pub auto: bool,
}

impl TlsInfo {
    /// No certificate given (etcd's `TLSInfo.Empty`).
    pub fn is_empty(&self) -> bool {
        self.cert_file.is_none() && self.key_file.is_none()
    }
}

impl TlsFlags {
    /// The client port's TLS.
    pub fn client(&self) -> TlsInfo {
        TlsInfo {
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            trusted_ca_file: self.trusted_ca_file.clone(),
            client_cert_auth: self.client_cert_auth,
            allowed_cn: None,
            auto: self.auto_tls,
        }
    }

    /// The peer port's TLS (also what this member presents when it dials a peer).
    pub fn peer(&self) -> TlsInfo {
        TlsInfo {
            cert_file: self.peer_cert_file.clone(),
            key_file: self.peer_key_file.clone(),
            trusted_ca_file: self.peer_trusted_ca_file.clone(),
            client_cert_auth: self.peer_client_cert_auth,
            allowed_cn: self.peer_cert_allowed_cn.clone().filter(|cn| !cn.is_empty()),
            auto: self.peer_auto_tls,
        }
    }

    /// The cipher suite names given, in order.
    pub fn cipher_suites(&self) -> Vec<String> {
        let names = self.cipher_suites.split(',').map(str::trim).filter(|s| !s.is_empty());
        names.map(str::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        tls: TlsFlags,
    }

    fn parse(args: &[&str]) -> TlsFlags {
        Flags::parse_from(std::iter::once("stead").chain(args.iter().copied())).tls
    }

    #[test]
    fn booleans_take_etcds_forms_and_sides_get_their_flags() {
        assert!(parse(&["--client-cert-auth"]).client_cert_auth);
        assert!(parse(&["--client-cert-auth=true"]).client_cert_auth);
        assert!(!parse(&["--client-cert-auth=false"]).client_cert_auth);
        assert!(!parse(&[]).client_cert_auth);
        let flags = parse(&[
            "--cert-file=c.pem",
            "--key-file=k.pem",
            "--peer-cert-file=pc.pem",
            "--peer-key-file=pk.pem",
            "--peer-trusted-ca-file=ca.pem",
            "--peer-client-cert-auth",
            "--peer-cert-allowed-cn=member",
            "--cipher-suites=TLS_A, TLS_B",
        ]);
        let client = flags.client();
        assert_eq!(client.cert_file, Some(PathBuf::from("c.pem")));
        assert!(client.allowed_cn.is_none() && !client.client_cert_auth);
        let peer = flags.peer();
        assert_eq!(peer.key_file, Some(PathBuf::from("pk.pem")));
        assert_eq!(peer.trusted_ca_file, Some(PathBuf::from("ca.pem")));
        assert!(peer.client_cert_auth && peer.allowed_cn.as_deref() == Some("member"));
        assert_eq!(flags.cipher_suites(), ["TLS_A", "TLS_B"]);
        assert!(TlsInfo::default().is_empty() && !peer.is_empty());
    }
}
