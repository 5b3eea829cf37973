//! End-to-end tests: the real `oci-storage` binary, driven over HTTP by real clients (skopeo,
//! helm 3 and 4) and by a raw HTTP client for the protocol details.

mod access;
mod api_tokens;
mod backup;
mod container_image;
mod deploy_chart;
mod gc;
mod hardening;
mod helm;
mod helm_repo;
mod identity;
mod lifecycle;
mod metrics;
mod object_storage;
mod operations;
mod protocol;
mod proxy;
mod replicas;
mod rest_api;
mod scrub;
mod skopeo;
mod tls;
mod token_auth;
mod web_ui;
mod zero_copy;

use oci_storage_tests::Server;

/// The binary under test, built by Cargo before this suite.
pub const BIN: &str = env!("CARGO_BIN_EXE_oci-storage");

/// A server with the default test configuration.
pub fn server() -> Server {
    Server::start(BIN)
}
