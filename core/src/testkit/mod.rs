//! The storage conformance suite: every [`Storage`] backend runs [`run_conformance`] unchanged
//! (fs, s3, gcs, and any third-party backend). It checks each rule of the trait's `# Contract`.
//! It works under a fresh random prefix, so it can share a bucket with other data.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, stream};

mod backup;

pub use backup::run_backup_target_conformance;

use crate::storage::bytes_stream;
use crate::{ByteStream, Key, ListOptions, PutMode, Storage, StorageError, StorageExt};

/// Runs every conformance check against `storage`, panicking with a description on the first
/// violation.
pub async fn run_conformance(storage: Arc<dyn Storage>) {
    let root = format!("conformance-{}", uuid::Uuid::new_v4().simple());
    let s = storage.as_ref();
    round_trip(s, &root).await;
    put_modes(s, &root).await;
    ranges(s, &root).await;
    failed_input_leaves_nothing(s, &root).await;
    delete_is_idempotent(s, &root).await;
    listing(s, &root).await;
    copy(s, &root).await;
    multipart(s, &root).await;
    large_streamed_object(s, &root).await;
    concurrent_create(storage.clone(), &root).await;
    storage.check().await.expect("check() on a healthy backend");
}

fn key(root: &str, rest: &str) -> Key {
    Key::new(format!("{root}/{rest}")).expect("valid test key")
}

async fn read_all(s: &dyn Storage, k: &Key) -> Bytes {
    s.get_bytes(k, u64::MAX).await.expect("get existing key")
}

fn failing_stream(prefix: &'static [u8]) -> ByteStream {
    Box::pin(stream::iter(vec![
        Ok(Bytes::from_static(prefix)),
        Err(std::io::Error::other("client went away")),
    ]))
}

async fn round_trip(s: &dyn Storage, root: &str) {
    let k = key(root, "rt/object");
    assert!(
        s.get(&k, None).await.unwrap_err().is_not_found(),
        "get of a missing key must be NotFound"
    );
    assert!(
        s.head(&k).await.unwrap_err().is_not_found(),
        "head of a missing key must be NotFound"
    );
    let meta = s
        .put_bytes(&k, Bytes::from_static(b"hello world"), PutMode::Overwrite)
        .await
        .unwrap();
    assert_eq!(meta.size, 11);
    assert_eq!(meta.key, k);
    assert_eq!(read_all(s, &k).await, Bytes::from_static(b"hello world"));
    assert_eq!(s.head(&k).await.unwrap().size, 11);
    s.put_bytes(&k, Bytes::from_static(b"bye"), PutMode::Overwrite)
        .await
        .unwrap();
    assert_eq!(
        read_all(s, &k).await,
        Bytes::from_static(b"bye"),
        "overwrite"
    );
    let empty = key(root, "rt/empty");
    s.put_bytes(&empty, Bytes::new(), PutMode::Overwrite)
        .await
        .unwrap();
    assert_eq!(s.head(&empty).await.unwrap().size, 0);
    assert!(read_all(s, &empty).await.is_empty(), "empty object");
}

