//! The backup target conformance suite: every [`BackupTarget`] (the built-in fs, s3 and gcs
//! targets, and any third-party one) runs [`run_backup_target_conformance`] unchanged. It
//! checks each rule of the trait's `# Contract`, under a fresh random prefix.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;

use super::failing_stream;
use crate::storage::bytes_stream;
use crate::{BackupError, BackupTarget, ByteStream, Key, WriteMode};

/// Runs every check against `target`, panicking with a description on the first violation.
pub async fn run_backup_target_conformance(target: Arc<dyn BackupTarget>) {
    let root = format!("backup-conformance-{}", uuid::Uuid::new_v4().simple());
    let t = target.as_ref();
    t.check().await.expect("check() on a healthy target");
    round_trip(t, &root).await;
    write_modes(t, &root).await;
    failed_or_wrong_sized_input_leaves_nothing(t, &root).await;
    listing(t, &root).await;
    large_streamed_object(t, &root).await;
    concurrent_create(target.clone(), &root).await;
}

fn key(root: &str, rest: &str) -> Key {
    Key::new(format!("{root}/{rest}")).expect("valid test key")
}

async fn put(
    t: &dyn BackupTarget,
    k: &Key,
    bytes: &'static [u8],
    mode: WriteMode,
) -> Result<(), BackupError> {
    t.put(
        k,
        bytes_stream(Bytes::from_static(bytes)),
        bytes.len() as u64,
        mode,
    )
    .await
}

async fn read_all(t: &dyn BackupTarget, k: &Key) -> Vec<u8> {
    let (object, mut body) = t.get(k).await.expect("get of an existing path");
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk.expect("body of an existing path"));
    }
    assert_eq!(object.size, bytes.len() as u64, "get's size is the body's");
    bytes
}

fn is_not_found<T>(r: Result<T, BackupError>) -> bool {
    matches!(r, Err(BackupError::NotFound(_)))
}

async fn round_trip(t: &dyn BackupTarget, root: &str) {
    let k = key(root, "rt/object");
    assert!(
        is_not_found(t.get(&k).await),
        "get of a missing path is NotFound"
    );
    assert!(
        is_not_found(t.head(&k).await),
        "head of a missing path is NotFound"
    );
    put(t, &k, b"hello backup", WriteMode::Overwrite)
        .await
        .expect("put");
    assert_eq!(read_all(t, &k).await, b"hello backup");
    let head = t.head(&k).await.expect("head");
    assert_eq!((head.path.as_str(), head.size), (k.as_str(), 12));
    t.delete(&k).await.expect("delete");
    assert!(is_not_found(t.head(&k).await), "deleted");
    t.delete(&k)
        .await
        .expect("delete of a missing path succeeds");
}

async fn write_modes(t: &dyn BackupTarget, root: &str) {
    let k = key(root, "modes/record");
    put(t, &k, b"first", WriteMode::Create)
        .await
        .expect("create");
    assert!(
        matches!(
            put(t, &k, b"second", WriteMode::Create).await,
            Err(BackupError::AlreadyExists(_))
        ),
        "Create over an existing path is AlreadyExists"
    );
    assert_eq!(
        read_all(t, &k).await,
        b"first",
        "a refused Create changes nothing"
    );
    put(t, &k, b"replaced", WriteMode::Overwrite)
        .await
        .expect("overwrite");
    assert_eq!(read_all(t, &k).await, b"replaced");
}

async fn failed_or_wrong_sized_input_leaves_nothing(t: &dyn BackupTarget, root: &str) {
    let k = key(root, "input/object");
    let failed = t
        .put(&k, failing_stream(b"partial"), 100, WriteMode::Overwrite)
        .await;
    assert!(
        matches!(failed, Err(BackupError::Input(_))),
        "a failing body is Input: {failed:?}"
    );
    assert!(
        is_not_found(t.head(&k).await),
        "a failed body leaves nothing"
    );

    let body = || bytes_stream(Bytes::from_static(b"twelve bytes"));
    for announced in [11, 13] {
        let wrong = t.put(&k, body(), announced, WriteMode::Overwrite).await;
        assert!(
            matches!(wrong, Err(BackupError::Input(_))),
            "12 bytes announced as {announced} is Input: {wrong:?}"
        );
        assert!(
            is_not_found(t.head(&k).await),
            "a wrong-sized body leaves nothing"
        );
    }
}

async fn listing(t: &dyn BackupTarget, root: &str) {
    let mut want: Vec<String> = (0..30)
        .map(|i| {
            key(root, &format!("list/d{}/o{i:02}", i % 3))
                .as_str()
                .to_owned()
        })
        .collect();
    for path in &want {
        put(
            t,
            &Key::new(path.clone()).unwrap(),
            b"x",
            WriteMode::Overwrite,
        )
        .await
        .expect("put for listing");
    }
    put(t, &key(root, "listed-not/o"), b"x", WriteMode::Overwrite)
        .await
        .unwrap();
    let prefix = format!("{root}/list/");
    let mut seen = Vec::new();
    let mut start_after: Option<String> = None;
    loop {
        let page = t.list(&prefix, start_after.as_deref()).await.expect("list");
        seen.extend(page.objects.into_iter().map(|o| o.path));
        match page.next {
            Some(next) => start_after = Some(next),
            None => break,
        }
    }
    seen.sort();
    want.sort();
    assert_eq!(
        seen, want,
        "paging visits every object under the prefix exactly once"
    );
}

async fn large_streamed_object(t: &dyn BackupTarget, root: &str) {
    const MIB: usize = 1024 * 1024;
    let k = key(root, "large/object");
    let chunk = |i: u8| Bytes::from(vec![i; MIB]);
    let body: ByteStream = Box::pin(futures_util::stream::iter(
        (0..12u8).map(move |i| Ok(chunk(i))),
    ));
    t.put(&k, body, 12 * MIB as u64, WriteMode::Create)
        .await
        .expect("12 MiB streamed put");
    let read = read_all(t, &k).await;
    assert_eq!(read.len(), 12 * MIB);
    assert!(
        read.chunks(MIB)
            .enumerate()
            .all(|(i, c)| c.iter().all(|b| *b == i as u8)),
        "the large object reads back in order"
    );
}

async fn concurrent_create(target: Arc<dyn BackupTarget>, root: &str) {
    let k = key(root, "race/record");
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let target = target.clone();
            let k = k.clone();
            tokio::spawn(async move {
                let body = bytes_stream(Bytes::from(vec![i; 1024]));
                target.put(&k, body, 1024, WriteMode::Create).await
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        match task.await.expect("racer") {
            Ok(()) => winners += 1,
            Err(BackupError::AlreadyExists(_)) => {}
            Err(e) => panic!("unexpected error in a create race: {e}"),
        }
    }
    assert_eq!(winners, 1, "exactly one concurrent Create wins");
    let content = read_all(target.as_ref(), &k).await;
    assert!(
        content.iter().all(|b| *b == content[0]),
        "the winner's content is whole"
    );
}
