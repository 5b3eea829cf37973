//! Reading a chart archive (`.tgz`) safely: streaming, with bounds on compressed size,
//! inflated size and entry count, refusing links and paths that escape the chart directory.
//! Answers the chart's metadata (all of Chart.yaml), values.yaml, README, values.schema.json and
//! the list of templates. Blocking: run it on the blocking pool.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

/// Bounds for reading one chart.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_unpacked_bytes: u64,
    pub max_entries: u64,
    pub max_file_bytes: u64,
}

/// Why a chart was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChartError {
    #[error("chart archive is not a gzip'd tar: {0}")]
    Archive(String),
    #[error("chart inflates past {0} bytes")]
    TooLarge(u64),
    #[error("chart has more than {0} entries")]
    TooManyEntries(u64),
    #[error("chart entry {0:?} escapes the chart directory")]
    UnsafePath(String),
    #[error("chart entry {0:?} is a link; links are not allowed in charts")]
    Link(String),
    #[error("chart has no Chart.yaml at its top directory")]
    NoChartYaml,
    #[error("{file} is larger than {limit} bytes")]
    FileTooLarge { file: String, limit: u64 },
    #[error("Chart.yaml is invalid: {0}")]
    InvalidChartYaml(String),
}

/// A maintainer in Chart.yaml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Maintainer {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A dependency in Chart.yaml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// Chart.yaml, every field Helm defines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartMetadata {
    #[serde(default = "default_api_version")]
    pub api_version: String,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintainers: Vec<Maintainer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_version: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deprecated: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub chart_type: Option<String>,
}

fn default_api_version() -> String {
    "v1".into()
}

/// What is kept of a chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartContent {
    pub metadata: ChartMetadata,
    pub values: Option<String>,
    pub readme: Option<String>,
    pub values_schema: Option<String>,
    pub templates: Vec<String>,
}

/// Counts bytes read, failing past a limit (so a tar bomb stops early).
struct Bounded<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(std::io::Error::other(BoundExceeded));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct BoundExceeded;

impl std::fmt::Display for BoundExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("inflated size limit exceeded")
    }
}

impl std::error::Error for BoundExceeded {}

fn archive_error(e: std::io::Error, limits: &Limits) -> ChartError {
    if e.get_ref().is_some_and(|inner| inner.is::<BoundExceeded>()) {
        ChartError::TooLarge(limits.max_unpacked_bytes)
    } else {
        ChartError::Archive(e.to_string())
    }
}