async fn put_modes(s: &dyn Storage, root: &str) {
    let k = key(root, "modes/object");
    let first = s
        .put_bytes(&k, Bytes::from_static(b"v1"), PutMode::Create)
        .await
        .expect("create of a new key");
    let again = s
        .put_bytes(&k, Bytes::from_static(b"v2"), PutMode::Create)
        .await;
    assert!(
        matches!(again, Err(StorageError::AlreadyExists { .. })),
        "create of an existing key must be AlreadyExists, got {again:?}"
    );
    assert_eq!(read_all(s, &k).await, Bytes::from_static(b"v1"));
    let version = first.version.expect("backends report a version token");
    let head_version = s.head(&k).await.unwrap().version;
    assert_eq!(
        head_version.as_deref(),
        Some(version.as_str()),
        "head reports the same version as the write"
    );
    let second = s
        .put_bytes(
            &k,
            Bytes::from_static(b"v2"),
            PutMode::Update(version.clone()),
        )
        .await
        .expect("update with the current version");
    let stale = s
        .put_bytes(&k, Bytes::from_static(b"v3"), PutMode::Update(version))
        .await;
    assert!(
        matches!(stale, Err(StorageError::Precondition { .. })),
        "update with a stale version must be Precondition, got {stale:?}"
    );
    assert_eq!(read_all(s, &k).await, Bytes::from_static(b"v2"));
    let missing = key(root, "modes/missing");
    let update_missing = s
        .put_bytes(
            &missing,
            Bytes::from_static(b"x"),
            PutMode::Update(second.version.unwrap()),
        )
        .await;
    assert!(
        matches!(
            update_missing,
            Err(StorageError::Precondition { .. }) | Err(StorageError::NotFound { .. })
        ),
        "update of a missing key must fail, got {update_missing:?}"
    );
}

async fn ranges(s: &dyn Storage, root: &str) {
    let k = key(root, "ranges/object");
    s.put_bytes(&k, Bytes::from_static(b"0123456789"), PutMode::Overwrite)
        .await
        .unwrap();
    let k = &k;
    let collect = |r: std::ops::Range<u64>| async move {
        let got = s.get(k, Some(r)).await.unwrap();
        assert_eq!(got.meta.size, 10, "meta.size is the whole object's size");
        let mut buf = Vec::new();
        let mut body = got.body;
        while let Some(c) = body.next().await {
            buf.extend_from_slice(&c.unwrap());
        }
        (got.range, buf)
    };
    assert_eq!(collect(2..5).await, (2..5, b"234".to_vec()));
    assert_eq!(collect(7..100).await, (7..10, b"789".to_vec()));
    assert_eq!(collect(0..10).await, (0..10, b"0123456789".to_vec()));
    assert_eq!(collect(10..20).await, (10..10, Vec::new()));
    assert_eq!(collect(12..20).await.1, Vec::<u8>::new());

    // Ranges of an empty object are empty.
    let empty = key(root, "ranges/empty");
    s.put_bytes(&empty, Bytes::new(), PutMode::Overwrite)
        .await
        .unwrap();
    let got = s.get(&empty, Some(0..10)).await.unwrap();
    assert_eq!((got.meta.size, got.range.end - got.range.start), (0, 0));
}

async fn failed_input_leaves_nothing(s: &dyn Storage, root: &str) {
    let k = key(root, "failed/new");
    let err = s
        .put(&k, failing_stream(b"partial"), PutMode::Overwrite)
        .await;
    assert!(matches!(err, Err(StorageError::Input(_))), "got {err:?}");
    assert!(
        !s.exists(&k).await.unwrap(),
        "a failed write must leave no object"
    );
    let existing = key(root, "failed/existing");
    s.put_bytes(&existing, Bytes::from_static(b"old"), PutMode::Overwrite)
        .await
        .unwrap();
    assert!(
        s.put(&existing, failing_stream(b"new"), PutMode::Overwrite)
            .await
            .is_err()
    );
    assert_eq!(
        read_all(s, &existing).await,
        Bytes::from_static(b"old"),
        "a failed overwrite keeps the old content"
    );
    let listed = s.list_all(&format!("{root}/failed/")).await.unwrap();
    assert_eq!(
        listed.len(),
        1,
        "no temporary objects are listed: {listed:?}"
    );
}

async fn delete_is_idempotent(s: &dyn Storage, root: &str) {
    let k = key(root, "delete/object");
    s.put_bytes(&k, Bytes::from_static(b"x"), PutMode::Overwrite)
        .await
        .unwrap();
    s.delete(&k).await.unwrap();
    assert!(!s.exists(&k).await.unwrap());
    s.delete(&k).await.expect("deleting a missing key succeeds");
    s.delete(&key(root, "delete/never/was"))
        .await
        .expect("deleting a never-written key succeeds");
}

