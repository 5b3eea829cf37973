//! The deployment chart in `helm/`: it lints, renders objects the Kubernetes schemas accept for
//! the main value combinations, keeps every secret out of its ConfigMap, refuses what cannot
//! work, stays in step with `config/config.yaml`, and the configuration it renders — with its
//! Secrets mounted where the Deployment mounts them — is accepted by the very binary it deploys,
//! which then serves with it (logins, probes, the `helm test` hook, an S3 bucket and a backup
//! target reached with the credentials the chart mounted).
//!
//! No cluster: `helm template` renders, `kubernetes-validate` checks the objects offline, and a
//! small stand-in for the kubelet lays the Pod's volumes out in a directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use oci_storage_tests::object_stores::{
    S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, SeaweedFs, free_port, unique_prefix,
};
use oci_storage_tests::{Server, require_tool, run, run_ok};
use serde_yaml_ng::Value;

const RELEASE: &str = "reg";
/// The chart's full name for [`RELEASE`].
const FULLNAME: &str = "reg-oci-storage";
/// Kubernetes versions the objects must be valid for: the chart's `kubeVersion` floor and the
/// newest schemas kubernetes-validate carries.
const KUBE_VERSIONS: [&str; 2] = ["1.25.0", "1.37.0"];
/// Keys the binary reads as secrets (config/src/lib.rs): none may be in a ConfigMap.
const SECRET_KEYS: [&str; 7] = [
    "password",
    "token",
    "secretAccessKey",
    "sessionToken",
    "accessKeyId",
    "privateKey",
    "credentialsJson",
];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart_dir() -> PathBuf {
    repo_root().join("helm")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// `helm <verb> reg ./helm -f values.yaml <args>` for `template`; `helm lint ./helm …`.
fn helm(verb: &str, values: &str, args: &[&str]) -> std::process::Output {
    require_tool("helm");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, values).unwrap();
    let mut cmd = Command::new("helm");
    cmd.arg(verb);
    if verb == "template" {
        cmd.arg(RELEASE);
    }
    cmd.arg(chart_dir()).arg("-f").arg(&file).args(args);
    run(&mut cmd)
}

/// What `helm template` rendered, parsed.
struct Rendered {
    text: String,
    objects: Vec<Value>,
}

fn render(values: &str, args: &[&str]) -> Rendered {
    let out = helm("template", values, args);
    assert!(
        out.status.success(),
        "helm template failed:\n{}\nvalues:\n{values}",
        text(&out.stderr)
    );
    let text = text(&out.stdout);
    let objects = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| <Value as serde::Deserialize>::deserialize(doc).expect("rendered YAML"))
        .filter(|v| !v.is_null())
        .collect();
    Rendered { text, objects }
}

/// The error `helm template` fails with.
fn refusal(values: &str) -> String {
    let out = helm("template", values, &[]);
    assert!(
        !out.status.success(),
        "rendered, but should have been refused:\nvalues:\n{values}\n{}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(v, |v, key| match key.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(*key),
        })
}

impl Rendered {
    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|o| str_at(o, &["kind"]) == Some(kind))
            .collect()
    }

    fn has(&self, kind: &str) -> bool {
        !self.all(kind).is_empty()
    }

    /// The one object of this kind and name.
    fn get(&self, kind: &str, name: &str) -> &Value {
        self.all(kind)
            .into_iter()
            .find(|o| str_at(o, &["metadata", "name"]) == Some(name))
            .unwrap_or_else(|| panic!("no {kind} {name} in:\n{}", self.text))
    }

    fn deployment(&self) -> &Value {
        self.get("Deployment", FULLNAME)
    }

    fn container(&self) -> &Value {
        at(
            self.deployment(),
            &["spec", "template", "spec", "containers", "0"],
        )
        .unwrap()
    }

    /// The configuration file in the ConfigMap, parsed.
    fn config(&self) -> Value {
        let file = str_at(self.get("ConfigMap", FULLNAME), &["data", "config.yaml"]).unwrap();
        serde_yaml_ng::from_str(file).unwrap()
    }

    /// The chart's Secret, decoded (empty when it renders none).
    fn secret_data(&self) -> BTreeMap<String, String> {
        let Some(secret) = self
            .all("Secret")
            .into_iter()
            .find(|o| str_at(o, &["metadata", "name"]) == Some(FULLNAME))
        else {
            return BTreeMap::new();
        };
        at(secret, &["data"])
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().unwrap())
                    .unwrap();
                (k.as_str().unwrap().to_owned(), text(&bytes))
            })
            .collect()
    }
}

/// The objects against the Kubernetes schemas (kubernetes-validate, offline, strict: unknown
/// fields are errors), for each of [`KUBE_VERSIONS`]. The Prometheus Operator's kinds have no
/// schema there: [`check_monitoring`] checks them.
fn validate(rendered: &Rendered) {
    require_tool("kubernetes-validate");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifests.yaml");
    std::fs::write(&file, &rendered.text).unwrap();
    let mut cmd = Command::new("kubernetes-validate");
    cmd.args(["--strict", "--quiet"]);
    for version in KUBE_VERSIONS {
        cmd.args(["-k", version]);
    }
    let out = run(cmd.arg(&file));
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "kubernetes-validate:\n{report}\n{}",
        rendered.text
    );
    for line in report.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.starts_with("WARN")
                && (line.contains("kind ServiceMonitor ") || line.contains("kind PrometheusRule ")),
            "unexpected kubernetes-validate output (an unknown kind is only a warning there): {line}"
        );
    }
    check_monitoring(rendered);
}

