//! Shared by the unit tests: a real fs storage in a temporary directory.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use oci_storage_core::{
    ByteStream, GetResult, Key, ListOptions, ListPage, ObjectMeta, PartInfo, PutMode, Storage,
    StorageError,
};

/// An empty fs storage (no fsync) living as long as the returned directory.
pub async fn temporary_storage() -> (tempfile::TempDir, Arc<dyn Storage>) {
    let dir = tempfile::tempdir().unwrap();
    let storage = oci_storage_storage_fs::FsStorage::open(oci_storage_storage_fs::FsConfig {
        path: dir.path().to_owned(),
        fsync: false,
    })
    .await
    .unwrap();
    (dir, Arc::new(storage))
}

/// For property tests: `valid` with one character replaced, inserted or removed. The character
/// is mostly one that grammars care about (separators, case, space, NUL, non-ASCII), so the
/// parser sees input just off the edge of what it accepts.
pub fn near_valid(
    valid: impl proptest::strategy::Strategy<Value = String>,
) -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let chars = prop_oneof![
        3 => prop::sample::select(vec![
            ':', '/', '.', '-', '_', '@', ',', '=', '*', ' ', '\t', '\0', '%', '\\', 'A', 'z',
            '0', 'é', '\u{202e}',
        ]),
        1 => any::<char>(),
    ];
    (valid, any::<prop::sample::Index>(), 0..3u8, chars).prop_map(|(s, at, op, c)| {
        let mut v: Vec<char> = s.chars().collect();
        let i = at.index(v.len() + 1);
        match op {
            0 if i < v.len() => v[i] = c,
            2 if i < v.len() => {
                v.remove(i);
            }
            _ => v.insert(i, c),
        }
        v.into_iter().collect()
    })
}

/// For property tests: any JSON value, a few levels deep.
pub fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A storage whose writes hang for ever once [`StallingWrites::stall`] is called (a store that
/// stopped answering); reads and listings go on.
#[derive(Debug)]
pub struct StallingWrites {
    inner: Arc<dyn Storage>,
    stalled: AtomicBool,
}

impl StallingWrites {
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        Self {
            inner,
            stalled: AtomicBool::new(false),
        }
    }

    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    async fn maybe_hang(&self) {
        if self.stalled.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait]
impl Storage for StallingWrites {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn get(&self, key: &Key, range: Option<Range<u64>>) -> Result<GetResult, StorageError> {
        self.inner.get(key, range).await
    }
    async fn head(&self, key: &Key) -> Result<ObjectMeta, StorageError> {
        self.inner.head(key).await
    }
    async fn put(
        &self,
        key: &Key,
        body: ByteStream,
        mode: PutMode,
    ) -> Result<ObjectMeta, StorageError> {
        self.maybe_hang().await;
        self.inner.put(key, body, mode).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        self.maybe_hang().await;
        self.inner.delete(key).await
    }
    async fn copy(&self, from: &Key, to: &Key) -> Result<ObjectMeta, StorageError> {
        self.maybe_hang().await;
        self.inner.copy(from, to).await
    }
    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StorageError> {
        self.inner.list(prefix, options).await
    }
    async fn create_multipart(&self, key: &Key) -> Result<String, StorageError> {
        self.maybe_hang().await;
        self.inner.create_multipart(key).await
    }
    async fn put_part(
        &self,
        key: &Key,
        upload_id: &str,
        part: u32,
        body: ByteStream,
    ) -> Result<PartInfo, StorageError> {
        self.maybe_hang().await;
        self.inner.put_part(key, upload_id, part, body).await
    }
    async fn complete_multipart(
        &self,
        key: &Key,
        upload_id: &str,
        parts: &[PartInfo],
    ) -> Result<ObjectMeta, StorageError> {
        self.maybe_hang().await;
        self.inner.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(&self, key: &Key, upload_id: &str) -> Result<(), StorageError> {
        self.inner.abort_multipart(key, upload_id).await
    }
}
