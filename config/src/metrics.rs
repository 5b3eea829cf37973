//! `metrics`: Prometheus metrics at `GET /metrics`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `metrics`: what is exposed, to whom, where.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Who may read them.
    pub access: MetricsAccess,
    /// Serve them on this address only, not on the service port (a port the Service or the
    /// network policy keeps inside the cluster).
    pub listen: Option<ListenAddress>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            access: MetricsAccess::Anyone,
            listen: None,
        }
    }
}

/// `metrics.access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAccess {
    /// Anyone who reaches the address (what Prometheus scrapes without credentials).
    Anyone,
    /// An administrator's password (Basic) or a bearer token of the token service; API
    /// tokens never act as administrators.
    Admins,
}

/// `host:port`, checked when the configuration loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct ListenAddress(pub SocketAddr);

impl TryFrom<String> for ListenAddress {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
            .map(Self)
            .map_err(|_| format!("{s:?} is not an address and port such as 0.0.0.0:9102"))
    }
}

impl From<ListenAddress> for String {
    fn from(a: ListenAddress) -> String {
        a.0.to_string()
    }
}