/// ServiceMonitor and PrometheusRule checked by hand: the fields the operator requires, a
/// selector that matches the chart's Service, a port the Service has, rules with alert, expr
/// and severity over metric names oci-storage exports.
fn check_monitoring(rendered: &Rendered) {
    for monitor in rendered.all("ServiceMonitor") {
        assert_eq!(
            str_at(monitor, &["apiVersion"]),
            Some("monitoring.coreos.com/v1")
        );
        let service = rendered.get("Service", FULLNAME);
        let selector = at(monitor, &["spec", "selector", "matchLabels"])
            .and_then(Value::as_mapping)
            .expect("ServiceMonitor spec.selector.matchLabels");
        let labels = at(service, &["metadata", "labels"]).unwrap();
        for (k, v) in selector {
            assert_eq!(
                labels.get(k.as_str().unwrap()),
                Some(v),
                "ServiceMonitor selects {k:?}={v:?}, the Service is labelled {labels:?}"
            );
        }
        let ports: Vec<&str> = at(service, &["spec", "ports"])
            .and_then(Value::as_sequence)
            .unwrap()
            .iter()
            .map(|p| str_at(p, &["name"]).unwrap())
            .collect();
        let endpoints = at(monitor, &["spec", "endpoints"])
            .and_then(Value::as_sequence)
            .expect("ServiceMonitor spec.endpoints");
        assert!(!endpoints.is_empty());
        for endpoint in endpoints {
            let port = str_at(endpoint, &["port"]).expect("endpoint port name");
            assert!(
                ports.contains(&port),
                "ServiceMonitor scrapes port {port}, the Service has {ports:?}"
            );
            assert_eq!(str_at(endpoint, &["path"]), Some("/metrics"));
            for key in ["interval", "scrapeTimeout"] {
                let value = str_at(endpoint, &[key]).unwrap_or_else(|| panic!("{key}"));
                assert!(
                    value.ends_with('s') || value.ends_with('m'),
                    "{key}: {value}"
                );
            }
        }
    }
    for rule in rendered.all("PrometheusRule") {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rules.yaml");
        std::fs::write(&file, serde_yaml_ng::to_string(&rule["spec"]).unwrap()).unwrap();
        require_tool("promtool");
        run_ok(
            Command::new("promtool")
                .arg("check")
                .arg("rules")
                .arg(&file),
        );
        let groups = at(rule, &["spec", "groups"])
            .and_then(Value::as_sequence)
            .expect("PrometheusRule spec.groups");
        for group in groups {
            assert!(str_at(group, &["name"]).is_some());
            for rule in at(group, &["rules"]).and_then(Value::as_sequence).unwrap() {
                let alert = str_at(rule, &["alert"]).expect("alert name");
                let expr = str_at(rule, &["expr"]).expect("expr");
                assert!(
                    str_at(rule, &["labels", "severity"]).is_some(),
                    "{alert} has no severity"
                );
                assert!(
                    str_at(rule, &["annotations", "summary"]).is_some(),
                    "{alert}"
                );
                check_metric_names(alert, expr);
            }
        }
    }
}

/// Metrics oci-storage exports (CNCF Distribution's names, its own, the process's), plus the
/// kubelet's volume statistics and Prometheus's `up`.
const KNOWN_METRICS: &[&str] = &[
    "registry_http_requests_total",
    "registry_http_request_duration_seconds_bucket",
    "registry_http_in_flight_requests",
    "registry_http_request_size_bytes_sum",
    "registry_http_response_size_bytes_sum",
    "registry_storage_action_seconds_bucket",
    "registry_proxy_requests_total",
    "registry_proxy_hits_total",
    "registry_proxy_misses_total",
    "registry_proxy_pulled_bytes_total",
    "oci_storage_storage_bytes",
    "oci_storage_repositories",
    "oci_storage_uploads_in_progress",
    "oci_storage_proxy_cache_bytes",
    "oci_storage_backup_last_success_timestamp_seconds",
    "oci_storage_backup_duration_seconds",
    "oci_storage_gc_last_success_timestamp_seconds",
    "oci_storage_gc_duration_seconds",
    "oci_storage_gc_reclaimed_bytes_total",
    "oci_storage_login_failures_total",
    "oci_storage_login_throttled_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "kubelet_volume_stats_available_bytes",
    "kubelet_volume_stats_capacity_bytes",
    "up",
];

/// Every metric an expression names (an identifier followed by `{` or `[`, or the whole
/// expression's series) is one oci-storage exports.
fn check_metric_names(what: &str, expr: &str) {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c == '"' {
            // Skip label values.
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += 1;
            }
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            if bytes.get(i) == Some(&b'{') {
                names.push(&expr[start..i]);
            }
            continue;
        }
        i += 1;
    }
    assert!(!names.is_empty(), "{what}: no metric in {expr}");
    for name in names {
        assert!(
            KNOWN_METRICS.contains(&name),
            "{what} uses {name}, which oci-storage does not export: {expr}"
        );
    }
}

/// No ConfigMap holds any of `secrets`, nor a value under a secret key; each of
/// `in_chart_secret` is in the chart's Secret.
fn check_secrets(rendered: &Rendered, secrets: &[&str], in_chart_secret: &[&str]) {
    for map in rendered.all("ConfigMap") {
        let dump = serde_yaml_ng::to_string(map).unwrap();
        for secret in secrets {
            assert!(
                !dump.contains(secret),
                "secret {secret:?} in a ConfigMap:\n{dump}"
            );
        }
    }
    fn walk(v: &Value, path: &str) {
        match v {
            Value::Mapping(m) => {
                for (k, v) in m {
                    let k = k.as_str().unwrap();
                    assert!(
                        !(SECRET_KEYS.contains(&k) && (v.is_string() || v.is_number())),
                        "secret key {path}{k} in the ConfigMap's configuration"
                    );
                    walk(v, &format!("{path}{k}."));
                }
            }
            Value::Sequence(items) => items.iter().for_each(|v| walk(v, path)),
            _ => {}
        }
    }
    walk(&rendered.config(), "");
    let data = rendered.secret_data();
    for secret in in_chart_secret {
        assert!(
            data.values().any(|v| v == secret),
            "{secret:?} not in the chart's Secret: {:?}",
            data.keys()
        );
    }
}

/// A Pod of the Deployment, laid out as the kubelet would: each volume the container mounts
/// becomes a local directory (the ConfigMap's and Secrets' keys written as files, the projected
/// items at their paths), and the configuration is rewritten to point there.
struct Pod {
    dir: tempfile::TempDir,
    /// The configuration, its paths under the container's mounts moved to the directories.
    config: String,
    /// Local directory of each mount path.
    mounts: Vec<(String, PathBuf)>,
    /// The container's environment (plain values), paths on volumes moved likewise.
    env: Vec<(String, String)>,
}

