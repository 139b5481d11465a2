//! A plain HTTP/1 request on the gRPC port (a browser, `curl` without `--http2`) gets a short
//! text saying what the port is, instead of a connection closed without a word. gRPC requests
//! (HTTP/2) pass through untouched.

use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::{Either, Ready};
use tonic::body::Body;

const NOTICE: &str =
    "This is a Cairn node's gRPC port (HTTP/2). Use the cairn CLI (`cairn --brokers HOST:PORT cluster info`) \
or a gRPC client; grpcurl can list the services through server reflection.\n";

/// Answers HTTP/1 requests with `NOTICE`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Http1Notice;

impl<S> tower_layer::Layer<S> for Http1Notice {
    type Service = Notice<S>;

    fn layer(&self, inner: S) -> Notice<S> {
        Notice(inner)
    }
}

#[derive(Clone, Debug)]
pub struct Notice<S>(S);

impl<S, B> tower_service::Service<http::Request<B>> for Notice<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<http::Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.version() >= http::Version::HTTP_2 {
            return Either::Right(self.0.call(req));
        }
        let mut resp = http::Response::new(Body::new(http_body_util::Full::new(Bytes::from_static(NOTICE.as_bytes()))));
        *resp.status_mut() = http::StatusCode::BAD_REQUEST;
        resp.headers_mut()
            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
        Either::Left(futures::future::ready(Ok(resp)))
    }
}
