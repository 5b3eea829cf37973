//! Real client tools: checking they are installed, running them, and isolating helm's state.

use std::path::Path;
use std::process::{Command, Output};

/// Fails the test (never skips it) when a tool is missing; `scripts/install-test-tools.sh`
/// installs every tool the suite uses.
pub fn require_tool(name: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{name} is not installed: run scripts/install-test-tools.sh (scripts/test.sh does)"
    );
}

/// Runs a command and returns its output, whatever its exit status.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"))
}

/// Runs a command, failing the test with its output if it does not succeed; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A helm command whose configuration, cache, data and registry credentials live under `home`.
pub fn helm_env(helm: &str, home: &Path) -> Command {
    let mut cmd = Command::new(helm);
    for (var, sub) in [
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_DATA_HOME", "data"),
        ("HELM_REPOSITORY_CACHE", "cache/repository"),
    ] {
        cmd.env(var, home.join(sub));
    }
    cmd.env("HELM_REGISTRY_CONFIG", home.join("registry.json"))
        .env("HELM_REPOSITORY_CONFIG", home.join("repositories.yaml"))
        .current_dir(home);
    std::fs::create_dir_all(home).expect("helm home");
    cmd
}