impl Pod {
    /// `existing`: the Secrets the release expects to exist (name, key, value).
    fn new(rendered: &Rendered, existing: &[(&str, &str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pod = at(rendered.deployment(), &["spec", "template", "spec"]).unwrap();
        let volumes: BTreeMap<&str, &Value> = at(pod, &["volumes"])
            .and_then(Value::as_sequence)
            .unwrap()
            .iter()
            .map(|v| (str_at(v, &["name"]).unwrap(), v))
            .collect();
        let chart_secret = rendered.secret_data();
        let secret_value = |name: &str, key: &str| -> String {
            if name == FULLNAME
                && let Some(v) = chart_secret.get(key)
            {
                return v.clone();
            }
            existing
                .iter()
                .find(|(n, k, _)| *n == name && *k == key)
                .map(|(_, _, v)| (*v).to_owned())
                .unwrap_or_else(|| {
                    panic!("the Pod mounts key {key} of Secret {name}, which has none")
                })
        };
        let mut mounts = Vec::new();
        for mount in at(rendered.container(), &["volumeMounts"])
            .and_then(Value::as_sequence)
            .unwrap()
        {
            let name = str_at(mount, &["name"]).unwrap();
            let path = str_at(mount, &["mountPath"]).unwrap();
            assert!(
                at(mount, &["subPath"]).is_none(),
                "{name}: subPath mounts do not see updates"
            );
            let local = dir.path().join(name);
            std::fs::create_dir_all(&local).unwrap();
            let volume = volumes
                .get(name)
                .unwrap_or_else(|| panic!("mount of an undefined volume {name}"));
            if let Some(map) = str_at(volume, &["configMap", "name"]) {
                let data = at(rendered.get("ConfigMap", map), &["data"])
                    .and_then(Value::as_mapping)
                    .unwrap();
                for (k, v) in data {
                    std::fs::write(local.join(k.as_str().unwrap()), v.as_str().unwrap()).unwrap();
                }
            } else if let Some(sources) =
                at(volume, &["projected", "sources"]).and_then(Value::as_sequence)
            {
                for source in sources {
                    let secret = str_at(source, &["secret", "name"]).expect("secret source");
                    for item in at(source, &["secret", "items"])
                        .and_then(Value::as_sequence)
                        .unwrap()
                    {
                        let key = str_at(item, &["key"]).unwrap();
                        let file = local.join(str_at(item, &["path"]).unwrap());
                        assert!(!file.exists(), "two items at {}", file.display());
                        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                        std::fs::write(&file, secret_value(secret, key)).unwrap();
                    }
                }
            }
            mounts.push((path.to_owned(), local));
        }
        // Longest mount paths first, as nested mounts shadow their parents.
        mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        let args: Vec<&str> = at(rendered.container(), &["args"])
            .and_then(Value::as_sequence)
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(args[0], "serve");
        let config_path = args
            .iter()
            .skip_while(|a| **a != "--config")
            .nth(1)
            .expect("--config in the container's args");
        let mut pod = Self {
            dir,
            config: String::new(),
            mounts,
            env: Vec::new(),
        };
        for var in at(rendered.container(), &["env"])
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            if let Some(value) = str_at(var, &["value"]) {
                let mut value = Value::String(value.to_owned());
                pod.relocate(&mut value);
                let name = str_at(var, &["name"]).unwrap().to_owned();
                pod.env.push((name, value.as_str().unwrap().to_owned()));
            }
        }
        let local_config = pod
            .local(config_path)
            .unwrap_or_else(|| panic!("{config_path} is on no volume"));
        let mut config: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(local_config).unwrap()).unwrap();
        pod.relocate(&mut config);
        pod.config = serde_yaml_ng::to_string(&config).unwrap();
        pod
    }

    /// The local file or directory of a path in the container, if it is on a volume.
    fn local(&self, path: &str) -> Option<PathBuf> {
        self.mounts.iter().find_map(|(mount, local)| {
            let rest = path.strip_prefix(mount.as_str())?;
            if rest.is_empty() {
                Some(local.clone())
            } else {
                rest.strip_prefix('/').map(|rest| local.join(rest))
            }
        })
    }

