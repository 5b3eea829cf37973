//! Logging: tracing set up as text or JSON, and one access-log line per request (method,
//! path, status, duration, user). Headers are never logged, so credentials never are.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use oci_storage_config::{LogFormat, LoggingConfig};
use poem::{Endpoint, IntoResponse, Request, Response};
use tracing_subscriber::EnvFilter;

/// Sets up the global subscriber, writing to standard output. `RUST_LOG` wins over the
/// configured level.
pub fn init(config: &LoggingConfig) {
    init_to(config, Output::Stdout);
}

/// Where log lines go: the server logs to standard output; commands that print results
/// (`backup list`, …) log to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

pub fn init_to(config: &LoggingConfig, output: Output) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || -> Box<dyn std::io::Write> {
            match output {
                Output::Stdout => Box::new(std::io::stdout()),
                Output::Stderr => Box::new(std::io::stderr()),
            }
        });
    let result = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging was already initialised: {e}");
    }
}

/// Filled in by the handler that authenticated the request, read by the access log.
#[derive(Debug, Clone, Default)]
pub struct RequestUser(Arc<Mutex<Option<String>>>);

impl RequestUser {
    pub fn set(&self, user: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(user.to_owned());
    }

    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Wraps the whole application: logs every request once it has been answered.
pub async fn access_log<E: Endpoint>(next: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let remote = req.remote_addr().to_string();
    let remote = remote
        .strip_prefix("socket://")
        .unwrap_or(&remote)
        .to_owned();
    let user = RequestUser::default();
    req.extensions_mut().insert(user.clone());
    let result = next.call(req).await;
    let resp = match result {
        Ok(resp) => resp.into_response(),
        Err(err) => err.into_response(),
    };
    tracing::info!(
        target: "access",
        method = %method,
        path = %path,
        status = resp.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        user = user.get().as_deref().unwrap_or("-"),
        remote = %remote,
        "request"
    );
    Ok(resp)
}
