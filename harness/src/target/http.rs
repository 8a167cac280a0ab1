//! The harness's own HTTP/1.1 client.
//!
//! Whoever sends (an open-model worker, the setup sequence, the bulk loader) owns a
//! [`Connection`]: one keep-alive HTTP/1.1 connection per origin, on hyper's connection-level
//! API, as oha does. A pooled client (reqwest) checks a connection out of a shared, locked pool
//! and back in on every request, and a sender that has one request in flight at a time has no
//! use for a pool: at the driver's rates that bookkeeping was the largest cost left in the
//! harness (docs/PERFORMANCE.md, "Driver overhead"). This is the one piece of HTTP written
//! here rather than taken whole from a crate, for that reason; hyper still does the protocol.

use std::fmt;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_util::either::Either;
use url::Url;

/// Where calls connect: `host:port` of an `http://` or `https://` URL, with its `Host` header
/// value and, for `https://`, the name its certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    authority: Arc<str>,
    host: HeaderValue,
    tls: Option<ServerName<'static>>,
}

impl Origin {
    /// The origin of `url`, `http://` or `https://`.
    pub fn of(url: &Url) -> anyhow::Result<Self> {
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => bail!("`{url}`: only http:// and https:// URLs are supported"),
        };
        let host = url.host_str().with_context(|| format!("`{url}` has no host"))?;
        let port = url.port_or_known_default().unwrap_or(if tls { 443 } else { 80 });
        let authority = format!("{host}:{port}");
        Ok(Self {
            host: HeaderValue::from_str(&authority).with_context(|| format!("`{url}`: bad host"))?,
            authority: authority.into(),
            tls: if tls {
                Some(super::tls::server_name(host)?)
            } else {
                None
            },
        })
    }

    /// Whether calls to it go over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.authority)
    }
}

/// A call's destination: an origin and the path on it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    origin: Origin,
    /// The request target, parsed once: cloning it is a reference count.
    path: Uri,
}

impl Endpoint {
    /// `path` (starting with `/`) on `origin`.
    ///
    /// # Panics
    /// If `path` is not a valid request path. Paths are built from ids the harness generates
    /// (hex and dashes) and from a base URL's path that has already been parsed.
    pub fn new(origin: Origin, path: String) -> Self {
        let path = Uri::try_from(path).unwrap_or_else(|e| panic!("not a request path: {e}"));
        Self { origin, path }
    }

    /// The full URL, for other clients (goose) and for messages.
    pub fn url(&self) -> String {
        let scheme = if self.origin.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}{}", self.origin, self.path)
    }
}

/// One REST call.
#[derive(Debug, Clone)]
pub struct HttpCall {
    /// Method.
    pub method: Method,
    /// Where it goes.
    pub to: Endpoint,
    /// JSON body, serialized once when the call is built.
    pub body: Option<Bytes>,
}

/// Extra headers sent with every request (a token, say).
pub type Headers = Arc<[(HeaderName, HeaderValue)]>;

