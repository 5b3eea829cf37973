//! HTTPS: the certificate and key from `server.tls`, validated at startup and re-read when
//! either file changes, so that rotated certificates (cert-manager, …) apply without a restart.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use futures_util::{Stream, StreamExt};
use oci_storage_config::TlsConfig;
use poem::listener::{RustlsCertificate, RustlsConfig};

/// How often the files are checked for changes.
const POLL: Duration = Duration::from_secs(30);

/// Reads and checks the PEM files: at least one certificate and exactly one private key.
fn load(tls: &TlsConfig) -> anyhow::Result<RustlsConfig> {
    let cert = std::fs::read(&tls.cert)
        .with_context(|| format!("reading server.tls.cert {}", tls.cert.display()))?;
    let key = std::fs::read(&tls.key)
        .with_context(|| format!("reading server.tls.key {}", tls.key.display()))?;
    let certs = rustls_pemfile::certs(&mut cert.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", tls.cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "no certificate in {}",
        tls.cert.display()
    );
    rustls_pemfile::private_key(&mut key.as_slice())
        .with_context(|| format!("parsing {}", tls.key.display()))?
        .with_context(|| format!("no private key in {}", tls.key.display()))?;
    Ok(RustlsConfig::new().fallback(RustlsCertificate::new().cert(cert).key(key)))
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The TLS configuration now, then again each time the files change (and still parse).
pub fn config_stream(
    tls: TlsConfig,
) -> anyhow::Result<std::pin::Pin<Box<dyn Stream<Item = RustlsConfig> + Send>>> {
    let first = load(&tls)?;
    let stamps = [stamp(&tls.cert), stamp(&tls.key)];
    let later = futures_util::stream::unfold((tls, stamps), move |(tls, mut seen)| async move {
        loop {
            tokio::time::sleep(POLL).await;
            let now = [stamp(&tls.cert), stamp(&tls.key)];
            if now == seen {
                continue;
            }
            seen = now;
            match load(&tls) {
                Ok(config) => {
                    tracing::info!("TLS certificate reloaded");
                    return Some((config, (tls, seen)));
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "keeping the previous TLS certificate")
                }
            }
        }
    });
    Ok(Box::pin(
        futures_util::stream::once(async move { first }).chain(later),
    ))
}

/// Wraps the TCP acceptor under poem's rustls acceptor so that its first `accept` is pending
/// once. poem's acceptor `select!`s between the next TLS configuration and the next
/// connection in random order, and drops a connection that wins before the first
/// configuration is installed: a client connecting right at startup saw a reset. Yielding once
/// lets the (already available) first configuration in first, every time.
#[derive(Debug)]
pub struct ConfigFirst<A> {
    inner: A,
    yielded: bool,
}

impl<A> ConfigFirst<A> {
    pub fn new(inner: A) -> Self {
        Self {
            inner,
            yielded: false,
        }
    }
}

impl<A: poem::listener::Acceptor> poem::listener::Acceptor for ConfigFirst<A> {
    type Io = A::Io;

    fn local_addr(&self) -> Vec<poem::web::LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> std::io::Result<(
        Self::Io,
        poem::web::LocalAddr,
        poem::web::RemoteAddr,
        poem::http::uri::Scheme,
    )> {
        if !self.yielded {
            self.yielded = true;
            tokio::task::yield_now().await;
        }
        self.inner.accept().await
    }
}