/// Reads a chart archive from `input` (the gzip'd tar), within `limits`.
pub fn read_chart(input: impl Read, limits: Limits) -> Result<ChartContent, ChartError> {
    let gz = flate2::read::GzDecoder::new(input);
    let bounded = Bounded {
        inner: gz,
        read: 0,
        limit: limits.max_unpacked_bytes,
    };
    let mut archive = tar::Archive::new(bounded);
    let mut top: Option<String> = None;
    let mut chart_yaml: Option<String> = None;
    let mut values = None;
    let mut readme = None;
    let mut schema = None;
    let mut templates = Vec::new();
    let mut count = 0u64;
    for entry in archive.entries().map_err(|e| archive_error(e, &limits))? {
        let mut entry = entry.map_err(|e| archive_error(e, &limits))?;
        count += 1;
        if count > limits.max_entries {
            return Err(ChartError::TooManyEntries(limits.max_entries));
        }
        let path = entry
            .path()
            .map_err(|e| ChartError::Archive(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(ChartError::Link(path));
        }
        let parts: Vec<&str> = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if path.starts_with('/') || parts.iter().any(|p| *p == ".." || p.contains('\\')) {
            return Err(ChartError::UnsafePath(path));
        }
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let Some((first, rest)) = parts.split_first() else {
            continue;
        };
        if !kind.is_file() {
            continue;
        }
        let top_dir = top.get_or_insert_with(|| (*first).to_owned());
        if top_dir != first {
            // A second top-level directory: not a chart layout Helm produces.
            return Err(ChartError::UnsafePath(path));
        }
        let relative = rest.join("/");
        let mut keep = |name: &str, slot: &mut Option<String>| -> Result<(), ChartError> {
            *slot = Some(read_text(&mut entry, name, limits.max_file_bytes, &limits)?);
            Ok(())
        };
        match relative.as_str() {
            "Chart.yaml" => keep("Chart.yaml", &mut chart_yaml)?,
            "values.yaml" => keep("values.yaml", &mut values)?,
            "values.schema.json" => keep("values.schema.json", &mut schema)?,
            r if readme.is_none() && r.eq_ignore_ascii_case("README.md") => {
                keep("README.md", &mut readme)?
            }
            r if r.starts_with("templates/") => templates.push(r["templates/".len()..].to_owned()),
            _ => {}
        }
    }
    let chart_yaml = chart_yaml.ok_or(ChartError::NoChartYaml)?;
    check_yaml_structure(&chart_yaml)?;
    let metadata: ChartMetadata = serde_yaml_ng::from_str(&chart_yaml)
        .map_err(|e| ChartError::InvalidChartYaml(e.to_string()))?;
    validate(&metadata)?;
    templates.sort();
    Ok(ChartContent {
        metadata,
        values,
        readme,
        values_schema: schema,
        templates,
    })
}

/// Deepest nesting accepted in Chart.yaml (Helm's own fields go four levels deep).
const MAX_YAML_DEPTH: usize = 64;

/// Checks Chart.yaml with the event parser before the YAML deserializer reads it:
/// - No aliases. Helm refuses Chart.yaml files that alias much ("excessive aliasing"), and a
///   chart's metadata has no use for them; refusing them all keeps alias bombs (billion
///   laughs) out, also under keys nobody reads.
/// - At most [`MAX_YAML_DEPTH`] levels of nesting. libyaml, under serde_yaml_ng, takes time
///   quadratic in the depth of flow collections: 300 KiB of `[` (under 1 KiB gzip'd) held a
///   blocking thread for 3.6 minutes in a release build, and files may have 1 MiB.
///
/// A document the event parser cannot read is left to the YAML deserializer to judge when it
/// has too few `[` and `{` to nest deeply; otherwise it is refused.
fn check_yaml_structure(yaml: &str) -> Result<(), ChartError> {
    use saphyr_parser::Event;
    let refuse = |message: String| Err(ChartError::InvalidChartYaml(message));
    let mut depth = 0usize;
    for event in saphyr_parser::Parser::new_from_str(yaml) {
        match event {
            Ok((Event::Alias(_), _)) => {
                return refuse("YAML aliases (*name) are not allowed in Chart.yaml".into());
            }
            Ok((Event::SequenceStart(..) | Event::MappingStart(..), _)) => {
                depth += 1;
                if depth > MAX_YAML_DEPTH {
                    return refuse(format!("nested deeper than {MAX_YAML_DEPTH} levels"));
                }
            }
            Ok((Event::SequenceEnd | Event::MappingEnd, _)) => depth = depth.saturating_sub(1),
            Ok(_) => {}
            Err(e) => {
                let opens = yaml.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
                if opens > MAX_YAML_DEPTH {
                    return refuse(format!("{e} (and too many [ and {{ to read it safely)"));
                }
                return Ok(());
            }
        }
    }
    Ok(())
}

fn read_text(
    entry: &mut impl Read,
    name: &str,
    max: u64,
    limits: &Limits,
) -> Result<String, ChartError> {
    let mut buf = Vec::new();
    entry
        .take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| archive_error(e, limits))?;
    if buf.len() as u64 > max {
        return Err(ChartError::FileTooLarge {
            file: name.to_owned(),
            limit: max,
        });
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn validate(m: &ChartMetadata) -> Result<(), ChartError> {
    let invalid = |msg: String| Err(ChartError::InvalidChartYaml(msg));
    let name_ok = !m.name.is_empty()
        && m.name.len() <= 250
        && m.name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        });
    if !name_ok {
        return invalid(format!("chart name {:?} is not a valid chart name", m.name));
    }
    if semver::Version::parse(&m.version).is_err() {
        return invalid(format!(
            "version {:?} is not semantic versioning 2",
            m.version
        ));
    }
    if m.api_version != "v1" && m.api_version != "v2" {
        return invalid(format!("apiVersion {:?} is not v1 or v2", m.api_version));
    }
    Ok(())
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    pub fn limits() -> Limits {
        Limits {
            max_unpacked_bytes: 1024 * 1024,
            max_entries: 100,
            max_file_bytes: 64 * 1024,
        }
    }

    /// A gzip'd tar of (path, content) files; paths are written raw, so hostile names work.
    pub fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut header = tar::Header::new_gnu();
            header.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            builder.append(&header, *content).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    const CHART: &[u8] = b"apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: \"4.5\"\ndescription: A demo\nkeywords: [web]\nmaintainers: [{name: Ann, email: a@x.io}]\ndependencies: [{name: redis, version: 1.x, repository: oci://r}]\nannotations: {a: b}\ntype: application\n";

    #[test]
    fn reads_a_chart() {
        let archive = tgz(&[
            ("demo/Chart.yaml", CHART),
            ("demo/values.yaml", b"replicas: 1\n"),
            ("demo/README.md", b"# Demo\n"),
            ("demo/templates/deployment.yaml", b"kind: Deployment\n"),
            ("demo/templates/_helpers.tpl", b""),
        ]);
        let chart = read_chart(archive.as_slice(), limits()).unwrap();
        assert_eq!(chart.metadata.name, "demo");
        assert_eq!(chart.metadata.app_version.as_deref(), Some("4.5"));
        assert_eq!(
            chart.metadata.maintainers[0].email.as_deref(),
            Some("a@x.io")
        );
        assert_eq!(chart.metadata.dependencies[0].name, "redis");
        assert_eq!(chart.values.as_deref(), Some("replicas: 1\n"));
        assert_eq!(chart.readme.as_deref(), Some("# Demo\n"));
        assert_eq!(chart.templates, ["_helpers.tpl", "deployment.yaml"]);
    }

    #[test]
    fn refuses_aliases_in_chart_yaml_but_not_in_values() {
        let laughs = b"apiVersion: v2\nname: demo\nversion: 1.0.0\nx: &a [\"lol\",\"lol\"]\ny: &b [*a,*a,*a,*a]\nz: [*b,*b,*b,*b]\n";
        let err = read_chart(tgz(&[("demo/Chart.yaml", laughs)]).as_slice(), limits());
        assert!(
            matches!(err, Err(ChartError::InvalidChartYaml(ref m)) if m.contains("alias")),
            "{err:?}"
        );
        let quoted = b"apiVersion: v2\nname: demo\nversion: 1.0.0\ndescription: \"*not an alias* & not an anchor\"\n";
        let values = b"base: &base {a: 1}\nother: *base\n";
        let chart = read_chart(
            tgz(&[("demo/Chart.yaml", quoted), ("demo/values.yaml", values)]).as_slice(),
            limits(),
        )
        .unwrap();
        assert_eq!(
            chart.metadata.description.as_deref(),
            Some("*not an alias* & not an anchor")
        );
    }

    #[test]
    fn refuses_hostile_archives() {
        let bomb = vec![0u8; 2 * 1024 * 1024];
        let err = read_chart(
            tgz(&[("demo/Chart.yaml", CHART), ("demo/big", &bomb)]).as_slice(),
            limits(),
        );
        assert_eq!(err.unwrap_err(), ChartError::TooLarge(1024 * 1024));

        let many: Vec<(String, Vec<u8>)> = (0..101)
            .map(|i| (format!("demo/f{i}"), Vec::new()))
            .collect();
        let refs: Vec<(&str, &[u8])> = many
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_slice()))
            .collect();
        assert_eq!(
            read_chart(tgz(&refs).as_slice(), limits()).unwrap_err(),
            ChartError::TooManyEntries(100)
        );

        let escape = read_chart(
            tgz(&[("demo/Chart.yaml", CHART), ("demo/../../etc/x", b"x")]).as_slice(),
            limits(),
        );
        assert!(
            matches!(
                escape,
                Err(ChartError::UnsafePath(_)) | Err(ChartError::Archive(_))
            ),
            "{escape:?}"
        );

        let absurd = vec![b'#'; 70 * 1024];
        assert!(matches!(
            read_chart(tgz(&[("demo/Chart.yaml", &absurd)]).as_slice(), limits()),
            Err(ChartError::FileTooLarge { .. })
        ));
        let bad_version = b"apiVersion: v2\nname: demo\nversion: latest\n";
        assert!(matches!(
            read_chart(
                tgz(&[("demo/Chart.yaml", bad_version)]).as_slice(),
                limits()
            ),
            Err(ChartError::InvalidChartYaml(_))
        ));
        assert!(matches!(
            read_chart(&b"not gzip"[..], limits()),
            Err(ChartError::Archive(_))
        ));
        assert_eq!(
            read_chart(tgz(&[("demo/values.yaml", b"a: 1")]).as_slice(), limits()).unwrap_err(),
            ChartError::NoChartYaml
        );
    }
}
