//! Building the `gcloud-storage` client: endpoint and credentials, chosen explicitly so an
//! anonymous emulator setup never looks for credentials or a metadata server.

use gcloud_storage::client::google_cloud_auth::credentials::CredentialsFile;
use gcloud_storage::client::google_cloud_auth::error::Error as AuthError;
use std::time::Duration;

use gcloud_storage::client::{Client, ClientConfig};
use oci_storage_core::PluginError;

use crate::{GcsConfig, config_error};

pub(crate) async fn build(
    config: &GcsConfig,
    endpoint: Option<&str>,
) -> Result<Client, PluginError> {
    let mut client_config = ClientConfig {
        http: Some(http_client()?),
        ..ClientConfig::default()
    };
    if let Some(endpoint) = endpoint {
        client_config.storage_endpoint = endpoint.to_owned();
    }
    client_config = match (&config.credentials_file, config.anonymous) {
        (Some(_), true) => {
            return Err(config_error(
                "anonymous",
                "`anonymous: true` and `credentialsFile` exclude each other",
            ));
        }
        (None, true) => client_config.anonymous(),
        (Some(path), false) => {
            let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                config_error(
                    "credentialsFile",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let credentials = CredentialsFile::new_from_str(&text).await.map_err(|e| {
                config_error(
                    "credentialsFile",
                    format!("{}: {}", path.display(), describe_auth_error(&e)),
                )
            })?;
            client_config
                .with_credentials(credentials)
                .await
                .map_err(|e| {
                    PluginError::Init(format!(
                        "gcs storage: credentials from {}: {}",
                        path.display(),
                        describe_auth_error(&e)
                    ))
                })?
        }
        (None, false) => client_config.with_auth().await.map_err(|e| {
            PluginError::Init(format!(
                "gcs storage: no usable application default credentials ({}); set \
                 storage.gcs.credentialsFile, GOOGLE_APPLICATION_CREDENTIALS, or \
                 `anonymous: true` for an emulator",
                describe_auth_error(&e)
            ))
        })?,
    };
    if let Some(project) = &config.project_id {
        client_config.project_id = Some(project.clone());
    }
    Ok(Client::new(client_config))
}

/// The default client has no timeouts at all: a stalled connection would hang a request
/// forever. Reads get an idle timeout rather than a total one, so long transfers still work.
fn http_client() -> Result<reqwest_middleware::ClientWithMiddleware, PluginError> {
    let client = gcloud_reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| PluginError::Init(format!("gcs storage: HTTP client: {e}")))?;
    Ok(reqwest_middleware::ClientBuilder::new(client).build())
}

/// An auth error for humans, without echoing credential material: serde messages can quote
/// values of the JSON they failed on (a private key, say), so only their position is kept.
fn describe_auth_error(e: &AuthError) -> String {
    match e {
        AuthError::JsonError(json) => format!(
            "not a valid credentials JSON ({:?} error at line {}, column {})",
            json.classify(),
            json.line(),
            json.column()
        ),
        other => other.to_string(),
    }
}
