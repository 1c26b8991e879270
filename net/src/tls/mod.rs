//! TLS on the client and peer ports, set up as etcd 3.4 sets it up, with rustls (no OpenSSL).
//!
//! [`flags`] reads etcd's security flags into one [`TlsInfo`] per side. From a `TlsInfo`,
//! [`Side`] builds what the listeners accept with and what a member dials its peers with:
//! TLS 1.2 at least, `--cipher-suites` applied ([`suites`]), the presented certificate re-read
//! when its files change ([`files`]), client certificates demanded and verified against
//! `--trusted-ca-file` when `--client-cert-auth` or a trusted CA is given (etcd's rule), the
//! allowed CN and self-signed peers handled by [`verify`], and `--auto-tls` certificates made
//! by [`auto`]. Every problem with the files is an error at start-up, never a fallback to
//! plaintext.

#[cfg(not(madsim))]
pub mod auto;
#[cfg(not(madsim))]
pub mod files;
pub mod flags;
#[cfg(not(madsim))]
pub mod suites;
#[cfg(not(madsim))]
pub mod verify;

pub use flags::{TlsFlags, TlsInfo};

#[cfg(not(madsim))]
pub use side::{client_connector, host_of, prepare, Side};

#[cfg(not(madsim))]
mod side {
    use super::flags::TlsInfo;
    use super::{auto, files, suites, verify};
    use rustls::client::WebPkiServerVerifier;
    use rustls::server::WebPkiClientVerifier;
    use rustls::version::{TLS12, TLS13};
    use rustls::{ClientConfig, ServerConfig};
    use std::path::Path;
    use std::sync::Arc;

    /// One side's TLS, ready: how its listeners accept and how it dials.
    #[derive(Clone)]
    pub struct Side {
        /// Accepts connections on this side's `https://` listeners.
        pub acceptor: tokio_rustls::TlsAcceptor,
        /// Dials the other members (peer side only).
        pub connector: tokio_rustls::TlsConnector,
    }

    impl Side {
        /// Builds a side from `info`, loading (and so checking) its files now.
        pub fn new(info: &TlsInfo, cipher_suites: &[String]) -> Result<Side, String> {
            let (Some(cert_file), Some(key_file)) = (&info.cert_file, &info.key_file) else {
                return Err(format!(
                    "KeyFile and CertFile must both be present[key: {}, cert: {}]",
                    show(info.key_file.as_deref()),
                    show(info.cert_file.as_deref())
                ));
            };
            let provider = Arc::new(suites::provider(cipher_suites)?);
            let presented =
                Arc::new(files::Presented::load(cert_file, key_file, provider.clone())?);
            let versions = [&TLS13, &TLS12];
            let builder = ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&versions)
                .map_err(|e| format!("TLS setup: {e}"))?;
            let verify_clients =
                !info.auto && (info.client_cert_auth || info.trusted_ca_file.is_some());
            let mut server = if verify_clients {
                let roots = Arc::new(files::read_roots(info.trusted_ca_file.as_deref())?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| format!("client certificate verification: {e}"))?;
                let verifier = match &info.allowed_cn {
                    Some(allowed) => {
                        Arc::new(verify::ClientWithCn { inner: verifier, allowed: allowed.clone() })
                    }
                    None => verifier,
                };
                builder.with_client_cert_verifier(verifier)
            } else {
                builder.with_no_client_auth()
            }
            .with_cert_resolver(presented.clone());
            server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

