//! Properties of chart-archive reading, which runs on every pushed Helm chart (on the
//! blocking pool, where a panic becomes a 500): arbitrary bytes, arbitrary tar entries and
//! arbitrary Chart.yaml text are read or refused, never a panic; what is accepted meets the
//! limits and Helm's rules; refusals map to a 4xx; and a valid Chart.yaml reads back as written.

use std::io::Write;

use proptest::prelude::*;

use super::*;
use crate::test_support::{json_value, near_valid};

/// Small limits, so generated archives reach them.
fn small_limits() -> Limits {
    Limits {
        max_unpacked_bytes: 64 * 1024,
        max_entries: 16,
        max_file_bytes: 4 * 1024,
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// One raw tar entry: name bytes, type flag, content, and the size its header declares
/// (which may lie), with or without a valid header checksum.
#[derive(Debug, Clone)]
struct RawEntry {
    name: Vec<u8>,
    kind: u8,
    content: Vec<u8>,
    declared: Option<u64>,
    checksum: bool,
}

fn raw_tar(entries: &[RawEntry], end_marker: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut header = tar::Header::new_gnu();
        let name = &e.name[..e.name.len().min(100)];
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        header.set_size(e.declared.unwrap_or(e.content.len() as u64));
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::new(e.kind));
        if e.checksum {
            header.set_cksum();
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&e.content);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    if end_marker {
        out.resize(out.len() + 1024, 0);
    }
    out
}

const CHART: &str = "\
apiVersion: v2
name: demo
version: 1.2.3
appVersion: \"4.5\"
description: A demo
keywords: [web]
maintainers: [{name: Ann, email: a@x.io}]
dependencies: [{name: redis, version: 1.x, repository: oci://r}]
annotations: {a: b}
type: application
";

/// Chart.yaml text: arbitrary, near-valid, JSON (which is YAML), deeply nested, or aliased.
fn chart_yaml() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        near_valid(Just(CHART.to_owned())),
        near_valid(near_valid(Just(CHART.to_owned()))),
        json_value().prop_map(|v| v.to_string()),
        (
            0..20_000usize,
            prop::sample::select(vec!["[", "{a: ", "- ", "a:\n ", "!!map {? "])
        )
            .prop_map(|(n, open)| format!("{CHART}x: {}", open.repeat(n))),
        // Keys whose values start with anchors, aliases, tags, complex keys or open quotes.
        concat!(
            "(apiVersion: v[12]\nname: demo\nversion: 1.0.0\n)?",
            "([a-z]: (&a |\\*a |!!str |\\? |\\[|\\{|'|\")*[a-z0-9]{0,3}\n){0,6}",
        ),
    ]
}

fn entry() -> impl Strategy<Value = RawEntry> {
    let name = prop_oneof![
        3 => prop::sample::select(vec![
            "demo/Chart.yaml", "demo/values.yaml", "demo/README.md", "demo/readme.MD",
            "demo/values.schema.json", "demo/templates/a.yaml", "demo/templates/", "demo/",
            "demo/../x", "/etc/passwd", "./demo/Chart.yaml", "demo//Chart.yaml",
            "demo\\..\\x", "other/Chart.yaml", "Chart.yaml", "", ".", "..",
            "././@LongLink", "demo/./templates/b.tpl",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..100),
    ];
    // Regular, links, directory, pax, GNU long name, and anything else.
    let kind = prop_oneof![
        3 => prop::sample::select(vec![b'0', 0, b'1', b'2', b'5', b'x', b'g', b'L', b'K']),
        1 => any::<u8>(),
    ];
    let content = prop_oneof![
        chart_yaml().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..600),
        (0..8 * 1024usize).prop_map(|n| vec![b'#'; n]),
    ];
    let declared =
        prop::option::weighted(0.1, prop_oneof![0..2048u64, Just(u64::MAX), any::<u64>()]);
    (name, kind, content, declared, prop::bool::weighted(0.95)).prop_map(
        |(name, kind, content, declared, checksum)| RawEntry {
            name,
            kind,
            content,
            declared,
            checksum,
        },
    )
}

/// Entries put in an archive as-is, or led by a valid Chart.yaml so later entries are read.
fn entries() -> impl Strategy<Value = Vec<RawEntry>> {
    (any::<bool>(), prop::collection::vec(entry(), 0..20)).prop_map(|(lead, mut entries)| {
        if lead {
            let chart = RawEntry {
                name: b"demo/Chart.yaml".to_vec(),
                kind: b'0',
                content: CHART.as_bytes().to_vec(),
                declared: None,
                checksum: true,
            };
            entries.insert(0, chart);
        }
        entries
    })
}

/// What an accepted chart must be, whatever the archive looked like.
fn check_accepted(
    result: &Result<ChartContent, ChartError>,
    limits: &Limits,
) -> Result<(), TestCaseError> {
    match result {
        Ok(chart) => {
            let m = &chart.metadata;
            prop_assert!(!m.name.is_empty() && m.name.len() <= 250);
            prop_assert!(
                m.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
            );
            prop_assert!(semver::Version::parse(&m.version).is_ok());
            prop_assert!(m.api_version == "v1" || m.api_version == "v2");
            for text in [&chart.values, &chart.readme, &chart.values_schema]
                .into_iter()
                .flatten()
            {
                // Lossy UTF-8 may grow a file by up to 3 bytes per 1 byte read.
                prop_assert!(text.len() as u64 <= 3 * limits.max_file_bytes);
            }
            prop_assert!(chart.templates.len() as u64 <= limits.max_entries);
            prop_assert!(chart.templates.is_sorted());
        }
        Err(e) => {
            let mapped = crate::charts::invalid_chart(format!("invalid Helm chart: {e}"));
            prop_assert!((400..500).contains(&mapped.status));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_are_read_or_refused(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        gzipped in any::<bool>(),
    ) {
        let input = if gzipped { gzip(&bytes) } else { bytes };
        let limits = small_limits();
        check_accepted(&read_chart(input.as_slice(), limits), &limits)?;
    }

    #[test]
    fn arbitrary_tar_entries_are_read_or_refused(
        entries in entries(),
        end in any::<bool>(),
        cut in any::<prop::sample::Index>(),
        truncate in prop::bool::weighted(0.2),
    ) {
        let mut tar = raw_tar(&entries, end);
        if truncate {
            tar.truncate(cut.index(tar.len() + 1));
        }
        let limits = small_limits();
        check_accepted(&read_chart(gzip(&tar).as_slice(), limits), &limits)?;
    }

    #[test]
    fn arbitrary_chart_yaml_is_read_or_refused(yaml in chart_yaml()) {
        let archive = tests::tgz(&[("demo/Chart.yaml", yaml.as_bytes())]);
        let limits = tests::limits();
        let result = read_chart(archive.as_slice(), limits);
        check_accepted(&result, &limits)?;
    }

    /// Balanced flow nesting is read up to the depth limit and refused past it, before
    /// libyaml (quadratic in flow depth) sees it.
    #[test]
    fn flow_nesting_is_bounded(
        depth in 0..200usize,
        open in prop::sample::select(vec![("[", "]"), ("{a: ", "}")]),
    ) {
        let yaml = format!("{CHART}x: {}1{}\n", open.0.repeat(depth), open.1.repeat(depth));
        let archive = tests::tgz(&[("demo/Chart.yaml", yaml.as_bytes())]);
        let result = read_chart(archive.as_slice(), tests::limits());
        // The document itself is one level (its top mapping).
        prop_assert_eq!(result.is_ok(), depth < MAX_YAML_DEPTH, "{:?}", result.err());
    }

    #[test]
    fn valid_chart_yaml_reads_back_as_written(m in metadata()) {
        let yaml = serde_yaml_ng::to_string(&m).unwrap();
        let archive = tests::tgz(&[(&format!("{}/Chart.yaml", m.name), yaml.as_bytes())]);
        let chart = read_chart(archive.as_slice(), tests::limits())
            .map_err(|e| TestCaseError::fail(format!("{e}:\n{yaml}")))?;
        prop_assert_eq!(chart.metadata, m);
    }
}

/// Chart.yaml as Helm writes it: valid name and semver, any text in the free-form fields.
fn metadata() -> impl Strategy<Value = ChartMetadata> {
    let text = "[ -~äéß漢]{0,20}";
    // SemVer 2: no leading zeros in numbers, pre-release identifiers included.
    let n = "(0|[1-9][0-9]{0,3})";
    let pre = "([a-z][a-z0-9]{0,4}|0|[1-9][0-9]{0,3})(\\.[a-z][a-z0-9]{0,4})?";
    let version =
        proptest::string::string_regex(&format!("{n}\\.{n}\\.{n}(-{pre})?(\\+[a-z0-9]{{1,5}})?"))
            .unwrap();
    let maintainer = (text, prop::option::of(text), prop::option::of(text))
        .prop_map(|(name, email, url)| Maintainer { name, email, url });
    let dependency = (
        text,
        prop::option::of(text),
        prop::option::of(text),
        prop::collection::vec(text, 0..2),
    )
        .prop_map(|(name, version, repository, tags)| Dependency {
            name,
            version,
            repository,
            condition: None,
            tags,
            alias: None,
        });
    (
        ("v[12]", "[a-z0-9][a-z0-9_.-]{0,30}", version),
        (
            prop::option::of(text),
            prop::option::of(text),
            prop::collection::vec(text, 0..3),
        ),
        (
            prop::collection::vec(maintainer, 0..2),
            prop::collection::vec(dependency, 0..2),
        ),
        (
            any::<bool>(),
            prop::collection::btree_map("[a-z./]{1,12}", text, 0..3),
            prop::option::of("application|library"),
        ),
    )
        .prop_map(
            |(
                (api_version, name, version),
                (app_version, description, keywords),
                (maintainers, dependencies),
                (deprecated, annotations, chart_type),
            )| {
                ChartMetadata {
                    api_version,
                    name,
                    version,
                    app_version,
                    description,
                    keywords,
                    maintainers,
                    home: None,
                    sources: Vec::new(),
                    icon: None,
                    dependencies,
                    kube_version: None,
                    deprecated,
                    annotations,
                    chart_type,
                }
            },
        )
}

#[test]
fn a_megabyte_of_flow_nesting_is_refused_before_libyaml_reads_it() {
    // Found by `arbitrary_chart_yaml_is_read_or_refused`: libyaml's time is quadratic in flow
    // depth; 300 KiB of `[` took 3.6 minutes of CPU in a release build, and the default file
    // limit is 1 MiB. saphyr stops at 255 flow levels, so this also covers the branch where
    // the event parser cannot read the document.
    let limits = Limits {
        max_unpacked_bytes: 4 * 1024 * 1024,
        max_entries: 10,
        max_file_bytes: 1024 * 1024,
    };
    for open in ["[", "{a: ["] {
        let yaml = format!("{CHART}x: {}", open.repeat(1000 * 1024 / open.len()));
        let archive = tests::tgz(&[("demo/Chart.yaml", yaml.as_bytes())]);
        let err = read_chart(archive.as_slice(), limits).unwrap_err();
        assert!(matches!(err, ChartError::InvalidChartYaml(_)), "{err}");
    }
}