/// Makes [`Connection`]s with one per-request timeout, one set of extra headers and one TLS
/// configuration.
#[derive(Debug, Clone)]
pub struct HttpClient {
    timeout: Duration,
    headers: Headers,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl HttpClient {
    /// A client whose requests fail as `timeout` after `timeout` (connecting included).
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            headers: Arc::new([]),
            tls: None,
        }
    }

    /// The same client connecting to `https://` origins with `config`.
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The same client sending `headers` with every request.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }

    /// The extra headers (for goose's requests, which do not go through [`Connection`]).
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The TLS configuration, when the target is `https://` (for goose's client too).
    pub fn tls(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.tls.as_ref()
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A new, not yet connected sender; it connects to each origin on first use.
    pub fn connection(&self) -> Connection {
        Connection {
            timeout: self.timeout,
            headers: self.headers.clone(),
            tls: self.tls.clone(),
            open: Vec::new(),
        }
    }
}

/// One sender's keep-alive connections, one per origin, one request at a time.
#[derive(Debug)]
pub struct Connection {
    timeout: Duration,
    headers: Headers,
    tls: Option<Arc<rustls::ClientConfig>>,
    // A Vec, not a map: a run talks to one origin, or one per Alcor service.
    open: Vec<Open>,
}

/// A connection's transport: plain TCP, or TLS over it.
type Stream = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

type Conn = hyper::client::conn::http1::Connection<TokioIo<Stream>, Full<Bytes>>;

/// One HTTP/1.1 connection.
#[derive(Debug)]
struct Open {
    origin: Origin,
    sender: SendRequest<Full<Bytes>>,
    /// The connection's reads and writes, driven by the sender's own task while it waits for an
    /// answer rather than by a task of their own: a request then wakes no other task on its way
    /// out or back. `None` once the connection has ended.
    conn: Option<Pin<Box<Conn>>>,
}

/// Runs `work` while driving `conn`. If the connection ends first, it is dropped, which fails
/// whatever `work` was still waiting for.
async fn driving<T>(conn: &mut Option<Pin<Box<Conn>>>, work: impl Future<Output = T>) -> T {
    let mut work = pin!(work);
    if let Some(c) = conn {
        tokio::select! {
            // The connection first: a kept-alive connection the server has since closed then
            // ends before the request is handed to it, and the request comes back unsent.
            biased;
            _ = c.as_mut() => {}
            out = &mut work => return out,
        }
    }
    *conn = None;
    work.await
}

/// How one attempt failed.
// Moved once per request and never stored: boxing the request would cost an allocation.
#[allow(clippy::large_enum_variant)]
enum Attempt {
    /// Nothing was written: the request, to send on a new connection.
    Unsent(Request<Full<Bytes>>),
    /// The request may have been written.
    Failed(String),
}

/// Why an exchange failed.
enum Failure {
    Timeout,
    Transport(String),
}

/// The recorder's name for an answer's status: `Ok`, or `http_NNN`.
fn status_outcome(status: StatusCode) -> Result<(), String> {
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("http_{}", status.as_u16()))
    }
}

impl Connection {
    /// Sends a call; `Err` carries the failure kind (`http_409`, `timeout`, `transport`).
    pub async fn send(&mut self, c: &HttpCall) -> Result<(), String> {
        self.send_for_body(c).await.map(drop)
    }

    /// Sends a call and returns the answer's body when it succeeded (a control plane that
    /// assigns ids says them there).
    pub async fn send_for_body(&mut self, c: &HttpCall) -> Result<Bytes, String> {
        match self.exchange(c).await {
            Ok((status, body)) => status_outcome(status).map(|()| body),
            Err(Failure::Timeout) => Err("timeout".into()),
            Err(Failure::Transport(_)) => Err("transport".into()),
        }
    }

    /// Sends a setup call and returns the answer's body; failure is an error naming the call.
    pub async fn must(&mut self, c: &HttpCall) -> anyhow::Result<Bytes> {
        let what = || format!("{} {}", c.method, c.to.url());
        match self.exchange(c).await {
            Ok((status, body)) if status.is_success() => Ok(body),
            Ok((status, body)) => bail!(
                "{}: {status}: {}",
                what(),
                String::from_utf8_lossy(&body).chars().take(300).collect::<String>()
            ),
            Err(Failure::Timeout) => bail!("{}: no answer within {:?}", what(), self.timeout),
            Err(Failure::Transport(e)) => bail!("{}: {e}", what()),
        }
    }

    /// One request and its whole answer, within the timeout. A connection that failed or timed
    /// out is dropped: its state is unknown.
    async fn exchange(&mut self, c: &HttpCall) -> Result<(StatusCode, Bytes), Failure> {
        match tokio::time::timeout(self.timeout, self.exchange_untimed(c)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.forget(&c.to.origin);
                Err(e)
            }
            Err(_) => {
                self.forget(&c.to.origin);
                Err(Failure::Timeout)
            }
        }
    }

    async fn exchange_untimed(&mut self, c: &HttpCall) -> Result<(StatusCode, Bytes), Failure> {
        let mut req = request(c, &self.headers);
        // A kept-alive connection the server has closed fails before anything is written, and
        // hyper hands the request back: sent again once on a new connection, as a pooled client
        // would. A request that may have been written is never resent.
        let mut resent = false;
        loop {
            let Open { sender, conn, .. } = self.open_to(&c.to.origin).await?;
            let attempt = driving(conn, async {
                if sender.ready().await.is_err() {
                    return Err(Attempt::Unsent(req));
                }
                let resp = sender
                    .try_send_request(req)
                    .await
                    .map_err(|mut e| match e.take_message() {
                        Some(unsent) => Attempt::Unsent(unsent),
                        None => Attempt::Failed(e.into_error().to_string()),
                    })?;
                let status = resp.status();
                let body = resp.into_body().collect().await;
                Ok((status, body.map_err(|e| Attempt::Failed(e.to_string()))?.to_bytes()))
            })
            .await;
            match attempt {
                Ok(answer) => return Ok(answer),
                Err(Attempt::Unsent(unsent)) if !resent => {
                    self.forget(&c.to.origin);
                    resent = true;
                    req = unsent;
                }
                Err(Attempt::Unsent(_)) => return Err(Failure::Transport("connection closed".into())),
                Err(Attempt::Failed(e)) => return Err(Failure::Transport(e)),
            }
        }
    }

    /// The connection to `origin`, connecting if there is none or it has ended.
    async fn open_to(&mut self, origin: &Origin) -> Result<&mut Open, Failure> {
        self.open.retain(|o| o.conn.is_some());
        let i = match self.open.iter().position(|o| &o.origin == origin) {
            Some(i) => i,
            None => {
                let (sender, conn) = connect(origin, self.tls.as_ref()).await?;
                self.open.push(Open {
                    origin: origin.clone(),
                    sender,
                    conn: Some(Box::pin(conn)),
                });
                self.open.len() - 1
            }
        };
        Ok(&mut self.open[i])
    }

    fn forget(&mut self, origin: &Origin) {
        self.open.retain(|o| &o.origin != origin);
    }
}

