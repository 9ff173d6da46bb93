//! Sending an outgoing request to an address the host already checked.
//!
//! This is `wasmtime_wasi_http::default_send_request` with one change that
//! matters: it connects to a given `SocketAddr` instead of resolving the
//! request's host name again, so what was authorized (see [`super::address`])
//! is what is reached. TLS still verifies the certificate against the name
//! the guest asked for.

use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http::{Request, Response};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions};

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T> Stream for T where T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}

/// The response body, with the between-bytes timeout.
pub(crate) struct IncomingBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl Body for IncomingBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(err))) => {
                Poll::Ready(Some(Err(if err.is_timeout() { Error::HttpResponseTimeout } else { Error::from(err) })))
            }
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

/// The TLS server name for `host` (a DNS name or an IP literal).
fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(rustls::pki_types::ServerName::from(ip));
    }
    rustls::pki_types::ServerName::try_from(bare.to_string())
        .map_err(|_| Error::InternalError(Some(format!("`{host}` is not a valid TLS server name"))))
}

/// Send `request` to `address` (already authorized), with the host's
/// timeouts in `options`.
pub(crate) async fn send_to<B>(
    address: SocketAddr,
    host: &str,
    mut request: Request<B>,
    options: RequestOptions,
) -> Result<(Response<IncomingBody>, impl Future<Output = Result<(), Error>> + Send + use<B>), Error>
where
    B: Body<Data = Bytes, Error = Error> + Send + 'static,
{
    let use_tls = request.uri().scheme() == Some(&Scheme::HTTPS);
    let connect_timeout = options.connect_timeout.unwrap_or(Duration::from_secs(600));
    let first_byte_timeout = options.first_byte_timeout.unwrap_or(Duration::from_secs(600));
    let between_bytes_timeout =
        options.between_bytes_timeout.unwrap_or(Duration::from_secs(600)).max(Duration::new(0, 1));

    let tcp = match tokio::time::timeout(connect_timeout, TcpStream::connect(address)).await {
        Ok(stream) => stream.map_err(Error::Connect)?,
        Err(_) => return Err(Error::ConnectionTimeout),
    };
    let stream: Box<dyn Stream> = if use_tls {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
        let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tls = tokio::time::timeout(connect_timeout, connector.connect(server_name(host)?, tcp))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(Error::Tls)?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;

    // The request carries the scheme and authority; on the wire only the
    // path goes (the `Host` header, set by wasi:http, names the authority).
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    *request.uri_mut() =
        http::Uri::builder().path_and_query(path).build().map_err(|e| Error::InternalError(Some(e.to_string())))?;

    let send = async move {
        let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(Error::from)?;
        let mut timeout = tokio::time::interval(between_bytes_timeout);
        timeout.reset();
        Ok::<_, Error>(response.map(|incoming| IncomingBody { incoming, timeout }))
    };
    let mut send = pin!(send);
    let mut conn = Some(conn);
    // Wait for the response while driving the connection's I/O.
    let response = std::future::poll_fn(|cx| match send.as_mut().poll(cx) {
        Poll::Ready(result) => Poll::Ready(result),
        Poll::Pending => {
            let Some(fut) = conn.as_mut() else { return Poll::Pending };
            let done = ready!(Pin::new(fut).poll(cx));
            conn = None;
            match done {
                Ok(()) => send.as_mut().poll(cx),
                Err(err) => Poll::Ready(Err(Error::from(err))),
            }
        }
    })
    .await?;
    Ok((response, async move {
        let Some(conn) = conn.take() else { return Ok(()) };
        match conn.await {
            Ok(()) => Ok(()),
            Err(err) if err.is_timeout() => Err(Error::HttpResponseTimeout),
            Err(err) => Err(err.into()),
        }
    }))
}
