//! The real listeners of the client and peer ports: every `--listen-*-urls` URL gets a TCP
//! listener; on `https://` URLs each accepted connection first completes a TLS handshake (in its
//! own task, so a slow or hostile handshake never holds up the others). Connections reach the
//! gRPC server as one stream of [`Conn`]s, each carrying what the handshake established
//! ([`Connection`]: the Common Name of a verified client certificate), which the services read
//! to authorise requests that carry no token. A failed handshake (a plaintext client on a TLS
//! port, an untrusted or disallowed certificate) is logged and the connection dropped.

use crate::tls::Side;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections accepted but not yet taken by the server.
const BACKLOG: usize = 128;

/// What the server knows about a connection (in every request's extensions).
#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The Common Name of the client certificate the handshake verified, if any.
    pub common_name: Option<Arc<str>>,
}

/// An accepted connection: plain TCP or TLS over TCP.
pub enum Conn {
    /// An `http://` listener's connection.
    Plain(TcpStream),
    /// An `https://` listener's connection, after its handshake.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>, Connection),
}

/// Binds every URL of `urls` (a port in use is a clear error now) and returns the stream of
/// connections they accept; `tls` serves the `https://` ones. `flag` and `side` name the
/// listeners in errors and logs.
pub async fn bind(
    urls: &[String],
    tls: Option<&Side>,
    flag: &str,
    side: &'static str,
) -> Result<tokio_stream::wrappers::ReceiverStream<io::Result<Conn>>, String> {
    let (accepted, incoming) = mpsc::channel(BACKLOG);
    let mut listeners = Vec::new();
    for url in urls {
        let addr: SocketAddr = crate::config::socket_addr(url)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("{flag} {addr}: cannot listen: {e}"))?;
        let acceptor = if url.starts_with("https://") {
            let side = tls.ok_or_else(|| format!("{flag} {url}: no TLS set up for it"))?;
            Some(side.acceptor.clone())
        } else {
            None
        };
        listeners.push((listener, acceptor));
    }
    for (listener, acceptor) in listeners {
        tokio::spawn(accept(listener, acceptor, accepted.clone(), side));
    }
    Ok(tokio_stream::wrappers::ReceiverStream::new(incoming))
}

/// Accepts on one listener until the server stops taking connections.
async fn accept(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    accepted: mpsc::Sender<io::Result<Conn>>,
    side: &'static str,
) {
    loop {
        let (stream, remote) = tokio::select! {
            _ = accepted.closed() => return,
            next = listener.accept() => match next {
                Ok(next) => next,
                Err(error) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(%error, "cannot accept a {side} connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Some(acceptor) = acceptor.clone() else {
            if accepted.send(Ok(Conn::Plain(stream))).await.is_err() {
                return;
            }
            continue;
        };
        let accepted = accepted.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            match handshake.await {
                Ok(Ok(tls)) => {
                    let common_name = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .and_then(crate::tls::files::common_name)
                        .map(Arc::from);
                    let connection = Connection { tls: true, common_name };
                    let _ = accepted.send(Ok(Conn::Tls(Box::new(tls), connection))).await;
                }
                Ok(Err(error)) => {
                    tracing::warn!(%remote, %error, "refused a {side} connection: TLS handshake failed")
                }
                Err(_) => {
                    tracing::warn!(%remote, "refused a {side} connection: TLS handshake timed out")
                }
            }
        });
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = Connection;

    fn connect_info(&self) -> Connection {
        match self {
            Conn::Plain(_) => Connection::default(),
            Conn::Tls(_, connection) => connection.clone(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Conn::Tls(stream, _) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Conn::Tls(stream, _) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Conn::Tls(stream, _) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(stream) => stream.is_write_vectored(),
            Conn::Tls(stream, _) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Conn::Tls(stream, _) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Conn::Tls(stream, _) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{prepare, TlsInfo};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    fn side(tag: &str) -> Side {
        let dir = std::env::temp_dir().join(format!("stead-listen-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let info = TlsInfo { auto: true, ..TlsInfo::default() };
        let urls = ["https://127.0.0.1:1".to_string()];
        let side = prepare(&info, &urls, &dir, &[], "peer").unwrap().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        side
    }

    fn free_url(scheme: &str) -> String {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        format!("{scheme}://127.0.0.1:{port}")
    }

    #[tokio::test]
    async fn tls_and_plain_listeners_hand_over_working_connections() {
        let side = side("both");
        let (tls_url, plain_url) = (free_url("https"), free_url("http"));
        let urls = [tls_url.clone(), plain_url.clone()];
        let mut incoming = bind(&urls, Some(&side), "--listen-peer-urls", "peer").await.unwrap();

        let tcp = TcpStream::connect(tls_url.trim_start_matches("https://")).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut client = side.connector.connect(name, tcp).await.unwrap();
        client.write_all(b"over tls").await.unwrap();
        client.flush().await.unwrap();
        let mut served = incoming.next().await.unwrap().unwrap();
        assert!(matches!(served, Conn::Tls(..)));
        let mut got = [0u8; 8];
        served.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"over tls");

        // A plaintext client on the TLS port is dropped; the plain port still works.
        let mut plain_on_tls =
            TcpStream::connect(tls_url.trim_start_matches("https://")).await.unwrap();
        plain_on_tls.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        let _ = plain_on_tls.read_to_end(&mut answer).await;
        assert!(!answer.starts_with(b"HTTP"), "no plaintext answer on a TLS port");
        let mut plain = TcpStream::connect(plain_url.trim_start_matches("http://")).await.unwrap();
        plain.write_all(b"plain").await.unwrap();
        let mut served = incoming.next().await.unwrap().unwrap();
        assert!(matches!(served, Conn::Plain(_)));
        let mut got = [0u8; 5];
        served.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"plain");
    }
}
