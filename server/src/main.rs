//! The `oci-storage` command: `serve` (default), `check-config`, `hash-password`,
//! `reindex-charts`, `backup` (`list`, `verify`), `restore`, `gc` and `verify`.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use oci_storage_server::backup::commands;

/// jemalloc, with its background thread giving freed memory back to the system within
/// seconds. glibc's malloc kept what threads freed (a flood of logins, each check holding
/// 19 MiB, left the process at 400 MiB for good; under the steady soak it kept growing) and
/// mimalloc kept it until the same thread allocated again (625 MiB in the soak, where
/// jemalloc stays flat at 61–64); figures in docs/BENCHMARKS.md (Memory, the soak).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Only for comparing allocators (`scripts/soak.sh --allocator mimalloc`).
#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "oci-storage",
    version,
    about = "A lightweight OCI registry for Helm charts and container images"
)]
struct Cli {
    /// Configuration file (YAML). Without it, the embedded default is used.
    #[arg(long, short, global = true, env = "OCI_STORAGE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the registry (the default).
    Serve,
    /// Load and validate the configuration, then exit.
    CheckConfig,
    /// Read a password from standard input and print its argon2id hash for `auth.users`.
    HashPassword,
    /// Rebuild the chart metadata (index.yaml, search) from the charts in storage.
    ReindexCharts,
    /// Take a snapshot of the registry into the backup target now (or list or verify them).
    Backup {
        #[command(subcommand)]
        action: Option<BackupAction>,
    },
    /// Restore a snapshot from the backup target into the configured storage (empty or not:
    /// nothing is deleted, and tags changed after the snapshot are kept unless --overwrite).
    Restore {
        /// A snapshot id, or `latest`.
        #[arg(long, default_value = "latest")]
        snapshot: oci_storage_server::backup::Which,
        /// Also move tags that changed after the snapshot (immutable tags never move).
        #[arg(long)]
        overwrite: bool,
        /// Show what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Collect garbage now: blobs no manifest references, manifests no tag reaches (with
    /// gc.untagged), orphaned referrers, expired uploads. Safe while the registry serves.
    Gc {
        /// Show what would be collected, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Read every stored blob and manifest back and check its digest, and every link for its
    /// content; exit 1 if anything is corrupt or missing. Changes nothing.
    Verify {
        /// The findings as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum BackupAction {
    /// List the complete snapshots, oldest first.
    List {
        /// As JSON (the snapshot records).
        #[arg(long)]
        json: bool,
    },
    /// Read a snapshot back and check every object's digest, restoring nothing.
    Verify {
        /// A snapshot id, or `latest`.
        #[arg(long, default_value = "latest")]
        snapshot: oci_storage_server::backup::Which,
    },
}

fn main() -> ExitCode {
    #[cfg(feature = "jemalloc")]
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!(
            "warning: jemalloc's background thread did not start ({e}); freed memory is returned more slowly"
        );
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command's work on a runtime sized like the server's.
fn block_on(
    loaded: &oci_storage_config::Loaded,
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(loaded.config.server.blocking_threads.get())
        .build()?
        .block_on(work)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let load = || oci_storage_config::load(cli.config.as_deref(), std::env::vars());
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let loaded = load()?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .max_blocking_threads(loaded.config.server.blocking_threads.get())
                .build()?
                .block_on(oci_storage_server::serve(
                    oci_storage_server::builtin_plugins(),
                    loaded,
                ))
        }
        Command::CheckConfig => {
            let loaded = load()?;
            let c = &loaded.config;
            oci_storage_server::auth::policy::Policy::new(&c.auth)
                .map_err(|e| anyhow::anyhow!("{}: {e}", loaded.origin))?;
            println!(
                "configuration OK ({}): listen {}:{}, storage {}, {} user(s)",
                loaded.origin,
                c.server.host,
                c.server.port,
                c.storage.kind,
                c.auth.users.len()
            );
            Ok(())
        }
        Command::ReindexCharts => {
            let loaded = load()?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(async {
                    let state = oci_storage_server::build_state(
                        &oci_storage_server::builtin_plugins(),
                        &loaded,
                    )
                    .await?;
                    let count = state
                        .charts
                        .rebuild()
                        .await
                        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
                    println!("recorded {count} chart version(s)");
                    anyhow::Ok(())
                })
        }
        Command::Backup { action } => {
            let loaded = load()?;
            let work = async {
                match action {
                    None => commands::backup_now(&loaded).await,
                    Some(BackupAction::List { json }) => commands::list(&loaded, json).await,
                    Some(BackupAction::Verify { snapshot }) => {
                        commands::verify(&loaded, &snapshot).await
                    }
                }
            };
            block_on(&loaded, work)
        }
        Command::Restore {
            snapshot,
            overwrite,
            dry_run,
        } => {
            let loaded = load()?;
            let options = oci_storage_server::backup::RestoreOptions { overwrite };
            block_on(
                &loaded,
                commands::restore(&loaded, &snapshot, options, dry_run),
            )
        }
        Command::Gc { dry_run } => {
            let loaded = load()?;
            block_on(
                &loaded,
                oci_storage_server::gc::commands::gc(&loaded, dry_run),
            )
        }
        Command::Verify { json } => {
            let loaded = load()?;
            block_on(&loaded, oci_storage_server::scrub::command(&loaded, json))
        }
        Command::HashPassword => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let password = line.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(!password.is_empty(), "no password given on standard input");
            println!(
                "{}",
                oci_storage_server::auth::password::hash_password(password)
            );
            Ok(())
        }
    }
}
