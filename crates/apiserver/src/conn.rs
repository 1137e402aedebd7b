//! Serving TCP connections, plain or TLS, so that no client can hold the server's sockets: a
//! bound on open connections, a header-read timeout (which also bounds the TLS handshake), an
//! idle timeout, and answers for clients that half-close their side after sending a request.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::Request;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::server::ServerConfig;
use crate::tls::ConnectionInfo;
use rustls_pki_types::CertificateDer;

/// The connection settings of [`ServerConfig`].
#[derive(Clone, Copy, Debug)]
struct Limits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown` completes; then closes
/// every connection.
pub(crate) async fn serve(
    router: axum::Router,
    config: &ServerConfig,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let limits = Limits {
        header_read_timeout: config.header_read_timeout,
        idle_timeout: config.idle_timeout,
    };
    // Beyond the bound, connections wait in the kernel's listen backlog; idle ones are closed
    // within the idle timeout, so a slot frees up in bounded time.
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            (permit, accepted) = accept(&listener, &slots) => {
                let (stream, remote) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                connections.spawn(accept_connection(stream, remote, tls.clone(), router.clone(), limits, permit));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Waits for a free connection slot, then for a connection (cancel-safe: dropping it releases
/// the slot and loses no connection).
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> (
    OwnedSemaphorePermit,
    std::io::Result<(TcpStream, std::net::SocketAddr)>,
) {
    let permit = Arc::clone(slots)
        .acquire_owned()
        .await
        .expect("the connection semaphore is never closed");
    (permit, listener.accept().await)
}

/// Completes the TLS handshake (within the header-read timeout, so a client that never finishes
/// it cannot hold a slot), then serves the connection.
async fn accept_connection(
    stream: TcpStream,
    remote: std::net::SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: axum::Router,
    limits: Limits,
    slot: OwnedSemaphorePermit,
) {
    let Some(acceptor) = tls else {
        let info = ConnectionInfo {
            remote_addr: Some(remote),
            peer_certificates: Arc::new([]),
            x509_user: Default::default(),
        };
        return serve_connection(stream, Arc::new(info), router, limits, slot).await;
    };
    let stream = match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "TLS handshake timed out");
            return;
        }
    };
    let peer_certificates = stream
        .get_ref()
        .1
        .peer_certificates()
        .map(|chain| {
            chain
                .iter()
                .map(|c| c.clone().into_owned())
                .collect::<Arc<[CertificateDer<'static>]>>()
        })
        .unwrap_or_else(|| Arc::new([]));
    let info = ConnectionInfo {
        remote_addr: Some(remote),
        peer_certificates,
        x509_user: Default::default(),
    };
    serve_connection(stream, Arc::new(info), router, limits, slot).await;
}

/// Serves one connection until the client closes it, hyper ends it (header-read timeout, a
/// protocol error), or it has had no request in flight for the idle timeout.
async fn serve_connection<S>(
    stream: S,
    info: Arc<ConnectionInfo>,
    router: axum::Router,
    limits: Limits,
    _slot: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        in_flight: AtomicUsize::new(0),
        last: parking_lot::Mutex::new(Instant::now()),
    });
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let in_flight = activity.begin();
            req.extensions_mut().insert(Arc::clone(&info));
            let router = router.clone();
            async move {
                let resp = router.oneshot(req).await?;
                // The request stays in flight until its body is sent or dropped (a watch for as long as it runs).
                Ok::<_, Infallible>(resp.map(|inner| Tracked {
                    inner,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // A client may shut down its sending side after the request and still wait for the answer.
        .half_close(true);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    loop {
        // hyper's header-read timeout covers HTTP/1 heads; this covers everything else that can sit
        // still: a connection that never sends its first bytes (still being sniffed for HTTP/1 or
        // HTTP/2) and idle HTTP/2 connections.
        let wake = activity
            .idle_deadline(limits.idle_timeout)
            .unwrap_or_else(|| Instant::now() + limits.idle_timeout);
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(wake) => {
                if activity.idle_deadline(limits.idle_timeout).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!("closing a connection idle for {:?}", limits.idle_timeout);
                    return;
                }
            }
        }
    }
}

/// Requests in flight on one connection and when one last started or ended.
struct Activity {
    in_flight: AtomicUsize,
    last: parking_lot::Mutex<Instant>,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        *self.last.lock() = Instant::now();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    /// When the connection counts as idle if nothing happens; `None` while a request is in flight.
    fn idle_deadline(&self, idle: Duration) -> Option<Instant> {
        (self.in_flight.load(Ordering::SeqCst) == 0).then(|| *self.last.lock() + idle)
    }
}

/// One request in flight; ends when dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.last.lock() = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request in flight until it is sent or dropped.
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked").finish_non_exhaustive()
    }
}
