//! The deployment chart in `helm/`: it lints, renders the expected objects, and the
//! configuration it renders is accepted by the very binary it deploys.

use std::path::PathBuf;
use std::process::Command;

use oci_storage_tests::{require_tool, run, run_ok};

fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../helm")
}

/// The `config.yaml: |` block of the rendered Secret, dedented.
fn rendered_config(manifests: &str) -> String {
    let mut lines = manifests
        .lines()
        .skip_while(|l| l.trim() != "config.yaml: |");
    let header = lines.next().expect("config.yaml in the rendered Secret");
    let indent = header.len() - header.trim_start().len() + 2;
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn deployment_chart_lints_and_renders_a_valid_config() {
    require_tool("helm");
    let chart = chart_dir();
    run_ok(Command::new("helm").arg("lint").arg(&chart).arg("--strict"));
    let manifests = run_ok(Command::new("helm").args(["template", "reg"]).arg(&chart).args([
        "--set",
        "auth.users[0].username=ci",
        "--set",
        "auth.users[0].password=$2y$05$abcdefghijklmnopqrstuu5N1TZ9QhQ2D7h8a6JY8aCqk0n5Kp9y",
        "--set",
        "config.registry.deleteEnabled=false",
    ]));
    for kind in [
        "kind: Deployment",
        "kind: Service",
        "kind: PersistentVolumeClaim",
        "kind: Secret",
    ] {
        assert!(manifests.contains(kind), "{kind} missing:\n{manifests}");
    }
    assert!(manifests.contains("path: /healthz") && manifests.contains("path: /readyz"));

    let config = rendered_config(&manifests);
    assert!(config.contains("deleteEnabled: false"), "{config}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, &config).unwrap();
    let out = run(Command::new(super::BIN)
        .arg("check-config")
        .arg("--config")
        .arg(&file));
    assert!(
        out.status.success(),
        "rendered config rejected:\n{config}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("1 user(s)"), "{summary}");
}

/// With s3 storage the chart runs stateless replicas: no volume, rolling updates, credentials
/// mounted from a Secret and read from files; the rendered config is accepted by the binary.
/// fs storage refuses more than one replica.
#[test]
fn deployment_chart_scales_out_over_object_storage() {
    require_tool("helm");
    let chart = chart_dir();
    let s3 = [
        "storage.type=s3",
        "storage.s3.bucket=registry",
        "storage.s3.region=eu-west-1",
        "storage.credentialsSecret=registry-s3",
        "replicaCount=3",
    ];
    let mut lint = Command::new("helm");
    lint.arg("lint").arg(&chart).arg("--strict");
    let mut template = Command::new("helm");
    template.args(["template", "reg"]).arg(&chart);
    for set in s3 {
        lint.args(["--set", set]);
        template.args(["--set", set]);
    }
    run_ok(&mut lint);
    let manifests = run_ok(&mut template);
    assert!(manifests.contains("replicas: 3"), "{manifests}");
    assert!(manifests.contains("type: RollingUpdate"), "{manifests}");
    assert!(!manifests.contains("PersistentVolumeClaim"), "{manifests}");
    assert!(manifests.contains("secretName: registry-s3"), "{manifests}");

    // The rendered config, with the Secret's mount point pointed at local files.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("accessKeyId"), "AKIDCHART").unwrap();
    std::fs::write(dir.path().join("secretAccessKey"), "chart-secret").unwrap();
    let config = rendered_config(&manifests)
        .replace("/etc/oci-storage/credentials", dir.path().to_str().unwrap());
    assert!(
        config.contains("type: s3") && config.contains("secretAccessKeyFile"),
        "{config}"
    );
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, &config).unwrap();
    let out = run(Command::new(super::BIN)
        .arg("check-config")
        .arg("--config")
        .arg(&file));
    assert!(
        out.status.success(),
        "rendered config rejected:\n{config}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!printed.contains("chart-secret"), "{printed}");

    let refused = run(Command::new("helm")
        .args(["template", "reg"])
        .arg(&chart)
        .args(["--set", "replicaCount=2"]));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("use storage.type s3 or gcs"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