async fn listing(s: &dyn Storage, root: &str) {
    let names = ["a-b", "a.c", "a/x", "a/y/z", "a0", "b"];
    for n in names {
        s.put_bytes(
            &key(root, &format!("list/{n}")),
            Bytes::from(n),
            PutMode::Overwrite,
        )
        .await
        .unwrap();
    }
    let prefix = format!("{root}/list/");
    let all: Vec<String> = s
        .list_all(&prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key.as_str()[prefix.len()..].to_owned())
        .collect();
    let mut by_bytes: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    by_bytes.sort();
    let mut by_segments = by_bytes.clone();
    by_segments.sort_by(|a, b| a.split('/').cmp(b.split('/')));
    assert!(
        all == by_bytes || all == by_segments,
        "flat listing in byte-wise or segment-wise order: {all:?}"
    );
    // Everything below follows the order the backend uses.
    let expected = all.clone();

    let sizes: Vec<u64> = s
        .list_all(&prefix)
        .await
        .unwrap()
        .iter()
        .map(|m| m.size)
        .collect();
    let expected_sizes: Vec<u64> = expected.iter().map(|n| n.len() as u64).collect();
    assert_eq!(sizes, expected_sizes, "listing reports sizes");

    // Paging with a small limit visits every key once, in order.
    let mut paged = Vec::new();
    let mut start_after = None;
    loop {
        let page = s
            .list(
                &prefix,
                ListOptions {
                    start_after: start_after.take(),
                    limit: Some(2),
                    delimiter: false,
                },
            )
            .await
            .unwrap();
        assert!(page.objects.len() <= 2, "limit is honoured");
        paged.extend(
            page.objects
                .iter()
                .map(|m| m.key.as_str()[prefix.len()..].to_owned()),
        );
        match page.next {
            Some(n) => start_after = Some(n),
            None => break,
        }
    }
    assert_eq!(paged, expected, "paged listing");

    // A partial-segment prefix.
    let partial: Vec<String> = s
        .list_all(&format!("{root}/list/a"))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key.as_str()[prefix.len()..].to_owned())
        .collect();
    let expected_partial: Vec<String> = expected
        .iter()
        .filter(|n| n.starts_with('a'))
        .cloned()
        .collect();
    assert_eq!(partial, expected_partial);

    // Delimiter listing rolls sub-keys up into prefixes.
    let page = s
        .list(
            &prefix,
            ListOptions {
                delimiter: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let objects: Vec<&str> = page
        .objects
        .iter()
        .map(|m| &m.key.as_str()[prefix.len()..])
        .collect();
    assert_eq!(objects, ["a-b", "a.c", "a0", "b"]);
    assert_eq!(page.prefixes, [format!("{prefix}a/")]);

    let after = s
        .list(
            &prefix,
            ListOptions {
                start_after: Some(format!("{prefix}a.c")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let first = after.objects.first().map(|m| m.key.as_str().to_owned());
    let following = expected
        .iter()
        .position(|n| n == "a.c")
        .map(|i| &expected[i + 1]);
    assert_eq!(
        first,
        following.map(|n| format!("{prefix}{n}")),
        "start_after is exclusive"
    );

    // Paging with a delimiter: a rolled-up prefix is reported once, then skipped.
    let mut entries = Vec::new();
    let mut start_after = None;
    loop {
        let page = s
            .list(
                &prefix,
                ListOptions {
                    start_after: start_after.take(),
                    limit: Some(1),
                    delimiter: true,
                },
            )
            .await
            .unwrap();
        entries.extend(page.prefixes.iter().map(|p| p[prefix.len()..].to_owned()));
        entries.extend(
            page.objects
                .iter()
                .map(|m| m.key.as_str()[prefix.len()..].to_owned()),
        );
        match page.next {
            Some(n) => start_after = Some(n),
            None => break,
        }
    }
    entries.sort();
    assert_eq!(
        entries,
        ["a-b", "a.c", "a/", "a0", "b"],
        "paged delimiter listing"
    );

    let nothing = s
        .list(&format!("{root}/nothing-here/"), ListOptions::default())
        .await;
    assert!(
        nothing.unwrap().objects.is_empty(),
        "listing a missing prefix is empty"
    );
}

async fn copy(s: &dyn Storage, root: &str) {
    let from = key(root, "copy/from");
    let to = key(root, "copy/to/nested");
    s.put_bytes(&from, Bytes::from_static(b"copied"), PutMode::Overwrite)
        .await
        .unwrap();
    s.put_bytes(&to, Bytes::from_static(b"old"), PutMode::Overwrite)
        .await
        .unwrap();
    let meta = s.copy(&from, &to).await.unwrap();
    assert_eq!(meta.size, 6);
    assert_eq!(read_all(s, &to).await, Bytes::from_static(b"copied"));
    assert_eq!(read_all(s, &from).await, Bytes::from_static(b"copied"));
    s.delete(&from).await.unwrap();
    assert_eq!(
        read_all(s, &to).await,
        Bytes::from_static(b"copied"),
        "a copy is independent of its source"
    );
    assert!(
        s.copy(&key(root, "copy/missing"), &to)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

async fn multipart(s: &dyn Storage, root: &str) {
    let k = key(root, "multipart/object");
    let id = s.create_multipart(&k).await.unwrap();
    // Parts arrive out of order, as they may from different processes.
    let p2 = s
        .put_part(&k, &id, 2, bytes_stream(Bytes::from_static(b"-middle-")))
        .await
        .unwrap();
    let p1 = s
        .put_part(&k, &id, 1, bytes_stream(Bytes::from_static(b"start")))
        .await
        .unwrap();
    let p3 = s
        .put_part(&k, &id, 3, bytes_stream(Bytes::from_static(b"end")))
        .await
        .unwrap();
    assert_eq!((p1.size, p2.size, p3.size), (5, 8, 3));
    let failed = s.put_part(&k, &id, 4, failing_stream(b"bad")).await;
    assert!(
        matches!(failed, Err(StorageError::Input(_))),
        "a failed part stream is an input error, got {failed:?}"
    );
    assert!(
        !s.exists(&k).await.unwrap(),
        "nothing is visible before completion"
    );
    let meta = s.complete_multipart(&k, &id, &[p1, p2, p3]).await.unwrap();
    assert_eq!(meta.size, 16);
    assert_eq!(
        read_all(s, &k).await,
        Bytes::from_static(b"start-middle-end")
    );

    // In order, with a failed part retried under the same number (what chunked uploads do).
    let seq = key(root, "multipart/sequential");
    let id = s.create_multipart(&seq).await.unwrap();
    let mut parts = Vec::new();
    parts.push(
        s.put_part(&seq, &id, 1, bytes_stream(Bytes::from_static(b"one,")))
            .await
            .unwrap(),
    );
    let failed = s.put_part(&seq, &id, 2, failing_stream(b"garbage")).await;
    assert!(matches!(failed, Err(StorageError::Input(_))), "{failed:?}");
    parts.push(
        s.put_part(&seq, &id, 2, bytes_stream(Bytes::from_static(b"two,")))
            .await
            .unwrap(),
    );
    parts.push(
        s.put_part(&seq, &id, 3, bytes_stream(Bytes::from_static(b"three")))
            .await
            .unwrap(),
    );
    s.complete_multipart(&seq, &id, &parts).await.unwrap();
    assert_eq!(
        read_all(s, &seq).await,
        Bytes::from_static(b"one,two,three")
    );

    let single = key(root, "multipart/single");
    let id = s.create_multipart(&single).await.unwrap();
    let only = s
        .put_part(&single, &id, 1, bytes_stream(Bytes::from_static(b"one")))
        .await
        .unwrap();
    s.complete_multipart(&single, &id, &[only]).await.unwrap();

    // An upload may be joined into another key than the one it was created for.
    let created_for = key(root, "multipart/created-for");
    let elsewhere = key(root, "multipart/joined-elsewhere");
    let id = s.create_multipart(&created_for).await.unwrap();
    let part = s
        .put_part(
            &created_for,
            &id,
            1,
            bytes_stream(Bytes::from_static(b"moved")),
        )
        .await
        .unwrap();
    s.complete_multipart(&elsewhere, &id, &[part])
        .await
        .unwrap();
    assert_eq!(read_all(s, &elsewhere).await, &b"moved"[..]);
    assert!(!s.exists(&created_for).await.unwrap());
    assert_eq!(read_all(s, &single).await, Bytes::from_static(b"one"));

    let aborted = key(root, "multipart/aborted");
    let id = s.create_multipart(&aborted).await.unwrap();
    s.put_part(&aborted, &id, 1, bytes_stream(Bytes::from_static(b"x")))
        .await
        .unwrap();
    s.abort_multipart(&aborted, &id).await.unwrap();
    s.abort_multipart(&aborted, &id)
        .await
        .expect("abort is idempotent");
    assert!(!s.exists(&aborted).await.unwrap());
    let listed: Vec<String> = s
        .list_all(&format!("{root}/multipart/"))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key.as_str()[root.len() + "/multipart/".len()..].to_owned())
        .collect();
    let mut expected = ["joined-elsewhere", "object", "sequential", "single"];
    expected.sort();
    assert_eq!(listed, expected, "only completed objects are listed");
    // Nor anywhere else: the whole key space holds no part objects of this suite.
    let everything = s.list_all("").await.unwrap();
    assert!(
        everything.iter().all(|m| !m.key.as_str().contains(&id)),
        "part objects are never listed"
    );
}

async fn large_streamed_object(s: &dyn Storage, root: &str) {
    let k = key(root, "large/object");
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 128; // 8 MiB
    let body: ByteStream = Box::pin(stream::iter(
        (0..CHUNKS).map(|i| Ok(Bytes::from(vec![(i % 251) as u8; CHUNK]))),
    ));
    let meta = s.put(&k, body, PutMode::Overwrite).await.unwrap();
    assert_eq!(meta.size, (CHUNK * CHUNKS) as u64);
    let mut got = s.get(&k, None).await.unwrap();
    let mut offset = 0usize;
    while let Some(chunk) = got.body.next().await {
        for b in chunk.unwrap() {
            assert_eq!(b, ((offset / CHUNK) % 251) as u8, "byte {offset}");
            offset += 1;
        }
    }
    assert_eq!(offset, CHUNK * CHUNKS);
}

async fn concurrent_create(storage: Arc<dyn Storage>, root: &str) {
    let k = key(root, "race/object");
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let storage = storage.clone();
            let k = k.clone();
            tokio::spawn(async move {
                storage
                    .put_bytes(&k, Bytes::from(vec![i; 1024]), PutMode::Create)
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => winners += 1,
            Err(StorageError::AlreadyExists { .. }) => {}
            Err(e) => panic!("unexpected error in create race: {e}"),
        }
    }
    assert_eq!(winners, 1, "exactly one concurrent Create wins");
    let content = storage.get_bytes(&k, u64::MAX).await.unwrap();
    assert_eq!(content.len(), 1024, "the winner's content is whole");

    // get_or_create: every racer ends up with the one value that was created.
    let shared = key(root, "race/shared");
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let storage = storage.clone();
            let k = shared.clone();
            tokio::spawn(async move {
                storage
                    .get_or_create(&k, 1024, || Ok(Bytes::from(vec![i; 16])))
                    .await
            })
        })
        .collect();
    let mut values = Vec::new();
    for t in tasks {
        values.push(t.await.unwrap().expect("get_or_create"));
    }
    assert!(values.windows(2).all(|w| w[0] == w[1]), "one value for all");
    assert_eq!(storage.get_bytes(&shared, 1024).await.unwrap(), values[0]);
    assert!(
        content.iter().all(|b| *b == content[0]),
        "the winner's content is one writer's"
    );
}
