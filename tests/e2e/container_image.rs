//! The container image: `scripts/build-image.sh` packages the test binary; the image must say
//! what the Dockerfile says, carry the crate's and the chart's version, run from its unpacked
//! root filesystem (read-only, as its own user, with only `/data` writable) until `/healthz`
//! answers, and arrive intact in a running oci-storage when the script pushes it.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_storage_tests::{PASSWORD, USER, read, require_tool, run, run_ok, sha256};

/// The repository's root directory.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("server/ has a parent")
        .to_owned()
}

#[test]
fn image_built_without_docker_runs_read_only_and_pushes() {
    for tool in [
        "umoci", "skopeo", "unshare", "nsenter", "curl", "ip", "chroot",
    ] {
        require_tool(tool);
    }
    let repo = repo();
    let version = env!("CARGO_PKG_VERSION");
    let registry = super::server();
    let layout = registry.scratch("image");
    let git_head = || {
        run_ok(
            Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(&repo),
        )
    };
    let head_before = git_head();

    // Built from the test binary, written as a layout and pushed, in one run of the script.
    let started = Instant::now();
    run_ok(
        Command::new(repo.join("scripts/build-image.sh"))
            .arg("--binary")
            .arg(super::BIN)
            .arg("--output")
            .arg(&layout)
            .args(["--push", &registry.host])
            .args(["--creds", &format!("{USER}:{PASSWORD}")]),
    );
    eprintln!("build-image.sh took {:?}", started.elapsed());
    let head_after = git_head();

    // The layout holds one image, tagged with the crate's version.
    let index: serde_json::Value =
        serde_json::from_slice(&read(&layout.join("index.json"))).unwrap();
    let manifests = index["manifests"]
        .as_array()
        .expect("index.json lists manifests");
    assert_eq!(manifests.len(), 1, "{index}");
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
        version
    );
    let manifest_digest = manifests[0]["digest"].as_str().unwrap().to_owned();
    let manifest_bytes = blob(&layout, &manifest_digest);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let config: serde_json::Value = serde_json::from_slice(&blob(&layout, &config_digest)).unwrap();
    let image = &config["config"];

    // What the Dockerfile says, the image says.
    let dockerfile = final_stage(&std::fs::read_to_string(repo.join("Dockerfile")).unwrap());
    let one = |instruction: &str| -> String {
        let found: Vec<&String> = dockerfile
            .iter()
            .filter(|(i, _)| i == instruction)
            .map(|(_, args)| args)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one {instruction} in the Dockerfile's last stage"
        );
        found[0].clone()
    };
    let exec_form = |instruction: &str| -> serde_json::Value {
        serde_json::from_str(&one(instruction))
            .unwrap_or_else(|e| panic!("{instruction} is not in exec form: {e}"))
    };
    let user = image["User"].as_str().expect("the image names a user");
    assert_eq!(user, one("USER"));
    let (uid, gid) = user.split_once(':').expect("USER is uid:gid");
    let (uid, gid): (u32, u32) = (uid.parse().unwrap(), gid.parse().unwrap());
    assert!(uid != 0 && gid != 0, "the image runs as root: {user}");
    assert_eq!(image["Entrypoint"], exec_form("ENTRYPOINT"));
    assert_eq!(image["Cmd"], exec_form("CMD"));
    assert_eq!(image["Cmd"], serde_json::json!(["serve"]));
    assert_eq!(image["WorkingDir"], one("WORKDIR"));
    let ports: Vec<&String> = image["ExposedPorts"]
        .as_object()
        .expect("ports")
        .keys()
        .collect();
    assert_eq!(ports, [&format!("{}/tcp", one("EXPOSE"))]);
    let port: u16 = one("EXPOSE").parse().unwrap();
    assert_eq!(
        port,
        oci_storage_config::Config::default().server.port,
        "the exposed port is the server's default"
    );
    let volumes: Vec<&String> = image["Volumes"]
        .as_object()
        .expect("volumes")
        .keys()
        .collect();
    assert_eq!(volumes, [&one("VOLUME")]);
    let env: Vec<String> = image["Env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let own_env: Vec<&String> = env
        .iter()
        .filter(|e| !e.starts_with("PATH=") && !e.starts_with("SSL_CERT_FILE="))
        .collect();
    let dockerfile_env: Vec<&String> = dockerfile
        .iter()
        .filter(|(i, _)| i == "ENV")
        .map(|(_, args)| args)
        .collect();
    assert_eq!(
        own_env, dockerfile_env,
        "the image's environment (beyond the base's)"
    );
    assert!(env.contains(&format!("OCI_STORAGE__STORAGE__FS__PATH={}", one("VOLUME"))));

    // Labels: the Dockerfile's, with the version and commit it takes as build arguments.
    let labels: BTreeMap<String, String> =
        serde_json::from_value(image["Labels"].clone()).expect("labels");
    let revision = labels
        .get("org.opencontainers.image.revision")
        .expect("a revision label")
        .clone();
    let expected: BTreeMap<String, String> = label_pairs(&one("LABEL"))
        .into_iter()
        .map(|(k, v)| {
            let v = v
                .replace("${VERSION}", version)
                .replace("${REVISION}", &revision);
            (k, v)
        })
        .collect();
    assert_eq!(labels, expected);
    assert_eq!(labels["org.opencontainers.image.version"], version);
    assert_eq!(
        serde_json::from_value::<BTreeMap<String, String>>(manifest["annotations"].clone())
            .unwrap(),
        labels,
        "the manifest's annotations repeat the labels"
    );
    // The commit the image was built from: HEAD at the time (others may commit meanwhile).
    for (older, newer) in [
        (head_before.trim(), revision.as_str()),
        (revision.as_str(), head_after.trim()),
    ] {
        let ancestor = run(Command::new("git")
            .args(["merge-base", "--is-ancestor", older, newer])
            .current_dir(&repo));
        assert!(
            ancestor.status.success(),
            "revision {revision} is not HEAD between {head_before} and {head_after}"
        );
    }

    // The chart deploys exactly this image by default: repository and appVersion.
    let chart_dir = [repo.join("helm"), repo.join("helm/oci-storage")]
        .into_iter()
        .find(|d| d.join("Chart.yaml").exists())
        .expect("the Helm chart");
    let chart: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(&read(&chart_dir.join("Chart.yaml"))).unwrap();
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(version),
        "Chart.yaml appVersion"
    );
    let values: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(&read(&chart_dir.join("values.yaml"))).unwrap();
    assert_eq!(values["image"]["repository"].as_str(), Some("oci-storage"));
    assert_eq!(
        values["image"]["tag"].as_str().unwrap_or(""),
        "",
        "the tag defaults to appVersion"
    );

    // Unpacked: root's files, the volume's directory the image user's.
    let bundle = registry.scratch("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{version}", layout.display()))
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    let entrypoint = image["Entrypoint"][0].as_str().unwrap();
    let binary = std::fs::metadata(rootfs.join(entrypoint.trim_start_matches('/'))).unwrap();
    assert_eq!(
        (binary.uid(), binary.mode() & 0o022),
        (0, 0),
        "the binary is root's, read-only"
    );
    let volume = std::fs::metadata(rootfs.join("data")).unwrap();
    assert_eq!(
        (volume.uid(), volume.gid()),
        (uid, gid),
        "/data belongs to the image user"
    );

    // Run as Kubernetes would with readOnlyRootFilesystem: the root read-only, a volume on
    // /data, the image's user, environment, entrypoint and command, nothing else; in its own
    // network namespace, so that it listens on the image's port without meeting anyone else's.
    let data = registry.scratch("volume");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
    let log = registry.scratch("container.log");
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--net", "sh", "-euc", CONTAINER, "container"])
        .arg(&rootfs)
        .arg(&data)
        .args(&env)
        .args([
            "/usr/sbin/chroot",
            &format!("--userspec={uid}:{gid}"),
            &format!("--groups={gid}"),
        ])
        .arg(&rootfs)
        .args(
            image["Entrypoint"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap()),
        )
        .args(
            image["Cmd"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap()),
        )
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(registry.scratch("container.err")).unwrap());
    let mut container = Container(cmd.spawn().expect("start the container"));
    let logs = || {
        format!(
            "{}{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            std::fs::read_to_string(registry.scratch("container.err")).unwrap_or_default()
        )
    };
    let pid = container.0.id();
    let get_as = |path: &str, login: &[&str]| -> String {
        let out = run(Command::new("nsenter")
            .arg(format!("--target={pid}"))
            .args([
                "--net",
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
            ])
            .args(login)
            .arg(format!("http://127.0.0.1:{port}{path}")));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let get = |path: &str| get_as(path, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = container.0.try_wait().unwrap() {
            panic!("the container exited with {status}:\n{}", logs());
        }
        if get("/healthz") == "200" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz never answered 200:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        get("/readyz"),
        "200",
        "storage on /data is ready:\n{}",
        logs()
    );
    assert_eq!(get("/v2/"), "401", "the registry wants a login");

    // It is the image's user, and what it stored went to the volume.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ids = |field: &str| -> Vec<String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(ids("Uid:"), vec![uid.to_string(); 4], "{status}");
    assert_eq!(ids("Gid:"), vec![gid.to_string(); 4], "{status}");
    assert_eq!(ids("Groups:"), vec![gid.to_string()], "{status}");
    let admin = data.join("system/initial-admin.json");
    let admin = std::fs::metadata(&admin)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", admin.display(), logs()));
    assert_eq!(admin.uid(), uid, "written by the image user");
    // The first start printed the administrator's password once: it logs in.
    let printed = logs();
    let password = printed
        .split("created user 'admin' with password")
        .nth(1)
        .and_then(|rest| rest.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or_else(|| panic!("no initial password printed:\n{printed}"));
    assert_eq!(get_as("/v2/", &["-u", &format!("admin:{password}")]), "200");
    // SIGTERM ends it cleanly, as a pod's termination does.
    run_ok(Command::new("kill").args(["-TERM", &pid.to_string()]));
    let exit = container.0.wait().unwrap();
    assert!(exit.success(), "exit after SIGTERM: {exit}\n{}", logs());

    // Pushed by the script: the registry serves the same manifest and configuration, under
    // the repository and tag the chart deploys.
    let reference = format!("docker://{}/oci-storage:{version}", registry.host);
    let creds = format!("{USER}:{PASSWORD}");
    let inspect = |extra: &[&str]| -> String {
        run_ok(
            super::skopeo::skopeo(&registry)
                .args(["inspect", "--tls-verify=false", "--creds", &creds])
                .args(extra)
                .arg(&reference),
        )
    };
    let served = inspect(&["--raw"]);
    assert_eq!(sha256(served.as_bytes()), manifest_digest);
    assert_eq!(served.as_bytes(), manifest_bytes.as_slice());
    assert_eq!(
        sha256(inspect(&["--config", "--raw"]).as_bytes()),
        config_digest
    );
    let summary: serde_json::Value = serde_json::from_str(&inspect(&[])).unwrap();
    assert_eq!(summary["Digest"], manifest_digest.as_str());
    assert_eq!(
        summary["Labels"]["org.opencontainers.image.version"],
        version
    );
}

/// The container's setup, run by `unshare --mount --net` as root: `$1` the root filesystem,
/// `$2` the volume, then the environment and the command (`chroot` to the image's user).
const CONTAINER: &str = r#"
root=$1; volume=$2; shift 2
ip link set lo up
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount --bind "$volume" "$root/data"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
exec env -i "$@"
"#;

/// The unpacked image's process; killed if the test fails before it ends.
struct Container(Child);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A blob of an OCI image layout.
fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let (algorithm, hex) = digest.split_once(':').expect("a digest");
    read(&layout.join("blobs").join(algorithm).join(hex))
}

/// The instructions of a Dockerfile's last stage (after its last `FROM`), continuation lines
/// joined, comments dropped: `(INSTRUCTION, arguments)`.
fn final_stage(dockerfile: &str) -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                let (instruction, args) = current.split_once(' ').unwrap_or((&current, ""));
                instructions.push((instruction.to_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    let last_from = instructions
        .iter()
        .rposition(|(i, _)| i == "FROM")
        .expect("a FROM");
    instructions.split_off(last_from + 1)
}

/// `key="value" key2=value2 …` of a LABEL instruction.
fn label_pairs(args: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in args.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .into_iter()
        .map(|w| {
            let (k, v) = w.split_once('=').expect("LABEL key=value");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}