            let check = if info.auto {
                verify::ServerCheck::SelfSigned(provider.clone())
            } else {
                let roots = Arc::new(files::read_roots(info.trusted_ca_file.as_deref())?);
                let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| format!("server certificate verification: {e}"))?;
                verify::ServerCheck::Verified { inner, allowed: info.allowed_cn.clone() }
            };
            let mut client = ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&versions)
                .map_err(|e| format!("TLS setup: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(check))
                .with_client_cert_resolver(presented);
            client.alpn_protocols = vec![b"h2".to_vec()];
            Ok(Side {
                acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
                connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            })
        }
    }

    /// What a client (not a member) dials with: servers verified against `ca` (the system's
    /// CAs if none), presenting `identity` (certificate and key files) if given. etcdctl's
    /// `--cacert`, `--cert` and `--key`.
    pub fn client_connector(
        ca: Option<&Path>,
        identity: Option<(&Path, &Path)>,
    ) -> Result<tokio_rustls::TlsConnector, String> {
        let provider = Arc::new(suites::provider(&[])?);
        let roots = Arc::new(files::read_roots(ca)?);
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| format!("server certificate verification: {e}"))?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&TLS13, &TLS12])
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verify::ServerCheck::Verified {
                inner,
                allowed: None,
            }));
        let mut client = match identity {
            Some((cert, key)) => {
                let presented = files::Presented::load(cert, key, provider)?;
                builder.with_client_cert_resolver(Arc::new(presented))
            }
            None => builder.with_no_client_auth(),
        };
        client.alpn_protocols = vec![b"h2".to_vec()];
        Ok(tokio_rustls::TlsConnector::from(Arc::new(client)))
    }

    fn show(path: Option<&Path>) -> String {
        path.map(|p| p.display().to_string()).unwrap_or_default()
    }

    /// The TLS of one side (`client` or `peer`) listening on `urls`, as etcd decides it:
    /// auto TLS makes a certificate in `auto_dir` unless one is given; an `https://` URL
    /// without a certificate is an error; no certificate and no `https://` URL is plaintext.
    /// `flag` names the side's certificate flags in the error.
    pub fn prepare(
        info: &TlsInfo,
        urls: &[String],
        auto_dir: &Path,
        cipher_suites: &[String],
        side: &str,
    ) -> Result<Option<Side>, String> {
        let mut info = info.clone();
        if info.auto && !info.is_empty() {
            tracing::warn!("ignoring {side} auto TLS since certs given");
            info.auto = false;
        } else if info.auto {
            let hosts: Vec<String> = urls.iter().map(|u| host_of(u).to_string()).collect();
            info = auto::self_signed(auto_dir, &hosts)?;
        }
        let flags = if side == "peer" {
            "--peer-cert-file, --peer-key-file"
        } else {
            "--cert-file, --key-file"
        };
        for url in urls {
            if url.starts_with("https://") && info.is_empty() {
                return Err(format!(
                    "TLS key/cert ({flags}) must be provided for {side} url {url} with HTTPS scheme"
                ));
            }
            if url.starts_with("http://") && !info.is_empty() && !info.auto {
                tracing::warn!(
                    %url,
                    "scheme is HTTP while key and cert files are present; ignoring key and cert files"
                );
            }
            if url.starts_with("http://") && info.client_cert_auth {
                tracing::warn!(
                    %url,
                    "scheme is HTTP while client cert auth is enabled; ignoring client cert auth for this URL"
                );
            }
        }
        if info.is_empty() {
            return Ok(None);
        }
        Side::new(&info, cipher_suites).map(Some)
    }

    /// The host of `scheme://host:port`.
    pub fn host_of(url: &str) -> &str {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let host_port = rest.trim_end_matches('/');
        match host_port.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => host_port,
        }
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("stead-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn https_needs_a_certificate_and_plaintext_needs_none() {
        let urls = ["https://127.0.0.1:2379".to_string()];
        let dir = temp("prepare");
        let error = prepare(&TlsInfo::default(), &urls, &dir, &[], "client").err().unwrap();
        assert_eq!(
            error,
            "TLS key/cert (--cert-file, --key-file) must be provided for client url \
             https://127.0.0.1:2379 with HTTPS scheme"
        );
        let peer = prepare(&TlsInfo::default(), &urls, &dir, &[], "peer").err().unwrap();
        assert!(peer.contains("(--peer-cert-file, --peer-key-file)"), "{peer}");
        let plain = ["http://127.0.0.1:2379".to_string()];
        assert!(prepare(&TlsInfo::default(), &plain, &dir, &[], "client").unwrap().is_none());
        let half = TlsInfo { cert_file: Some(dir.join("c.pem")), ..TlsInfo::default() };
        let error = prepare(&half, &urls, &dir, &[], "client").err().unwrap();
        assert!(error.starts_with("KeyFile and CertFile must both be present"), "{error}");
        assert!(!dir.exists(), "nothing written without auto TLS");
    }

    #[test]
    fn auto_tls_makes_its_certificate_unless_one_is_given() {
        let dir = temp("auto");
        let urls = ["https://127.0.0.1:2379".to_string()];
        let auto = TlsInfo { auto: true, ..TlsInfo::default() };
        assert!(prepare(&auto, &urls, &dir, &[], "client").unwrap().is_some());
        assert!(dir.join("cert.pem").exists() && dir.join("key.pem").exists());
        assert_eq!(host_of("https://[::1]:2380/"), "::1");
        assert_eq!(host_of("http://localhost:2379"), "localhost");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
