//! HTTPS: a listener that completes TLS handshakes before axum sees a connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use switchyard::{Error, ErrorKind, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::TlsConfig;

/// How long a client may take to complete its handshake before it is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes under way at most: beyond them, new connections wait in the kernel's queue.
const MAX_HANDSHAKES: usize = 1024;

fn config_error(message: String) -> Error {
    Error::new(ErrorKind::Config, message)
}

/// The acceptor for `[server] tls`: the certificate chain and key read and checked against each
/// other, HTTP/1.1 offered by ALPN.
///
/// # Errors
/// [`ErrorKind::Config`] naming the file that cannot be read or holds no certificate or key, or
/// saying that the key does not match the certificate. File contents never appear in it.
pub(crate) fn acceptor(tls: &TlsConfig) -> Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| config_error(format!("[server] tls.cert `{}`: {}", tls.cert.display(), pem_error(&e))))?;
    if certs.is_empty() {
        return Err(config_error(format!("[server] tls.cert `{}` holds no certificate", tls.cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| config_error(format!("[server] tls.key `{}`: {}", tls.key.display(), pem_error(&e))))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(format!("[server] tls: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            config_error(format!(
                "[server] tls: the key `{}` does not fit the certificate `{}` ({e})",
                tls.key.display(),
                tls.cert.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What went wrong reading a PEM file, without its contents.
fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::Io(io) => io.to_string(),
        E::NoItemsFound => "no PEM item of the expected kind".to_owned(),
        _ => "not a valid PEM file".to_owned(),
    }
}

type Handshake = Pin<Box<dyn Future<Output = Option<(TlsStream<TcpStream>, SocketAddr)>> + Send>>;

/// A TCP listener whose connections are handed over once their TLS handshake completed. Handshakes
/// run side by side while the server waits for its next connection, so a slow client holds up no
/// other; one that fails or takes longer than 10 s is dropped (and logged at debug level). At most
/// 1,024 run at once.
pub(crate) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: FuturesUnordered<Handshake>,
    /// After a failed accept (too many open files, say), new connections wait this out; the
    /// handshakes under way go on.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TlsListener {
    pub(crate) fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> Self {
        Self { tcp, acceptor, handshakes: FuturesUnordered::new(), pause: None }
    }
}

/// Whether a failed accept concerns one connection only (retried at once, as axum's own listener
/// does), not the listener.
fn one_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let accepting = self.pause.is_none() && self.handshakes.len() < MAX_HANDSHAKES;
            tokio::select! {
                () = async { if let Some(pause) = self.pause.as_mut() { pause.await } }, if self.pause.is_some() => {
                    self.pause = None;
                }
                accepted = self.tcp.accept(), if accepting => match accepted {
                    Ok((stream, addr)) => {
                        let handshake = self.acceptor.accept(stream);
                        self.handshakes.push(Box::pin(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                                Ok(Ok(tls)) => Some((tls, addr)),
                                Ok(Err(e)) => {
                                    tracing::debug!(target: "switchyard_gateway", error = %e, "TLS handshake failed");
                                    None
                                }
                                Err(_) => {
                                    tracing::debug!(target: "switchyard_gateway", "TLS handshake timed out");
                                    None
                                }
                            }
                        }));
                    }
                    Err(e) if one_connection(&e) => {}
                    // As axum's own listener does: any other failed accept (too many open files,
                    // say) is logged and retried after a pause, which handshakes under way do not
                    // wait for.
                    Err(e) => {
                        tracing::warn!(target: "switchyard_gateway", error = %e, "accept failed");
                        self.pause = Some(Box::pin(tokio::time::sleep(Duration::from_secs(1))));
                    }
                },
                Some(done) = self.handshakes.next(), if !self.handshakes.is_empty() => {
                    if let Some(connection) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
