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
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
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
