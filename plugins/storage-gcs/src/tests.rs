//! Tests against a real fake-gcs-server (started once per test process, a bucket per test).

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use oci_storage_core::object_parts;
use oci_storage_core::storage::bytes_stream;
use oci_storage_core::{
    ByteStream, Key, ListOptions, PluginContext, PluginError, PutMode, Storage, StorageError,
    StorageExt,
};
use oci_storage_tests::object_stores::FakeGcs;

use super::*;

fn ctx() -> PluginContext {
    PluginContext::new(PathBuf::from("/nonexistent-base"), "storage.gcs")
}

/// A config for a fresh bucket on the shared emulator.
fn emulator_config(prefix: &str) -> serde_json::Value {
    let gcs = FakeGcs::shared();
    serde_json::json!({
        "bucket": gcs.new_bucket(),
        "prefix": prefix,
        "endpoint": gcs.endpoint,
        "anonymous": true,
        "projectId": "test",
    })
}

async fn storage_with(config: serde_json::Value) -> GcsStorage {
    let config: GcsConfig = PluginError::parse_config("storage.gcs", config).unwrap();
    GcsStorage::connect(config).await.unwrap()
}

/// Storage with 256 KiB resumable chunks, so a few hundred KiB exercise the chunked path.
async fn small_chunk_storage(prefix: &str) -> GcsStorage {
    let mut config = emulator_config(prefix);
    config["chunkSizeMib"] = serde_json::json!(0.25);
    storage_with(config).await
}

fn key(k: &str) -> Key {
    Key::new(k).unwrap()
}

