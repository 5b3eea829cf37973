//! `registry_http_*`: every request counted by route (`handler`), method and status, timed
//! until its answer's headers, with request and response sizes.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use poem::http::Method;
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use prometheus::Histogram;

/// Middleware: counts and times the request, by route.
pub async fn track_requests<E: Endpoint>(next: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let http = &super::get().http;
    let handler = handler_of(req.method(), req.uri().path());
    let method = method_label(req.method());
    let started = Instant::now();
    let in_flight = http.in_flight.with_label_values(&[handler]);
    in_flight.inc();
    let _in_flight = scopeguard(move || in_flight.dec());

    let body = req.take_body();
    req.set_body(measured(
        body,
        http.request_size.with_label_values(&[handler]),
    ));

    let mut resp = match next.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => err.into_response(),
    };
    http.duration
        .with_label_values(&[handler, method])
        .observe(started.elapsed().as_secs_f64());
    http.requests
        .with_label_values(&[handler, resp.status().as_str(), method])
        .inc();
    let body = resp.take_body();
    resp.set_body(measured(
        body,
        http.response_size.with_label_values(&[handler]),
    ));
    Ok(resp)
}

/// A request's method as a label: the standard ones, else `other` (a client must not be able
/// to create series by sending made-up methods).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The route a request is for, as Distribution names its routes (`base`, `manifest`, `blob`,
/// `blob_upload`, `blob_upload_chunk`, `tags`, `catalog`, `referrers`), then oci-storage's
/// own: `api`, `token`, `ui`, `helm_repository`, `health`, `metrics`. A fixed set: the label
/// never carries what the client sent.
pub fn handler_of(method: &Method, path: &str) -> &'static str {
    if let Some(rest) = path.strip_prefix("/v2") {
        return v2_handler(method, rest);
    }
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "api" => "api",
        "auth" => "token",
        "ui" | "" => "ui",
        "healthz" | "readyz" => "health",
        "metrics" => "metrics",
        _ => "helm_repository",
    }
}

/// A `/v2…` route, read from the end of the path (repository names have any number of
/// segments, and may themselves contain `manifests` or `blobs`).
fn v2_handler(method: &Method, rest: &str) -> &'static str {
    if rest.is_empty() || rest == "/" {
        return "base";
    }
    if rest == "/_catalog" {
        return "catalog";
    }
    let segments: Vec<&str> = rest.rsplitn(4, '/').collect();
    match segments.as_slice() {
        ["", "uploads", "blobs", ..] => "blob_upload",
        [_, "uploads", "blobs", ..] if *method != Method::POST => "blob_upload_chunk",
        ["uploads", "blobs", ..] => "blob_upload",
        [_, "blobs", ..] => "blob",
        [_, "manifests", ..] => "manifest",
        ["list", "tags", ..] => "tags",
        [_, "referrers", ..] => "referrers",
        _ => "v2_other",
    }
}

/// Observes the size of `body` into `histogram`: at once when it is known, else once the
/// body has been sent or dropped, counting what went through. The body keeps its size hint,
/// so a body of known length is still sent with `Content-Length`.
fn measured(body: Body, histogram: Histogram) -> Body {
    let inner: BoxBody<Bytes, std::io::Error> = body.into();
    if let Some(n) = inner.size_hint().exact() {
        histogram.observe(n as f64);
        return inner.into();
    }
    Counted {
        inner,
        bytes: 0,
        histogram: Some(histogram),
    }
    .boxed()
    .into()
}

struct Counted {
    inner: BoxBody<Bytes, std::io::Error>,
    bytes: u64,
    histogram: Option<Histogram>,
}

impl Counted {
    fn observe(&mut self) {
        if let Some(h) = self.histogram.take() {
            h.observe(self.bytes as f64);
        }
    }
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let next = Pin::new(&mut self.inner).poll_frame(cx);
        match &next {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.observe(),
            _ => {}
        }
        next
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.observe();
    }
}

/// Runs `f` when dropped: the in-flight gauge goes down even if the client goes away and the
/// request's future is dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_named_as_distribution_names_them() {
        let cases = [
            (Method::GET, "/v2/", "base"),
            (Method::GET, "/v2", "base"),
            (Method::GET, "/v2/_catalog", "catalog"),
            (Method::GET, "/v2/a/b/manifests/v1", "manifest"),
            (
                Method::HEAD,
                "/v2/manifests/manifests/sha256:ab",
                "manifest",
            ),
            (Method::GET, "/v2/a/blobs/sha256:ab", "blob"),
            (Method::POST, "/v2/a/blobs/uploads/", "blob_upload"),
            (Method::POST, "/v2/a/blobs/uploads", "blob_upload"),
            (
                Method::PATCH,
                "/v2/a/blobs/uploads/9f3c",
                "blob_upload_chunk",
            ),
            (Method::PUT, "/v2/a/blobs/uploads/9f3c", "blob_upload_chunk"),
            (Method::GET, "/v2/blobs/blobs/sha256:ab", "blob"),
            (Method::GET, "/v2/a/tags/list", "tags"),
            (Method::GET, "/v2/a/referrers/sha256:ab", "referrers"),
            (Method::GET, "/v2/a/nothing", "v2_other"),
            (Method::GET, "/api/v1/repositories", "api"),
            (Method::GET, "/auth/token", "token"),
            (Method::GET, "/", "ui"),
            (Method::GET, "/ui/charts/x", "ui"),
            (Method::GET, "/index.yaml", "helm_repository"),
            (Method::GET, "/healthz", "health"),
            (Method::GET, "/metrics", "metrics"),
        ];
        for (method, path, handler) in cases {
            assert_eq!(handler_of(&method, path), handler, "{method} {path}");
        }
    }

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let invented = Method::from_bytes(b"XYZZY").unwrap();
        assert_eq!(method_label(&invented), "other");
    }
}
