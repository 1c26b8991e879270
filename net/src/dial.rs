//! Dialing other members on their peer URLs: plain HTTP/2 for `http://`, TLS with this member's
//! peer certificate for `https://` (the raft stream, forwarded requests, and a joining member's
//! member-list question all dial through here).

use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// How this member reaches its peers.
#[derive(Clone, Default)]
pub struct Dialer {
    /// The peer side's TLS, if set up.
    #[cfg(not(madsim))]
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Dialer {
    /// A dialer that reaches `https://` peers with `tls`.
    #[cfg(not(madsim))]
    pub fn with_tls(tls: Option<tokio_rustls::TlsConnector>) -> Dialer {
        Dialer { tls }
    }

    /// A channel to the peer at `url`, connected within `timeout`.
    pub async fn connect(&self, url: &str, timeout: Duration) -> Result<Channel, String> {
        if let Some(host_port) = url.strip_prefix("https://") {
            return self.connect_tls(url, host_port.trim_end_matches('/'), timeout).await;
        }
        Endpoint::from_shared(url.to_string())
            .map_err(|e| format!("{url}: {e}"))?
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("{url}: {e}"))
    }

    #[cfg(not(madsim))]
    async fn connect_tls(
        &self,
        url: &str,
        host_port: &str,
        timeout: Duration,
    ) -> Result<Channel, String> {
        use rustls::pki_types::ServerName;
        let Some(tls) = self.tls.clone() else {
            return Err(format!(
                "{url}: an https:// peer, but this member has no peer TLS \
                 (--peer-cert-file and --peer-key-file, or --peer-auto-tls)"
            ));
        };
        let host = crate::tls::host_of(url);
        let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{url}: {e}"))?;
        let addr = host_port.to_string();
        let connector = tower::service_fn(move |_: tonic::transport::Uri| {
            let (tls, name, addr) = (tls.clone(), name.clone(), addr.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let stream = tls.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        });
        // The scheme only names the transport to tonic; TLS is the connector's.
        Endpoint::from_shared(format!("http://{host_port}"))
            .map_err(|e| format!("{url}: {e}"))?
            .connect_timeout(timeout)
            .connect_with_connector(connector)
            .await
            .map_err(|e| format!("{url}: {}", source_chain(&e)))
    }

    /// The simulated network has no TLS.
    #[cfg(madsim)]
    async fn connect_tls(&self, url: &str, _: &str, _: Duration) -> Result<Channel, String> {
        Err(format!("{url}: TLS is not simulated"))
    }
}

/// An error with its causes (tonic's transport error alone says only "transport error").
#[cfg(not(madsim))]
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}
