//! The connections under the router: accepted up to a cap (past it, a 503 is answered at once
//! and the connection closed), each served by hyper with a time limit on reading a request's
//! headers, which also closes a keep-alive connection left idle, and all finished gracefully
//! on shutdown. axum's own `serve` sets neither limit: half-sent requests stayed open and a
//! thousand of them made the service unreachable.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::admission::Peer;

/// How many connections the service holds, and how long a request's headers may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once. Each costs a task and its buffers (a few KB idle); 4,096
    /// stays well under the process's file limit and a few tens of MB.
    pub max_connections: usize,
    /// From the first moment the service waits for a request (a new connection, or an idle
    /// keep-alive one) to its last header byte.
    pub header_read_timeout: Duration,
    /// How long shutdown waits for the requests in flight.
    pub shutdown_grace: Duration,
}

impl ConnectionLimits {
    pub const DEFAULT: ConnectionLimits = ConnectionLimits {
        max_connections: 4096,
        header_read_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(30),
    };

    /// The defaults, with `PRIORAUTH_MAX_CONNECTIONS` when it is set.
    pub fn from_env() -> Result<ConnectionLimits, String> {
        let mut limits = ConnectionLimits::DEFAULT;
        if let Ok(text) = std::env::var("PRIORAUTH_MAX_CONNECTIONS") {
            limits.max_connections =
                text.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    format!("PRIORAUTH_MAX_CONNECTIONS: `{text}` is not a whole number above 0")
                })?;
        }
        Ok(limits)
    }
}

/// The most refusals being written at once; past it, a connection over the cap is closed
/// without one (a flood of connections must not become a flood of tasks).
const REFUSALS_AT_ONCE: usize = 256;

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and waits (at
/// most `shutdown_grace`) for the requests in flight.
pub async fn serve(
    app: Router,
    listener: TcpListener,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // Out of file descriptors, or a connection reset before it was accepted: wait a
            // moment rather than spin, as axum's own loop does.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(place) = open.clone().try_acquire_owned() else {
            if let Ok(refusal) = refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Each request knows its connection's peer (`admission::Peer`): calls without a key
        // are counted per source address.
        let peer = stream.peer_addr().ok().map(|a| Peer(a.ip()));
        let service = app.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                if let Some(peer) = peer {
                    request.extensions_mut().insert(peer);
                }
                request
            },
        );
        let connection = http.serve_connection(
            TokioIo::new(ErrorBodies::new(stream)),
            TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A connection's errors (a reset, a header timeout) concern only it.
            let _ = connection.await;
            drop(place);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await;
    Ok(())
}

/// A connection whose bare error answers get a body. hyper answers a request it cannot read
/// (headers over its limits: 431; a malformed request: 400) itself, before the router sees
/// it, with no body at all. Those answers are the only ones that start `HTTP/1.1 431` or
/// `HTTP/1.1 400` with `content-length: 0` (the service's own 400s always say why); each is
/// written as a problem+json saying the same, and the connection closes as hyper's would.
#[derive(Debug)]
struct ErrorBodies<S> {
    inner: S,
    /// A replacement being written: its bytes and how many are written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> ErrorBodies<S> {
    fn new(inner: S) -> ErrorBodies<S> {
        ErrorBodies {
            inner,
            pending: None,
        }
    }
}

/// The problem+json answer for hyper's bare one, if `written` is one.
fn with_body(written: &[u8]) -> Option<Vec<u8>> {
    let (status, title, detail) = if written.starts_with(b"HTTP/1.1 431 ") {
        (
            431,
            "request header fields too large",
            "the request's headers are over the service's limits (at most 100 headers)",
        )
    } else if written.starts_with(b"HTTP/1.1 400 ") {
        (
            400,
            "bad request",
            "the request is not HTTP/1.1 the service can read",
        )
    } else {
        return None;
    };
    let head_end = written.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(written.get(..head_end)?).to_ascii_lowercase();
    if head_end != written.len() || !head.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let body = format!(
        r#"{{"type":"about:blank","title":"{title}","status":{status},"detail":"{detail}","errors":[]}}"#
    );
    let reason = if status == 431 {
        "Request Header Fields Too Large"
    } else {
        "Bad Request"
    };
    Some(format!("HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\ncache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes())
}

impl<S: tokio::io::AsyncWrite + Unpin> ErrorBodies<S> {
    /// Writes what is left of a replacement; ready when none is left.
    fn drain(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        while let Some((bytes, written)) = &mut self.pending {
            let rest = bytes.get(*written..).unwrap_or_default();
            if rest.is_empty() {
                self.pending = None;
                break;
            }
            match std::pin::Pin::new(&mut self.inner).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for ErrorBodies<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for ErrorBodies<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        match self.drain(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => return Poll::Pending,
        }
        if let Some(replacement) = with_body(buf) {
            // The bare answer counts as written; its replacement goes out instead.
            self.pending = Some((replacement, 0));
            return match self.drain(cx) {
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                _ => Poll::Ready(Ok(buf.len())),
            };
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        match self.drain(cx) {
            Poll::Ready(Ok(())) => std::pin::Pin::new(&mut self.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        match self.drain(cx) {
            Poll::Ready(Ok(())) => std::pin::Pin::new(&mut self.inner).poll_shutdown(cx),
            other => other,
        }
    }
}

/// The answer to a connection over the cap: a 503 problem saying to retry, then close.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str = r#"{"type":"about:blank","title":"service unavailable","status":503,"detail":"the service holds as many connections as it can; retry shortly","errors":[]}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\ncache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let write = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent (briefly) so that closing does not reset the connection
        // before the client reads the answer.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}