fn request(c: &HttpCall, extra: &[(HeaderName, HeaderValue)]) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(c.body.clone().unwrap_or_default()));
    *req.method_mut() = c.method.clone();
    *req.uri_mut() = c.to.path.clone();
    let h = req.headers_mut();
    h.insert(HOST, c.to.origin.host.clone());
    for (k, v) in extra {
        h.insert(k.clone(), v.clone());
    }
    if c.body.is_some() {
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    req
}

async fn connect(
    origin: &Origin,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<(SendRequest<Full<Bytes>>, Conn), Failure> {
    let transport = |e: &dyn fmt::Display| Failure::Transport(format!("{origin}: {e}"));
    let tcp = TcpStream::connect(&*origin.authority)
        .await
        .map_err(|e| transport(&e))?;
    // Requests are small and answered one at a time: Nagle would hold each for an ACK.
    let _ = tcp.set_nodelay(true);
    let stream = match &origin.tls {
        None => Either::Left(tcp),
        Some(name) => {
            let config = tls.ok_or_else(|| transport(&"https:// without a TLS configuration"))?;
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name.clone(), tcp)
                .await
                .map_err(|e| transport(&e))?;
            Either::Right(tls)
        }
    };
    hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| transport(&e))
}

/// A goose answer as the recorder counts it: its body, or the failure kind (`http_409`,
/// `timeout`, `transport`). Reads the body so the connection goes back to goose's pool.
pub async fn outcome(resp: Result<reqwest::Response, reqwest::Error>) -> Result<Bytes, String> {
    match resp {
        Ok(resp) => {
            let status = resp.status();
            let body = resp.bytes().await.unwrap_or_default();
            status_outcome(status).map(|()| body)
        }
        Err(e) if e.is_timeout() => Err("timeout".into()),
        Err(_) => Err("transport".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What the stand-in server does with the `n`th request of its `c`th connection.
    #[derive(Clone, Copy)]
    enum Act {
        Reply(u16, &'static str),
        /// Reply, then close the connection a little later, while it is idle (as a server
        /// whose keep-alive timer fired).
        ReplyAndClose(u16, &'static str),
        /// Never answer.
        Hang,
    }

    /// A minimal HTTP/1.1 server on loopback, written out so that a test controls exactly when
    /// it answers and closes. Returns its URL and its count of accepted connections.
    async fn server(act: fn(usize, usize) -> Act) -> (Url, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", l.local_addr().unwrap())).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let c = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    for n in 0.. {
                        // Read one request: head, then as many body bytes as it declares.
                        let head_end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            let mut chunk = [0u8; 4096];
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        while buf.len() < head_end + len {
                            let mut chunk = [0u8; 4096];
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                            }
                        }
                        buf.drain(..head_end + len);
                        let (status, body, close) = match act(c, n) {
                            Act::Reply(st, b) => (st, b, false),
                            Act::ReplyAndClose(st, b) => (st, b, true),
                            Act::Hang => {
                                tokio::time::sleep(Duration::from_secs(60)).await;
                                return;
                            }
                        };
                        let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                        if s.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                        if close {
                            tokio::time::sleep(Duration::from_millis(30)).await;
                            return;
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    fn call(url: &Url, method: Method, body: Option<&'static str>) -> HttpCall {
        HttpCall {
            method,
            to: Endpoint::new(Origin::of(url).unwrap(), "/project/p/ports".into()),
            body: body.map(|b| Bytes::from_static(b.as_bytes())),
        }
    }

    #[tokio::test]
    async fn requests_share_one_kept_alive_connection() {
        let (url, accepted) = server(|_, _| Act::Reply(201, "{}")).await;
        let mut conn = HttpClient::new(Duration::from_secs(5)).connection();
        for _ in 0..5 {
            assert_eq!(conn.send(&call(&url, Method::POST, Some("{\"a\":1}"))).await, Ok(()));
        }
        conn.send(&call(&url, Method::DELETE, None)).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced_and_the_request_sent_again() {
        let (url, accepted) = server(|_, _| Act::ReplyAndClose(201, "{}")).await;
        let mut conn = HttpClient::new(Duration::from_secs(5)).connection();
        for _ in 0..4 {
            conn.send(&call(&url, Method::POST, Some("{}"))).await.unwrap();
            // The server closes while the connection is idle; the client learns of it only when
            // it next uses the connection.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_timeout_drops_the_connection_and_the_next_request_gets_a_new_one() {
        let (url, accepted) = server(|c, _| if c == 0 { Act::Hang } else { Act::Reply(200, "{}") }).await;
        let mut conn = HttpClient::new(Duration::from_millis(200)).connection();
        let t = std::time::Instant::now();
        assert_eq!(
            conn.send(&call(&url, Method::POST, Some("{}"))).await,
            Err("timeout".into())
        );
        assert!(t.elapsed() >= Duration::from_millis(200));
        assert_eq!(conn.send(&call(&url, Method::POST, Some("{}"))).await, Ok(()));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failures_are_named_by_kind_and_setup_errors_name_the_call() {
        let (url, _) = server(|_, _| Act::Reply(409, "port exists")).await;
        let mut conn = HttpClient::new(Duration::from_secs(5)).connection();
        let c = call(&url, Method::POST, Some("{}"));
        assert_eq!(conn.send(&c).await, Err("http_409".into()));
        let e = conn.must(&c).await.unwrap_err().to_string();
        assert!(e.contains(&format!("POST {url}project/p/ports")), "{e}");
        assert!(e.contains("409") && e.contains("port exists"), "{e}");
        // Nothing listening.
        let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", gone.local_addr().unwrap())).unwrap();
        drop(gone);
        assert_eq!(
            conn.send(&call(&url, Method::POST, None)).await,
            Err("transport".into())
        );
    }

    #[tokio::test]
    async fn extra_headers_go_with_every_request_and_the_body_comes_back() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", l.local_addr().unwrap())).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut chunk = [0u8; 1024];
                let n = s.read(&mut chunk).await.unwrap();
                head.extend_from_slice(&chunk[..n]);
            }
            let body = r#"{"port":{"id":"abc"}}"#;
            let reply = format!("HTTP/1.1 201 Created\r\ncontent-length: {}\r\n\r\n{body}", body.len());
            s.write_all(reply.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&head).to_ascii_lowercase()
        });
        let headers: Headers = Arc::new([(
            HeaderName::from_static("x-auth-token"),
            HeaderValue::from_static("secret-token"),
        )]);
        let mut conn = HttpClient::new(Duration::from_secs(5))
            .with_headers(headers)
            .connection();
        let body = conn.send_for_body(&call(&url, Method::POST, Some("{}"))).await.unwrap();
        assert_eq!(&body[..], br#"{"port":{"id":"abc"}}"#);
        let head = server.await.unwrap();
        assert!(head.contains("x-auth-token: secret-token"), "{head}");
    }

    #[test]
    fn origins_are_plain_http_with_a_port() {
        let o = Origin::of(&Url::parse("http://localhost/alcor").unwrap()).unwrap();
        assert_eq!(o.to_string(), "localhost:80");
        let o = Origin::of(&Url::parse("http://[::1]:9009").unwrap()).unwrap();
        assert_eq!(o.to_string(), "[::1]:9009");
        let o = Origin::of(&Url::parse("https://127.0.0.1").unwrap()).unwrap();
        assert_eq!((o.to_string().as_str(), o.is_tls()), ("127.0.0.1:443", true));
        let e = Origin::of(&Url::parse("ftp://127.0.0.1:8443").unwrap()).unwrap_err();
        assert!(e.to_string().contains("only http:// and https://"), "{e}");
    }
}