/// `pieces` buffers of `piece` bytes each (byte i of the whole is `i % 251`), then an error
/// if `fail`.
fn patterned(piece: usize, pieces: usize, fail: bool) -> (ByteStream, Vec<u8>) {
    let whole: Vec<u8> = (0..piece * pieces).map(|i| (i % 251) as u8).collect();
    let mut items: Vec<Result<Bytes, std::io::Error>> = whole
        .chunks(piece)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    if fail {
        items.push(Err(std::io::Error::other("client went away")));
    }
    (Box::pin(stream::iter(items)), whole)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let storage = factory(ctx(), emulator_config("")).await.unwrap();
    oci_storage_core::testkit::run_conformance(storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_under_a_prefix() {
    let storage = factory(ctx(), emulator_config("nested/prefix"))
        .await
        .unwrap();
    assert!(storage.describe().ends_with("/nested/prefix/"));
    oci_storage_core::testkit::run_conformance(storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_small_chunks() {
    // The suite's 8 MiB object goes through 32 resumable chunks here.
    let storage = small_chunk_storage("chunky").await;
    oci_storage_core::testkit::run_conformance(Arc::new(storage)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_of_more_than_32_parts() {
    let s = storage_with(emulator_config("p")).await;
    let k = key("many/parts");
    let id = s.create_multipart(&k).await.unwrap();
    let mut parts = Vec::new();
    let mut expected = Vec::new();
    // Out of order, like parts from different replicas.
    for number in (1..=70u32).rev() {
        let body = format!("<{number}>");
        parts.push(
            s.put_part(&k, &id, number, bytes_stream(Bytes::from(body)))
                .await
                .unwrap(),
        );
    }
    parts.reverse();
    for number in 1..=70u32 {
        expected.extend_from_slice(format!("<{number}>").as_bytes());
    }
    let meta = s.complete_multipart(&k, &id, &parts).await.unwrap();
    assert_eq!(meta.size, expected.len() as u64);
    assert_eq!(s.get_bytes(&k, u64::MAX).await.unwrap(), expected);
    let left = s
        .names_under(&format!("p/{}", object_parts::upload_prefix(&id)))
        .await
        .unwrap();
    assert!(
        left.is_empty(),
        "parts and temporary composites are deleted: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_puts_larger_than_a_chunk() {
    let s = small_chunk_storage("").await;
    const CHUNK: usize = 256 * 1024;
    // Not on a chunk boundary (the short last chunk finalizes), and exactly on one (an empty
    // request finalizes); input pieces never align with chunks.
    for (name, piece, pieces) in [("odd", 10_000, 110), ("even", CHUNK / 4, 16)] {
        let k = key(&format!("big/{name}"));
        let (body, whole) = patterned(piece, pieces, false);
        let meta = s.put(&k, body, PutMode::Overwrite).await.unwrap();
        assert_eq!(meta.size, whole.len() as u64, "{name}");
        assert!(whole.len() > 3 * CHUNK);
        assert_eq!(s.get_bytes(&k, u64::MAX).await.unwrap(), whole, "{name}");
        let head = s.head(&k).await.unwrap();
        assert_eq!(head.version, meta.version, "{name}");
        // A range across a chunk boundary.
        let got = s
            .get(&k, Some(CHUNK as u64 - 5..CHUNK as u64 + 5))
            .await
            .unwrap();
        let bytes: Vec<u8> = got.body.map(|c| c.unwrap().to_vec()).concat().await;
        assert_eq!(bytes, whole[CHUNK - 5..CHUNK + 5], "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_stream_after_several_chunks_leaves_nothing() {
    let s = small_chunk_storage("").await;
    let k = key("big/failed");
    let (body, _) = patterned(64 * 1024, 20, true); // 5 chunks sent, then the error
    let err = s.put(&k, body, PutMode::Overwrite).await.unwrap_err();
    assert!(matches!(err, StorageError::Input(_)), "{err:?}");
    assert!(s.head(&k).await.unwrap_err().is_not_found());

    // The same over an existing object keeps the old content.
    s.put_bytes(&k, Bytes::from_static(b"old"), PutMode::Overwrite)
        .await
        .unwrap();
    let (body, _) = patterned(64 * 1024, 20, true);
    let err = s.put(&k, body, PutMode::Overwrite).await.unwrap_err();
    assert!(matches!(err, StorageError::Input(_)), "{err:?}");
    assert_eq!(
        s.get_bytes(&k, 100).await.unwrap(),
        Bytes::from_static(b"old")
    );

    // And for a part: no part object is left behind.
    let id = s.create_multipart(&k).await.unwrap();
    let (body, _) = patterned(64 * 1024, 20, true);
    let err = s.put_part(&k, &id, 1, body).await.unwrap_err();
    assert!(matches!(err, StorageError::Input(_)), "{err:?}");
    assert!(
        s.names_under(&object_parts::upload_prefix(&id))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_streamed_puts() {
    let s = small_chunk_storage("").await;
    let k = key("big/conditional");
    let (body, _) = patterned(100_000, 8, false);
    let first = s.put(&k, body, PutMode::Create).await.unwrap();
    let (body, _) = patterned(100_000, 8, false);
    let again = s.put(&k, body, PutMode::Create).await;
    assert!(
        matches!(again, Err(StorageError::AlreadyExists { .. })),
        "{again:?}"
    );
    let (body, _) = patterned(100_000, 8, false);
    let second = s
        .put(&k, body, PutMode::Update(first.version.clone().unwrap()))
        .await
        .unwrap();
    assert_ne!(second.version, first.version);
    let (body, _) = patterned(100_000, 8, false);
    let stale = s
        .put(&k, body, PutMode::Update(first.version.unwrap()))
        .await;
    assert!(
        matches!(stale, Err(StorageError::Precondition { .. })),
        "{stale:?}"
    );
    let bogus = s
        .put_bytes(&k, Bytes::from_static(b"x"), PutMode::Update("v1".into()))
        .await;
    assert!(
        matches!(bogus, Err(StorageError::Precondition { .. })),
        "{bogus:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_in_progress_never_show_in_listings() {
    for prefix in ["", "pre"] {
        let s = storage_with(emulator_config(prefix)).await;
        for name in ["a", "b/c", "z"] {
            s.put_bytes(&key(name), Bytes::from(name), PutMode::Overwrite)
                .await
                .unwrap();
        }
        let k = key("b/c");
        let id = s.create_multipart(&k).await.unwrap();
        for number in 1..=3 {
            s.put_part(&k, &id, number, bytes_stream(Bytes::from_static(b"part")))
                .await
                .unwrap();
        }
        // The parts are there, as objects.
        assert_eq!(
            s.names_under(&format!("{}~parts/", s.prefix))
                .await
                .unwrap()
                .len(),
            3
        );
        let all: Vec<String> = s
            .list_all("")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key.to_string())
            .collect();
        assert_eq!(all, ["a", "b/c", "z"], "prefix {prefix:?}");
        let rolled = s
            .list(
                "",
                ListOptions {
                    delimiter: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(rolled.prefixes, ["b/"], "prefix {prefix:?}");
        assert_eq!(rolled.objects.len(), 2);
        assert_eq!(rolled.next, None);
        // One entry per page: the last key is not followed by a page of internal names.
        let mut seen = Vec::new();
        let mut start_after = None;
        loop {
            let page = s
                .list(
                    "",
                    ListOptions {
                        start_after: start_after.take(),
                        limit: Some(1),
                        delimiter: true,
                    },
                )
                .await
                .unwrap();
            seen.extend(page.objects.iter().map(|m| m.key.to_string()));
            seen.extend(page.prefixes.iter().cloned());
            match page.next {
                Some(next) => start_after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ["a", "b/", "z"], "prefix {prefix:?}");
        let internal = s.list("~parts/", ListOptions::default()).await.unwrap();
        assert!(internal.objects.is_empty() && internal.prefixes.is_empty());
        s.abort_multipart(&k, &id).await.unwrap();
        assert!(
            s.names_under(&format!("{}~parts/", s.prefix))
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn config_errors_are_clear() {
    let err = factory(
        ctx(),
        serde_json::json!({"bucket": "b-1", "anonymous": true, "bogus": 1}),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, PluginError::Config { path, message }
            if path == "storage.gcs.bogus" && message.contains("unknown field")),
        "{err}"
    );
    let err = factory(ctx(), serde_json::json!({"anonymous": true}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bucket"), "{err}");
    let err = factory(ctx(), serde_json::Value::Null).await.unwrap_err();
    assert!(err.to_string().contains("bucket"), "{err}");
    for (field, config) in [
        (
            "chunkSizeMib",
            serde_json::json!({"bucket": "b-1", "anonymous": true, "chunkSizeMib": 0.1}),
        ),
        (
            "chunkSizeMib",
            serde_json::json!({"bucket": "b-1", "anonymous": true, "chunkSizeMib": 0}),
        ),
        (
            "bucket",
            serde_json::json!({"bucket": "Not/A/Bucket", "anonymous": true}),
        ),
        (
            "prefix",
            serde_json::json!({"bucket": "b-1", "anonymous": true, "prefix": "a//b"}),
        ),
        (
            "endpoint",
            serde_json::json!({"bucket": "b-1", "anonymous": true, "endpoint": "localhost:1"}),
        ),
        (
            "anonymous",
            serde_json::json!({"bucket": "b-1", "anonymous": true, "credentialsFile": "k.json"}),
        ),
        (
            "credentialsFile",
            serde_json::json!({"bucket": "b-1", "credentialsFile": "missing.json"}),
        ),
    ] {
        let err = factory(ctx(), config.clone()).await.unwrap_err();
        assert!(
            matches!(&err, PluginError::Config { path, .. } if path == &format!("storage.gcs.{field}")),
            "{config}: {err}"
        );
    }
}

#[tokio::test]
async fn credentials_are_never_echoed() {
    let dir = tempfile_dir();
    let secret = "-----BEGIN PRIVATE KEY-----SUPERSECRET";
    // A string where a list belongs: serde quotes such a value in its message.
    std::fs::write(
        dir.join("key.json"),
        format!(r#"{{"type": "service_account", "delegates": "{secret}"}}"#),
    )
    .unwrap();
    let err = factory(
        PluginContext::new(dir.clone(), "storage.gcs"),
        serde_json::json!({"bucket": "b-1", "credentialsFile": "key.json"}),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("key.json"), "{text}");
    assert!(!text.contains("SUPERSECRET"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn config_defaults_and_normalisation() {
    let s = storage_with(serde_json::json!({
        "bucket": "b-1",
        "prefix": "a/b/",
        "endpoint": "http://127.0.0.1:1/",
        "anonymous": true,
    }))
    .await;
    assert_eq!(s.prefix, "a/b/");
    assert_eq!(s.chunk_size, 8 * 1024 * 1024);
    assert_eq!(s.describe(), "gcs:b-1/a/b/");
    assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:1"));
    let s = storage_with(serde_json::json!({"bucket": "b-1", "anonymous": true})).await;
    assert_eq!(s.prefix, "");
    assert_eq!(s.describe(), "gcs:b-1/");
}

/// A scratch directory without a tempfile dependency.
fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gcs-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// As a backup target (`backup.gcp`): the seed's `projectID` spelling is accepted, and the
/// target passes the backup conformance suite on the emulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_a_backup_target() {
    let mut config = emulator_config("backups");
    let object = config.as_object_mut().unwrap();
    object.remove("projectId");
    object.insert("projectID".into(), serde_json::json!("your-project"));
    let ctx = PluginContext::new(PathBuf::from("/nonexistent-base"), "backup.gcp");
    let target = backup_factory(ctx.clone(), config).await.unwrap();
    assert!(
        target.describe().starts_with("gcs:"),
        "{}",
        target.describe()
    );
    oci_storage_core::testkit::run_backup_target_conformance(target).await;

    let mut bad = emulator_config("");
    bad["chunkSizeMib"] = serde_json::json!(0.1);
    let err = backup_factory(ctx, bad).await.unwrap_err();
    assert!(
        matches!(&err, PluginError::Config { path, .. } if path == "backup.gcp.chunkSizeMib"),
        "{err}"
    );
}