    fn relocate(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Some(local) = self.local(s) {
                    *s = local.to_str().unwrap().to_owned();
                }
            }
            Value::Mapping(m) => m.iter_mut().for_each(|(_, v)| self.relocate(v)),
            Value::Sequence(items) => items.iter_mut().for_each(|v| self.relocate(v)),
            _ => {}
        }
    }

    /// The container's environment, for [`Server::start_with`].
    fn env(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// `oci-storage check-config` on the Pod's configuration and environment; its summary line.
    fn check_config(&self) -> String {
        let file = self.dir.path().join("check.yaml");
        std::fs::write(&file, &self.config).unwrap();
        let out = run(Command::new(super::BIN)
            .arg("check-config")
            .arg("--config")
            .arg(&file)
            .envs(self.env.iter().map(|(k, v)| (k, v))));
        assert!(
            out.status.success(),
            "the rendered configuration is rejected:\n{}\n{}",
            self.config,
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

/// A bcrypt line from `htpasswd -B`.
fn htpasswd_line(user: &str, password: &str) -> String {
    require_tool("htpasswd");
    run_ok(Command::new("htpasswd").args(["-nbB", user, password]))
        .trim()
        .to_owned()
}

/// An argon2id hash from `oci-storage hash-password`.
fn hash_password(password: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new(super::BIN)
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    text(&out.stdout).trim().to_owned()
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Whether the binary this chart was copied from serves metrics (its config.yaml has them).
fn chart_config_has_metrics() -> bool {
    let base: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(chart_dir().join("files/config.yaml")).unwrap(),
    )
    .unwrap();
    base.get("metrics").is_some()
}

#[test]
fn chart_copy_of_the_configuration_matches_config_yaml() {
    let original = std::fs::read(repo_root().join("config/config.yaml")).unwrap();
    let copy = std::fs::read(chart_dir().join("files/config.yaml"))
        .expect("helm/files/config.yaml: run scripts/copy-config.sh");
    assert!(
        original == copy,
        "helm/files/config.yaml differs from config/config.yaml: run scripts/copy-config.sh"
    );
}

#[test]
fn chart_lints_strictly_with_each_value_set() {
    require_tool("helm4");
    for values in [
        "",
        "storage: {type: s3, s3: {bucket: b, region: eu-west-1}}\nreplicaCount: 2\nautoscaling: {enabled: true}\npodDisruptionBudget: {enabled: true}\ningress: {enabled: true, tls: [{secretName: t, hosts: [registry.example.com]}]}\n",
        "storage: {type: gcs, gcs: {bucket: b}, existingSecret: gcs-key}\n",
        "backup: {enabled: true, aws: {bucket: b, region: eu-west-1}, existingSecret: bk, schedule: 24h, keep: {last: 7}}\n",
        "auth: {users: [{username: a, password: x}], htpasswd: {enabled: true, content: 'a:$2y$05$x'}}\n",
        "metrics: {listen: ''}\n",
    ] {
        for helm in ["helm", "helm4"] {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("values.yaml");
            std::fs::write(&file, values).unwrap();
            let out = run(Command::new(helm)
                .arg("lint")
                .arg("--strict")
                .arg(chart_dir())
                .arg("-f")
                .arg(&file));
            assert!(
                out.status.success() && text(&out.stdout).contains("0 chart(s) failed"),
                "{helm} lint --strict with\n{values}\n{}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
    }
}

/// The defaults plus users (a hash in the chart's Secret) and an htpasswd file: valid objects,
/// one replica on a volume, hardened, and a configuration the binary serves with: both users
/// log in, the probes' paths answer, and the `helm test` hook's script passes against it.
#[test]
fn default_release_renders_valid_objects_and_serves_with_its_configuration() {
    let admin_hash = hash_password("chart-admin-pw");
    let htpasswd = htpasswd_line("ci", "chart-ci-pw");
    let values = format!(
        "auth:\n  users:\n    - username: admin\n      password: {}\n      groups: [admins]\n  htpasswd:\n    enabled: true\n    content: {}\n",
        quote(&admin_hash),
        quote(&htpasswd)
    );
    let rendered = render(&values, &[]);
    validate(&rendered);
    for kind in [
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "ServiceAccount",
        "Pod",
    ] {
        assert!(rendered.has(kind), "{kind} missing:\n{}", rendered.text);
    }
    for kind in [
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "PrometheusRule",
        "CronJob",
        "Job",
    ] {
        assert!(!rendered.has(kind), "{kind} rendered by default");
    }
    check_secrets(
        &rendered,
        &[&admin_hash, &htpasswd],
        &[&admin_hash, &htpasswd],
    );

    // One writer on one volume; the image the build script makes.
    let deployment = rendered.deployment();
    assert_eq!(
        at(deployment, &["spec", "replicas"]).and_then(Value::as_u64),
        Some(1)
    );
    assert_eq!(
        str_at(deployment, &["spec", "strategy", "type"]),
        Some("Recreate")
    );
    let chart: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap())
            .unwrap();
    let app_version = str_at(&chart, &["appVersion"]).unwrap();
    assert_eq!(
        app_version,
        env!("CARGO_PKG_VERSION"),
        "the chart's appVersion is the server's version (scripts/build-image.sh tags the image with it)"
    );
    assert_eq!(
        str_at(rendered.container(), &["image"]),
        Some(format!("oci-storage:{app_version}").as_str())
    );

    // Hardened: non-root, read-only root, no privileges, seccomp; a writable /tmp.
    let pod = at(deployment, &["spec", "template", "spec"]).unwrap();
    let container = rendered.container();
    assert_eq!(
        at(pod, &["securityContext", "runAsNonRoot"]),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        str_at(pod, &["securityContext", "seccompProfile", "type"]),
        Some("RuntimeDefault")
    );
    for (key, value) in [
        ("readOnlyRootFilesystem", true),
        ("allowPrivilegeEscalation", false),
        ("runAsNonRoot", true),
    ] {
        assert_eq!(
            at(container, &["securityContext", key]),
            Some(&Value::Bool(value)),
            "{key}"
        );
    }
    assert_eq!(
        str_at(container, &["securityContext", "capabilities", "drop", "0"]),
        Some("ALL")
    );
    assert_eq!(
        at(pod, &["automountServiceAccountToken"]),
        Some(&Value::Bool(false))
    );

    // The Pod's volumes laid out, the configuration accepted, then served.
    let local = Pod::new(&rendered, &[]);
    assert!(
        local.local("/tmp").is_some(),
        "/tmp is not writable with a read-only root"
    );
    assert!(
        local.check_config().contains("1 user(s)"),
        "{}",
        local.config
    );
    let mut env = local.env();
    let data = local.local("/data").expect("the data volume at /data");
    assert!(
        env.contains(&("OCI_STORAGE__STORAGE__FS__PATH", data.to_str().unwrap())),
        "the image's storage path override is not the volume's: {env:?}"
    );
    let metrics_port = free_port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let metrics = rendered.config().get("metrics").cloned();
    if let Some(listen) = metrics.as_ref().and_then(|m| str_at(m, &["listen"])) {
        // The metrics port: the container's and the Service's `metrics` port is the one the
        // configuration listens on. Locally it listens on loopback, on a free port.
        let port: u64 = listen.rsplit(':').next().unwrap().parse().unwrap();
        let ports = at(container, &["ports"])
            .and_then(Value::as_sequence)
            .unwrap();
        assert!(
            ports.iter().any(|p| str_at(p, &["name"]) == Some("metrics")
                && at(p, &["containerPort"]).and_then(Value::as_u64) == Some(port)),
            "{ports:?}"
        );
        env.push(("OCI_STORAGE__METRICS__LISTEN", metrics_listen.as_str()));
    }
    let server = Server::start_with(super::BIN, &local.config, &env);
    let client = server.client();
    assert_eq!(client.get(server.at("/v2/")).send().unwrap().status(), 401);
    for (user, password) in [("admin", "chart-admin-pw"), ("ci", "chart-ci-pw")] {
        let status = client
            .get(server.at("/v2/"))
            .basic_auth(user, Some(password))
            .send()
            .unwrap()
            .status();
        assert_eq!(
            status, 200,
            "{user} cannot log in with the chart's configuration"
        );
    }
    // A push lands on the data volume.
    let blob = b"stored on the chart's volume";
    let pushed = client
        .post(server.at(&format!(
            "/v2/chart/check/blobs/uploads/?digest={}",
            oci_storage_tests::sha256(blob)
        )))
        .basic_auth("admin", Some("chart-admin-pw"))
        .header("Content-Type", "application/octet-stream")
        .body(blob.to_vec())
        .send()
        .unwrap();
    assert_eq!(pushed.status(), 201);
    assert!(
        std::fs::read_dir(&data).unwrap().next().is_some(),
        "nothing written to the data volume"
    );
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let path = str_at(container, &[probe, "httpGet", "path"]).unwrap();
        assert_eq!(
            str_at(container, &[probe, "httpGet", "port"]),
            Some("http"),
            "{probe}"
        );
        let status = client.get(server.at(path)).send().unwrap().status();
        assert_eq!(status, 200, "{probe} {path}");
    }
    if metrics.is_some_and(|m| m.get("listen").is_some()) {
        let body = client
            .get(format!("http://{metrics_listen}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(body.contains("registry_http_requests_total"), "{body}");
        // Every metric the dashboard and the alerts use is one the binary really exports
        // (Kubernetes' own and Prometheus's `up` aside).
        for name in KNOWN_METRICS
            .iter()
            .filter(|n| !n.starts_with("kubelet_") && **n != "up")
        {
            assert!(
                body.lines().any(|l| l.starts_with(name)),
                "{name} is not in the binary's /metrics:\n{body}"
            );
        }
    }

    // The `helm test` hook: its script, run here against the server, passes; against a path
    // that answers 404 it fails.
    let hook = rendered.get("Pod", &format!("{FULLNAME}-test"));
    assert_eq!(
        str_at(hook, &["metadata", "annotations", "helm.sh/hook"]),
        Some("test")
    );
    let hook_container = at(hook, &["spec", "containers", "0"]).unwrap();
    let url = str_at(hook_container, &["env", "0", "value"]).unwrap();
    assert_eq!(url, format!("http://{FULLNAME}:3030/v2/"));
    let command: Vec<&str> = at(hook_container, &["command"])
        .and_then(Value::as_sequence)
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    require_tool("curl");
    let hook_run = |url: String| run(Command::new(command[0]).args(&command[1..]).env("URL", url));
    let passed = hook_run(server.at("/v2/"));
    assert!(
        passed.status.success(),
        "{}{}",
        text(&passed.stdout),
        text(&passed.stderr)
    );
    assert!(text(&passed.stdout).contains(": 401"));
    assert!(!hook_run(server.at("/v2/nothing-here")).status.success());
}

/// s3 storage with an autoscaler, a PodDisruptionBudget, an Ingress with TLS, a ServiceMonitor,
/// alerts, a dashboard, users from an existing Secret and inline cloud keys: valid objects,
/// nothing secret in the ConfigMap, and a binary that reaches a real S3 bucket (SeaweedFS,
/// which checks signatures) and runs a backup to another with the credentials the chart
/// mounted.
#[test]
fn object_storage_release_scales_and_reaches_its_buckets_with_mounted_credentials() {
    let s3 = SeaweedFs::shared();
    let bucket = s3.test_bucket();
    let (storage_prefix, backup_prefix) = (unique_prefix(), unique_prefix());
    let admin_hash = hash_password("scaled-admin-pw");
    let metrics = chart_config_has_metrics();
    let values = format!(
        r#"
storage:
  type: s3
  s3:
    bucket: {bucket}
    prefix: {storage_prefix}
    region: {S3_REGION}
    endpoint: {endpoint}
    forcePathStyle: true
    accessKeyId: {S3_ACCESS_KEY}
    secretAccessKey: {S3_SECRET_KEY}
auth:
  users:
    - username: admin
      groups: [admins]
    - username: ci
      passwordKey: ci-hash
  existingSecret: registry-users
backup:
  enabled: true
  aws:
    bucket: {bucket}
    prefix: {backup_prefix}
    region: {S3_REGION}
    endpoint: {endpoint}
    forcePathStyle: true
  existingSecret: backup-credentials
  schedule: "0 3 * * *"
  keep: {{last: 7, daily: 14}}
autoscaling: {{enabled: true, minReplicas: 2, maxReplicas: 6}}
podDisruptionBudget: {{enabled: true}}
ingress:
  enabled: true
  className: nginx
  annotations:
    nginx.ingress.kubernetes.io/proxy-body-size: "0"
  hosts:
    - host: registry.example.com
  tls:
    - secretName: registry-tls
      hosts: [registry.example.com]
serviceAccount:
  annotations:
    eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/registry
topologySpreadConstraints:
  - {{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway}}
priorityClassName: registry-critical
imagePullSecrets: [{{name: pull}}]
extraEnv: [{{name: RUST_BACKTRACE, value: "1"}}]
podAnnotations: {{team: platform}}
metrics:
  serviceMonitor: {{enabled: {metrics}, labels: {{release: kube-prometheus-stack}}}}
  prometheusRule: {{enabled: {metrics}}}
  dashboard: {{enabled: true}}
"#,
        endpoint = s3.endpoint,
    );
    let rendered = render(&values, &[]);
    validate(&rendered);
    check_secrets(
        &rendered,
        &[S3_ACCESS_KEY, S3_SECRET_KEY],
        &[S3_ACCESS_KEY, S3_SECRET_KEY],
    );

    // Stateless replicas: the autoscaler owns the count, rolling updates, no volume.
    let deployment = rendered.deployment();
    assert!(at(deployment, &["spec", "replicas"]).is_none());
    assert_eq!(
        str_at(deployment, &["spec", "strategy", "type"]),
        Some("RollingUpdate")
    );
    assert!(!rendered.has("PersistentVolumeClaim"));
    let hpa = rendered.get("HorizontalPodAutoscaler", FULLNAME);
    assert_eq!(
        str_at(hpa, &["spec", "scaleTargetRef", "name"]),
        Some(FULLNAME)
    );
    assert_eq!(
        at(hpa, &["spec", "minReplicas"]).and_then(Value::as_u64),
        Some(2)
    );
    let pdb = rendered.get("PodDisruptionBudget", FULLNAME);
    assert_eq!(
        at(pdb, &["spec", "minAvailable"]).and_then(Value::as_u64),
        Some(1)
    );
    let ingress = rendered.get("Ingress", FULLNAME);
    assert_eq!(
        str_at(ingress, &["spec", "ingressClassName"]),
        Some("nginx")
    );
    assert_eq!(
        str_at(ingress, &["spec", "tls", "0", "secretName"]),
        Some("registry-tls")
    );
    assert_eq!(
        str_at(
            ingress,
            &[
                "spec", "rules", "0", "http", "paths", "0", "backend", "service", "port", "name"
            ]
        ),
        Some("http")
    );
    let spread = at(
        deployment,
        &["spec", "template", "spec", "topologySpreadConstraints", "0"],
    )
    .unwrap();
    assert_eq!(
        str_at(
            spread,
            &["labelSelector", "matchLabels", "app.kubernetes.io/instance"]
        ),
        Some(RELEASE)
    );
    assert!(
        str_at(
            rendered.get("ServiceAccount", FULLNAME),
            &["metadata", "annotations", "eks.amazonaws.com/role-arn"]
        )
        .is_some()
    );
    let dashboard = rendered.get("ConfigMap", &format!("{FULLNAME}-dashboard"));
    assert_eq!(
        str_at(dashboard, &["metadata", "labels", "grafana_dashboard"]),
        Some("1")
    );
    if metrics {
        let monitor = rendered.get("ServiceMonitor", FULLNAME);
        assert_eq!(
            str_at(monitor, &["spec", "endpoints", "0", "port"]),
            Some("metrics")
        );
        assert_eq!(
            str_at(monitor, &["metadata", "labels", "release"]),
            Some("kube-prometheus-stack")
        );
        let rules = serde_yaml_ng::to_string(rendered.get("PrometheusRule", FULLNAME)).unwrap();
        assert!(rules.contains("OciStorageBackupTooOld"), "{rules}");
    }

    // The configuration: user hashes, storage and backup keys are files from the Secrets.
    let config = rendered.config();
    assert_eq!(
        str_at(&config, &["storage", "s3", "secretAccessKeyFile"]),
        Some("/etc/oci-storage/secrets/storage/secretAccessKey")
    );
    assert_eq!(str_at(&config, &["backup", "schedule"]), Some("0 3 * * *"));
    let ci_hash = hash_password("scaled-ci-pw");
    let local = Pod::new(
        &rendered,
        &[
            ("registry-users", "admin", &admin_hash),
            ("registry-users", "ci-hash", &ci_hash),
            ("backup-credentials", "accessKeyId", S3_ACCESS_KEY),
            ("backup-credentials", "secretAccessKey", S3_SECRET_KEY),
        ],
    );
    assert!(local.check_config().contains("storage s3, 2 user(s)"));

    // The binary reaches the bucket with the mounted keys (readiness checks the storage), and
    // backs up into the other bucket with the backup Secret's.
    let listen = format!("127.0.0.1:{}", free_port());
    let env = [("OCI_STORAGE__METRICS__LISTEN", listen.as_str())];
    let mut env: Vec<(&str, &str)> = if metrics { env.to_vec() } else { Vec::new() };
    env.extend(local.env());
    let server = Server::start_with(super::BIN, &local.config, &env);
    let client = server.client();
    let ready = client.get(server.at("/readyz")).send().unwrap();
    assert_eq!(
        ready.status(),
        200,
        "storage not reachable: {}",
        server.logs()
    );
    let status = client
        .get(server.at("/v2/"))
        .basic_auth("ci", Some("scaled-ci-pw"))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let backup = server.cli(&["backup"]);
    assert!(
        backup.status.success(),
        "backup with the chart's credentials: {}{}",
        text(&backup.stdout),
        text(&backup.stderr)
    );
    assert!(
        !s3.list_keys(bucket, &backup_prefix).is_empty(),
        "nothing in the backup bucket"
    );
}

/// gcs storage with its key inline, a backup target in GCS from an existing Secret, a backup to
/// a directory, and the release in its own namespace.
#[test]
fn gcs_backup_and_namespace_releases_render_valid_accepted_configurations() {
    let key = r#"{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIchart\n-----END PRIVATE KEY-----\n", "client_email": "r@p.iam.gserviceaccount.com"}"#;
    let values = format!(
        "storage:\n  type: gcs\n  gcs:\n    bucket: registry\n    credentialsJson: {}\nreplicaCount: 2\nbackup:\n  enabled: true\n  gcp: {{bucket: registry-backup, projectID: p}}\n  existingSecret: backup-key\n  schedule: 24h\n",
        quote(key)
    );
    let rendered = render(&values, &["--namespace", "my-namespace"]);
    validate(&rendered);
    check_secrets(&rendered, &["MIIchart"], &[key]);
    for object in &rendered.objects {
        assert_eq!(
            str_at(object, &["metadata", "namespace"]),
            Some("my-namespace"),
            "{object:?}"
        );
    }
    let config = rendered.config();
    assert_eq!(
        str_at(&config, &["storage", "gcs", "credentialsFile"]),
        Some("/etc/oci-storage/secrets/storage/credentials.json")
    );
    assert_eq!(
        str_at(&config, &["backup", "gcp", "credentialsFile"]),
        Some("/etc/oci-storage/secrets/backup/credentials.json")
    );
    let local = Pod::new(&rendered, &[("backup-key", "credentials.json", "{}")]);
    assert!(local.check_config().contains("storage gcs"));
    let mounted = local
        .local("/etc/oci-storage/secrets/storage/credentials.json")
        .unwrap();
    assert_eq!(std::fs::read_to_string(mounted).unwrap(), key);

    // A backup into a directory mounted with extraVolumes, on fs storage.
    let rendered = render(
        "backup:\n  enabled: true\n  target: {type: fs, path: /backups}\n  keep: {last: 3}\nextraVolumes: [{name: backups, persistentVolumeClaim: {claimName: registry-backups}}]\nextraVolumeMounts: [{name: backups, mountPath: /backups}]\n",
        &[],
    );
    validate(&rendered);
    let config = rendered.config();
    assert_eq!(
        str_at(&config, &["backup", "target", "path"]),
        Some("/backups")
    );
    assert_eq!(
        at(&config, &["backup", "keep", "last"]).and_then(Value::as_u64),
        Some(3)
    );
    Pod::new(&rendered, &[]).check_config();

    // `config` goes over the copy of config.yaml, false and 0 included.
    let rendered = render(
        "config:\n  registry: {deleteEnabled: false, cacheSeconds: 0}\n  logging: {level: debug}\n",
        &[],
    );
    let config = rendered.config();
    assert_eq!(
        at(&config, &["registry", "deleteEnabled"]),
        Some(&Value::Bool(false))
    );
    assert_eq!(
        at(&config, &["registry", "cacheSeconds"]).and_then(Value::as_u64),
        Some(0)
    );
    assert_eq!(
        at(&config, &["registry", "maxManifestBytes"]).and_then(Value::as_u64),
        Some(4_194_304),
        "the copy of config.yaml is the base"
    );
    Pod::new(&rendered, &[]).check_config();
}

/// Metrics on the http port (no `listen`): no metrics port, the ServiceMonitor scrapes `http`;
/// administrators only: Prometheus gets credentials from a Secret.
#[test]
fn metrics_on_the_service_port_are_scraped_there() {
    if !chart_config_has_metrics() {
        // The chart renders no metrics settings for a binary without them; it refuses a
        // ServiceMonitor instead.
        let refused = refusal("metrics: {serviceMonitor: {enabled: true}}\n");
        assert!(refused.contains("serves no metrics"), "{refused}");
        return;
    }
    let rendered = render(
        "metrics:\n  listen: ''\n  access: admins\n  serviceMonitor:\n    enabled: true\n    basicAuth:\n      username: {name: metrics-reader, key: username}\n      password: {name: metrics-reader, key: password}\n",
        &[],
    );
    validate(&rendered);
    let ports = at(rendered.container(), &["ports"])
        .and_then(Value::as_sequence)
        .unwrap();
    assert_eq!(ports.len(), 1, "{ports:?}");
    let monitor = rendered.get("ServiceMonitor", FULLNAME);
    assert_eq!(
        str_at(monitor, &["spec", "endpoints", "0", "port"]),
        Some("http")
    );
    assert_eq!(
        str_at(
            monitor,
            &["spec", "endpoints", "0", "basicAuth", "password", "name"]
        ),
        Some("metrics-reader")
    );
    let config = rendered.config();
    assert_eq!(str_at(&config, &["metrics", "access"]), Some("admins"));
    assert!(at(&config, &["metrics", "listen"]).is_none());
    Pod::new(&rendered, &[]).check_config();

    // On their own port.
    let rendered = render(
        "metrics:\n  listen: 0.0.0.0:9500\n  serviceMonitor: {enabled: true}\n  prometheusRule: {enabled: true}\n",
        &[],
    );
    validate(&rendered);
    let service = rendered.get("Service", FULLNAME);
    assert_eq!(
        str_at(service, &["spec", "ports", "1", "name"]),
        Some("metrics")
    );
    assert_eq!(
        at(service, &["spec", "ports", "1", "port"]).and_then(Value::as_u64),
        Some(9500)
    );
    assert_eq!(
        str_at(
            rendered.get("ServiceMonitor", FULLNAME),
            &["spec", "endpoints", "0", "port"]
        ),
        Some("metrics")
    );
    // The Ingress never routes the metrics port.
    let ingress = render("ingress: {enabled: true}\n", &[]);
    let dump = serde_yaml_ng::to_string(ingress.get("Ingress", FULLNAME)).unwrap();
    assert!(!dump.contains("metrics"), "{dump}");
}

/// The values example in README.md's "Deploying on Kubernetes" renders valid objects and a
/// configuration the binary accepts.
#[test]
fn readme_values_example_renders_an_accepted_configuration() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find("# values.yaml: three replicas")
        .expect("the values example in README.md");
    let end = start + readme[start..].find("```").unwrap();
    let rendered = render(&readme[start..end], &[]);
    validate(&rendered);
    assert!(rendered.has("HorizontalPodAutoscaler") && rendered.has("Ingress"));
    let local = Pod::new(
        &rendered,
        &[
            ("registry-s3", "accessKeyId", "AKIDREADME"),
            ("registry-s3", "secretAccessKey", "readme-secret"),
            ("registry-users", "admin", "$2y$05$readme"),
            ("registry-users", "ci", "$2y$05$readme"),
        ],
    );
    assert!(local.check_config().contains("storage s3, 2 user(s)"));
}

#[test]
fn chart_refuses_what_cannot_work() {
    let (no_metrics, admins_only) = if chart_config_has_metrics() {
        ("needs metrics.enabled", "administrator's credentials")
    } else {
        ("serves no metrics", "serves no metrics")
    };
    for (values, message) in [
        ("replicaCount: 2\n", "use storage.type s3 or gcs"),
        (
            "autoscaling: {enabled: true}\n",
            "use storage.type s3 or gcs",
        ),
        (
            "podDisruptionBudget: {enabled: true}\n",
            "use storage.type s3 or gcs",
        ),
        ("storage: {type: s3}\n", "storage.s3.bucket is required"),
        ("storage: {type: azure}\n", "must be one of"),
        ("storage: {tpye: s3}\n", "tpye"),
        (
            "config:\n  proxy:\n    registries: [{name: ghcr.io, username: me, password: hunter2}]\n",
            "config.proxy.registries[0].password is a secret",
        ),
        (
            "config: {storage: {s3: {secretAccessKey: x}}}\n",
            "secretAccessKey is a secret",
        ),
        (
            "storage: {type: s3, s3: {bucket: b, secretAccessKey: x}, existingSecret: s}\n",
            "not both",
        ),
        (
            "auth: {users: [{username: alice}]}\n",
            "alice) has no password",
        ),
        (
            "auth: {htpasswd: {enabled: true}}\n",
            "auth.htpasswd.content",
        ),
        ("backup: {enabled: true}\n", "backup.enabled needs a target"),
        (
            "backup: {enabled: true, aws: {bucket: a}, gcp: {bucket: b}}\n",
            "backup takes one target",
        ),
        (
            "metrics: {enabled: false, serviceMonitor: {enabled: true}}\n",
            no_metrics,
        ),
        (
            "metrics: {access: admins, serviceMonitor: {enabled: true}}\n",
            admins_only,
        ),
        (
            "storage: {type: s3, s3: {bucket: b}}\nautoscaling: {enabled: true, targetCPUUtilizationPercentage: ''}\n",
            "autoscaling.enabled needs",
        ),
    ] {
        let refused = refusal(values);
        assert!(
            refused.contains(message),
            "{values}: refused, but not with {message:?}:\n{refused}"
        );
    }
}

/// The alerts, run by Prometheus's own rule tester over made-up series: each fires when it
/// should and stays quiet when it should not.
#[test]
fn alerts_fire_on_the_series_they_watch() {
    require_tool("promtool");
    let rendered = render(
        "backup: {enabled: true, target: {type: fs, path: /backups}}\nmetrics: {prometheusRule: {enabled: true}}\n",
        &[],
    );
    let rule = rendered.get("PrometheusRule", FULLNAME);
    let summary = |alert: &str| -> String {
        at(rule, &["spec", "groups", "0", "rules"])
            .and_then(Value::as_sequence)
            .unwrap()
            .iter()
            .find(|r| str_at(r, &["alert"]) == Some(alert))
            .and_then(|r| str_at(r, &["annotations", "summary"]))
            .unwrap_or_else(|| panic!("no alert {alert}"))
            .to_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml_ng::to_string(&rule["spec"]).unwrap(),
    )
    .unwrap();
    let job = format!("job=\"{FULLNAME}\", namespace=\"default\"");
    let requests = |code: &str, per_minute: u32| {
        format!(
            "      - series: 'registry_http_requests_total{{{job}, handler=\"manifest\", method=\"GET\", code=\"{code}\"}}'\n        values: '0+{per_minute}x60'\n"
        )
    };
    let tests = format!(
        r#"rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  # One request in ten fails: the error rate alert fires after its 10 minutes.
  - interval: 1m
    input_series:
{ok}{failing}
    alert_rule_test:
      - eval_time: 5m
        alertname: OciStorageHighErrorRate
        exp_alerts: []
      - eval_time: 20m
        alertname: OciStorageHighErrorRate
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations: {{summary: "{error_summary}"}}
  # Every request answered: quiet.
  - interval: 1m
    input_series:
{ok}
    alert_rule_test:
      - eval_time: 30m
        alertname: OciStorageHighErrorRate
        exp_alerts: []
  # The last backup succeeded at 0 s: the alert fires once it is 48 hours and 30 minutes old.
  - interval: 1m
    input_series:
      - series: 'oci_storage_backup_last_success_timestamp_seconds{{{job}, instance="a"}}'
        values: '0x3000'
    alert_rule_test:
      - eval_time: 47h
        alertname: OciStorageBackupTooOld
        exp_alerts: []
      - eval_time: 49h
        alertname: OciStorageBackupTooOld
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations: {{summary: "{backup_summary}"}}
"#,
        ok = requests("200", 90),
        failing = requests("500", 10),
        error_summary = summary("OciStorageHighErrorRate"),
        backup_summary = summary("OciStorageBackupTooOld"),
    );
    std::fs::write(dir.path().join("tests.yaml"), &tests).unwrap();
    let out = run(Command::new("promtool")
        .args(["test", "rules", "tests.yaml"])
        .current_dir(dir.path()));
    assert!(
        out.status.success(),
        "promtool test rules:\n{}{}\n{tests}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The dashboard is Grafana JSON over the data source variable, and every query names metrics
/// oci-storage exports.
#[test]
fn dashboard_queries_metrics_oci_storage_exports() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(chart_dir().join("files/dashboard.json")).unwrap(),
    )
    .expect("files/dashboard.json is JSON");
    assert_eq!(dashboard["uid"], "oci-storage");
    let panels = dashboard["panels"].as_array().unwrap();
    let mut queries = 0;
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().unwrap();
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        for target in panel["targets"].as_array().unwrap() {
            check_metric_names(title, target["expr"].as_str().unwrap());
            queries += 1;
        }
    }
    assert!(queries >= 20, "{queries} queries");
    let dashboard_text = std::fs::read_to_string(chart_dir().join("files/dashboard.json")).unwrap();
    for metric in KNOWN_METRICS
        .iter()
        .filter(|m| !m.starts_with("kubelet_") && **m != "up")
    {
        assert!(
            dashboard_text.contains(metric),
            "the dashboard shows nothing of {metric}"
        );
    }
}

/// `update-helm-chart.sh [namespace] [release] [helm args…]`: copies the configuration into
/// the chart, then `helm upgrade --install` with the defaults (namespace and release
/// oci-storage, the namespace created). There is no cluster here: HELM points to a stand-in
/// that records its arguments and renders the same release with `helm template`, so the
/// arguments are ones real helm accepts for this chart.
#[test]
fn update_script_copies_the_configuration_and_installs_with_its_defaults() {
    require_tool("helm");
    let root = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| {
        run_ok(Command::new("cp").arg("-a").arg(from).arg(to));
    };
    std::fs::create_dir_all(root.path().join("scripts")).unwrap();
    std::fs::create_dir_all(root.path().join("config")).unwrap();
    copy(&repo_root().join("update-helm-chart.sh"), root.path());
    copy(
        &repo_root().join("scripts/copy-config.sh"),
        &root.path().join("scripts"),
    );
    copy(&chart_dir(), root.path());
    // A configuration that differs from the chart's copy: the script brings it over.
    let config = format!(
        "{}\n# changed after the last copy\n",
        std::fs::read_to_string(chart_dir().join("files/config.yaml")).unwrap()
    );
    std::fs::write(root.path().join("config/config.yaml"), &config).unwrap();

    let log = root.path().join("helm-args");
    let fake_helm = root.path().join("fake-helm");
    std::fs::write(
        &fake_helm,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {log}\n[ \"$1 $2\" = 'upgrade --install' ] || exit 9\nshift 2\nexec helm template \"$@\" > {out}\n",
            log = log.display(),
            out = root.path().join("rendered.yaml").display()
        ),
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&fake_helm));
    let script = root.path().join("update-helm-chart.sh");
    let chart = root.path().join("helm");
    let chart = chart.to_str().unwrap();
    let invoke = |args: &[&str]| -> Vec<String> {
        let out = run(Command::new(&script)
            .args(args)
            .env("HELM", &fake_helm)
            .current_dir(root.path()));
        assert!(
            out.status.success(),
            "update-helm-chart.sh {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };

    assert_eq!(
        invoke(&[]),
        [
            "upgrade",
            "--install",
            "oci-storage",
            chart,
            "--namespace",
            "oci-storage",
            "--create-namespace"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(chart_dir().join("files/config.yaml")).unwrap()
            + "\n# changed after the last copy\n",
        std::fs::read_to_string(root.path().join("helm/files/config.yaml")).unwrap(),
        "the script did not copy config/config.yaml into the chart"
    );
    let rendered = std::fs::read_to_string(root.path().join("rendered.yaml")).unwrap();
    assert!(rendered.contains("namespace: oci-storage"), "{rendered}");

    assert_eq!(
        invoke(&["team-a"])[2..6],
        ["oci-storage", chart, "--namespace", "team-a"]
    );
    assert_eq!(
        invoke(&["team-a", "registry", "--set", "replicaCount=1"]),
        [
            "upgrade",
            "--install",
            "registry",
            chart,
            "--namespace",
            "team-a",
            "--create-namespace",
            "--set",
            "replicaCount=1"
        ]
    );
    let rendered = std::fs::read_to_string(root.path().join("rendered.yaml")).unwrap();
    assert!(
        rendered.contains("name: registry-oci-storage"),
        "{rendered}"
    );
    // Options first: the defaults stay.
    assert_eq!(
        invoke(&["--set", "replicaCount=1"])[2..8],
        [
            "oci-storage",
            chart,
            "--namespace",
            "oci-storage",
            "--create-namespace",
            "--set"
        ]
    );
}
