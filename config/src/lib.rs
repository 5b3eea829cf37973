//! Loading configuration: the YAML file (or the embedded default `config.yaml`), then
//! environment overrides (`OCI_STORAGE__SERVER__PORT=8080`), then `*File` / `*_FILE` secrets
//! read from files, then strict typing (an unknown key is an error naming its path).

mod gc;
mod metrics;
mod model;
mod scrub;

use std::path::{Path, PathBuf};

pub use gc::*;
pub use metrics::*;
pub use model::*;
pub use scrub::*;

/// The default configuration file, fully commented; used when no file is given.
pub const DEFAULT_YAML: &str = include_str!("../config.yaml");

/// Prefix of environment overrides; path segments are separated by `__`.
pub const ENV_PREFIX: &str = "OCI_STORAGE__";

/// Keys holding secrets: each may instead be given as `<key>File` (YAML) or `…_FILE` (env).
const SECRET_KEYS: &[&str] = &[
    "password",
    "token",
    "secretAccessKey",
    "sessionToken",
    "accessKeyId",
    "privateKey",
    "credentialsJson",
];

/// A copy of free-form plugin settings with the values of secret keys masked (for Debug).
pub(crate) fn redact_secrets(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let masked = if SECRET_KEYS.contains(&k.as_str()) {
                        serde_json::Value::String("***".into())
                    } else {
                        redact_secrets(v)
                    };
                    (k.clone(), masked)
                })
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(redact_secrets).collect())
        }
        other => other.clone(),
    }
}

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: invalid YAML: {message}")]
    Yaml { origin: String, message: String },
    #[error("{origin}: at `{path}`: {message}")]
    Invalid {
        origin: String,
        path: String,
        message: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// `embedded default` or the file's path.
    pub origin: String,
    /// Directory that relative paths are resolved against (the working directory).
    pub base_dir: PathBuf,
}

/// Loads `file` (or the embedded default) and applies overrides from `env`.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded, ConfigError> {
    let (text, origin) = match file {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?,
            path.display().to_string(),
        ),
        None => (DEFAULT_YAML.to_owned(), "embedded default".to_owned()),
    };
    let config = parse(&text, &origin, env)?;
    let base_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    Ok(Loaded {
        config,
        origin,
        base_dir,
    })
}

/// Parses YAML text and applies environment overrides and file secrets.
pub fn parse(
    text: &str,
    origin: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Yaml {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
    let mut tree = match yaml {
        serde_yaml_ng::Value::Null => serde_json::Value::Object(Default::default()),
        other => serde_json::to_value(other).map_err(|e| ConfigError::Yaml {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?,
    };
    let schema = serde_json::to_value(Config::default()).expect("defaults serialize");
    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    overrides.sort();
    for (var, value) in overrides {
        apply_env(&mut tree, &schema, &var, &value)?;
    }
    resolve_secret_files(&mut tree, "")?;
    serde_path_to_error::deserialize(tree).map_err(|e| ConfigError::Invalid {
        origin: origin.to_owned(),
        path: e.path().to_string(),
        message: e.into_inner().to_string(),
    })
}

/// Applies one `OCI_STORAGE__A__B_C=value` override: segments match existing or known keys
/// case-insensitively (ignoring `_`), otherwise become camelCase; numbers index lists; the
/// value is read as a YAML scalar (so `8080` is a number and `true` a boolean).
fn apply_env(
    tree: &mut serde_json::Value,
    schema: &serde_json::Value,
    var: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let env_error = |message: String| ConfigError::Env {
        var: var.to_owned(),
        message,
    };
    let mut segments: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_owned)
        .collect();
    if segments.iter().any(String::is_empty) {
        return Err(env_error("empty path segment".into()));
    }
    let mut value = value.to_owned();
    let last = segments.last_mut().expect("split yields one segment");
    if let Some(stripped) = last.strip_suffix("_FILE") {
        value = read_secret_file(Path::new(&value)).map_err(|e| env_error(e.to_string()))?;
        *last = stripped.to_owned();
        if last.is_empty() {
            return Err(env_error("empty path segment".into()));
        }
    }
    let parsed: serde_json::Value = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&value)
        .ok()
        .and_then(|v| serde_json::to_value(v).ok())
        .filter(|v| !v.is_object() && !v.is_array())
        .unwrap_or(serde_json::Value::String(value));

    let mut node = tree;
    let mut schema_node = Some(schema);
    for (i, segment) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        if let Ok(index) = segment.parse::<usize>() {
            if node.is_null() {
                *node = serde_json::Value::Array(Vec::new());
            }
            let list = node.as_array_mut().ok_or_else(|| {
                env_error(format!("`{segment}` indexes a value that is not a list"))
            })?;
            if index > list.len() {
                return Err(env_error(format!("list index {index} skips entries")));
            }
            if index == list.len() {
                list.push(serde_json::Value::Object(Default::default()));
            }
            schema_node = None;
            node = &mut list[index];
        } else {
            if node.is_null() {
                *node = serde_json::Value::Object(Default::default());
            }
            let map = node
                .as_object_mut()
                .ok_or_else(|| env_error(format!("`{segment}` names a key inside a non-map")))?;
            let key = matching_key(map.keys(), segment)
                .or_else(|| {
                    schema_node
                        .and_then(|s| s.as_object())
                        .and_then(|s| matching_key(s.keys(), segment))
                })
                .unwrap_or_else(|| camel_case(segment));
            schema_node = schema_node.and_then(|s| s.get(&key));
            node = map.entry(key).or_insert(serde_json::Value::Null);
        }
        if is_last {
            *node = parsed.clone();
        }
    }
    Ok(())
}

fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

fn matching_key<'a>(mut keys: impl Iterator<Item = &'a String>, segment: &str) -> Option<String> {
    let wanted = normalize(segment);
    keys.find(|k| normalize(k) == wanted).cloned()
}

fn camel_case(segment: &str) -> String {
    let mut out = String::new();
    for (i, word) in segment.split('_').filter(|w| !w.is_empty()).enumerate() {
        let word = word.to_lowercase();
        if i == 0 {
            out.push_str(&word);
        } else {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    out
}

/// Replaces every `<secret>File: PATH` with `<secret>: <content of PATH>`.
fn resolve_secret_files(node: &mut serde_json::Value, path: &str) -> Result<(), ConfigError> {
    match node {
        serde_json::Value::Object(map) => {
            for secret in SECRET_KEYS {
                let file_key = format!("{secret}File");
                if let Some(file) = map.remove(&file_key) {
                    let at = format!("{path}{file_key}");
                    let file = file.as_str().ok_or_else(|| ConfigError::Invalid {
                        origin: "configuration".into(),
                        path: at.clone(),
                        message: "expected a file path".into(),
                    })?;
                    let content =
                        read_secret_file(Path::new(file)).map_err(|e| ConfigError::Invalid {
                            origin: "configuration".into(),
                            path: at,
                            message: e.to_string(),
                        })?;
                    map.insert((*secret).to_owned(), serde_json::Value::String(content));
                }
            }
            for (key, child) in map.iter_mut() {
                resolve_secret_files(child, &format!("{path}{key}."))?;
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                resolve_secret_files(child, &format!("{path}[{i}]."))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Reads a secret from a file, without the trailing newline editors add.
fn read_secret_file(path: &Path) -> std::io::Result<String> {
    let content = std::fs::read_to_string(path)?;
    Ok(content.trim_end_matches(['\n', '\r']).to_owned())
}

#[cfg(test)]
mod tests;
