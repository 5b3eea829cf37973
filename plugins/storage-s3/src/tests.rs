use super::*;
use oci_storage_tests::object_stores::{S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, SeaweedFs};

fn config(bucket: &str, prefix: &str) -> serde_json::Value {
    serde_json::json!({
        "bucket": bucket,
        "prefix": prefix,
        "region": S3_REGION,
        "endpoint": SeaweedFs::shared().endpoint,
        "forcePathStyle": true,
        "accessKeyId": S3_ACCESS_KEY,
        "secretAccessKey": S3_SECRET_KEY,
    })
}

async fn s3_storage(prefix: &str) -> S3Storage {
    let bucket = SeaweedFs::shared().new_bucket();
    let config = serde_json::from_value(config(&bucket, prefix)).unwrap();
    S3Storage::connect(config).await.expect("s3 storage")
}

async fn storage(prefix: &str) -> Arc<dyn Storage> {
    Arc::new(s3_storage(prefix).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    oci_storage_core::testkit::run_conformance(storage("").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_under_a_prefix() {
    oci_storage_core::testkit::run_conformance(storage("nested/prefix").await).await;
}

fn pattern(len: usize, seed: u8) -> bytes::Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

/// A stream of `chunks` pieces that fails after them when `fail` is set.
fn pieces(chunks: Vec<bytes::Bytes>, fail: bool) -> ByteStream {
    let mut items: Vec<Result<bytes::Bytes, std::io::Error>> = chunks.into_iter().map(Ok).collect();
    if fail {
        items.push(Err(std::io::Error::other("client went away")));
    }
    Box::pin(futures_util::stream::iter(items))
}

async fn read(s: &dyn Storage, key: &Key) -> Vec<u8> {
    use futures_util::StreamExt;
    let mut got = s.get(key, None).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = got.body.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_puts_over_several_native_parts() {
    let s = storage("").await;
    let mib = 1024 * 1024;
    // 8 MiB parts: 20 MiB in irregular pieces makes three native parts.
    let data: Vec<bytes::Bytes> = (0..7).map(|i| pattern(3 * mib - 17 * i, i as u8)).collect();
    let whole: Vec<u8> = data.iter().flat_map(|b| b.iter().copied()).collect();
    let key = Key::new("big/object").unwrap();
    let meta = s
        .put(&key, pieces(data.clone(), false), PutMode::Create)
        .await
        .unwrap();
    assert_eq!(meta.size, whole.len() as u64);
    assert!(
        read(s.as_ref(), &key).await == whole,
        "bytes survive the multipart path"
    );
    // Create-only on an existing key fails even through the multipart path.
    let again = s
        .put(&key, pieces(data.clone(), false), PutMode::Create)
        .await;
    assert!(
        matches!(again, Err(StorageError::AlreadyExists { .. })),
        "{again:?}"
    );
    // An update with the current version succeeds, a stale one does not.
    let updated = s
        .put(
            &key,
            pieces(data[..4].to_vec(), false),
            PutMode::Update(meta.version.clone().unwrap()),
        )
        .await
        .unwrap();
    let stale = s
        .put(
            &key,
            pieces(data.clone(), false),
            PutMode::Update(meta.version.unwrap()),
        )
        .await;
    assert!(
        matches!(stale, Err(StorageError::Precondition { .. })),
        "{stale:?}"
    );
    assert_eq!(s.head(&key).await.unwrap().version, updated.version);

    // A stream failing after two native parts leaves nothing: no object, no upload.
    let failed = Key::new("big/failed").unwrap();
    let err = s
        .put(&failed, pieces(data.clone(), true), PutMode::Overwrite)
        .await;
    assert!(matches!(err, Err(StorageError::Input(_))), "{err:?}");
    assert!(s.head(&failed).await.unwrap_err().is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_mixes_copied_and_reuploaded_parts() {
    let s3 = s3_storage("mixed").await;
    let s: &dyn Storage = &s3;
    let mib = 1024 * 1024;
    let key = Key::new("uploads/blob").unwrap();
    let id = s.create_multipart(&key).await.unwrap();
    // Large first (copied server-side), small, large after a pending remainder (re-uploaded),
    // an exact part that empties the buffer, large again (copied), tiny last.
    let sizes = [6 * mib, 100, 6 * mib + 3, 2 * mib - 103, 5 * mib, 10];
    let mut parts = Vec::new();
    let mut whole = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let bytes = pattern(*size, i as u8);
        whole.extend_from_slice(&bytes);
        parts.push(
            s.put_part(&key, &id, i as u32 + 1, pieces(vec![bytes], false))
                .await
                .unwrap(),
        );
    }
    // Parts in progress never show in listings.
    let listed = s.list("", ListOptions::default()).await.unwrap();
    assert!(
        listed.objects.is_empty() && listed.next.is_none(),
        "{listed:?}"
    );

    let meta = s.complete_multipart(&key, &id, &parts).await.unwrap();
    assert_eq!(meta.size, whole.len() as u64);
    assert!(read(s, &key).await == whole, "parts joined in order");
    // The parts are gone once the upload completed.
    let leftovers = s3
        .list_names(&format!("mixed/{}", object_parts::upload_prefix(&id)))
        .await
        .unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn unknown_or_inconsistent_settings_are_refused() {
    let mut unknown = config("b", "");
    unknown["bukcet"] = serde_json::json!("typo");
    let err = factory(PluginContext::new(".".into(), "storage.s3"), unknown)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bukcet"), "{err}");
    let mut half = config("b", "");
    half.as_object_mut().unwrap().remove("secretAccessKey");
    let err = factory(PluginContext::new(".".into(), "storage.s3"), half)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("go together"), "{err}");
    let mut tiny = config("b", "");
    tiny["partSizeMib"] = serde_json::json!(1);
    let err = factory(PluginContext::new(".".into(), "storage.s3"), tiny)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("partSizeMib"), "{err}");
}

#[test]
fn large_copies_are_cut_into_equal_pieces_within_s3_limits() {
    let gib = 1024 * 1024 * 1024u64;
    let small = compose::copy_pieces(6 * 1024 * 1024);
    assert_eq!((small.len(), small[0].clone()), (1, 0..6 * 1024 * 1024));
    for size in [5 * gib, 5 * gib + 1, 11 * gib + 7, 4 * gib * 3] {
        let pieces = compose::copy_pieces(size);
        assert_eq!(pieces.first().unwrap().start, 0);
        assert_eq!(pieces.last().unwrap().end, size);
        assert!(
            pieces.windows(2).all(|w| w[0].end == w[1].start),
            "contiguous"
        );
        assert!(
            pieces
                .iter()
                .all(|p| p.end - p.start <= 5 * gib && p.end - p.start >= 5 * 1024 * 1024),
            "{size}: {pieces:?}"
        );
    }
}

#[test]
fn part_size_grows_to_fit_s3s_part_limit() {
    let base = 8 * 1024 * 1024;
    assert_eq!(upload::part_size_for(base, 1), base);
    assert_eq!(upload::part_size_for(base, 1000), 2 * base);
    let total: u64 = (1..=10_000)
        .map(|n| upload::part_size_for(base, n) as u64)
        .sum();
    assert!(
        total > 5 * 1024u64.pow(4),
        "10,000 parts reach 5 TiB: {total}"
    );
    assert_eq!(upload::part_size_for(base, 9_999), 512 * base);
    assert_eq!(upload::part_size_for(base, 50_000), 5 * 1024 * 1024 * 1024);
}

/// As a backup target (`backup.aws`): the same client, the backup conformance suite on
/// SeaweedFS, and errors that name the backup section.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_a_backup_target() {
    let bucket = SeaweedFs::shared().new_bucket();
    let ctx = || PluginContext::new(".".into(), "backup.aws");
    let target = backup_factory(ctx(), config(&bucket, "backups"))
        .await
        .unwrap();
    assert_eq!(target.describe(), format!("s3:{bucket}/backups"));
    oci_storage_core::testkit::run_backup_target_conformance(target).await;

    let mut tiny = config(&bucket, "");
    tiny["partSizeMib"] = serde_json::json!(1);
    let err = backup_factory(ctx(), tiny).await.unwrap_err().to_string();
    assert!(
        err.contains("backup.aws") && !err.contains("storage.s3"),
        "{err}"
    );
    let mut typo = config(&bucket, "");
    typo["bukcet"] = serde_json::json!("x");
    let err = backup_factory(ctx(), typo).await.unwrap_err().to_string();
    assert!(err.contains("backup.aws"), "{err}");
}
