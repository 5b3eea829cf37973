//! `registry_storage_action_seconds{driver,action}`: every call into the storage plugin,
//! timed by a wrapper around it, so that every plugin (a third party's too) is measured alike.
//! A read is timed until its body starts; a write until it is stored.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use oci_storage_core::storage::{
    ByteStream, GetResult, Key, ListOptions, ListPage, ObjectMeta, PartInfo, PutMode, Storage,
    StorageError,
};

/// A storage plugin, timed.
#[derive(Debug)]
pub struct MeteredStorage {
    inner: Arc<dyn Storage>,
    driver: String,
}

impl MeteredStorage {
    /// Wraps `inner`, whose `storage.type` is `driver`.
    pub fn wrap(inner: Arc<dyn Storage>, driver: &str) -> Arc<dyn Storage> {
        Arc::new(Self {
            inner,
            driver: driver.to_owned(),
        })
    }

    async fn timed<T>(&self, action: &str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        super::get()
            .storage_action
            .with_label_values(&[self.driver.as_str(), action])
            .observe(started.elapsed().as_secs_f64());
        out
    }
}

#[async_trait]
impl Storage for MeteredStorage {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn get(&self, key: &Key, range: Option<Range<u64>>) -> Result<GetResult, StorageError> {
        self.timed("get", self.inner.get(key, range)).await
    }

    async fn head(&self, key: &Key) -> Result<ObjectMeta, StorageError> {
        self.timed("head", self.inner.head(key)).await
    }

    async fn put(
        &self,
        key: &Key,
        body: ByteStream,
        mode: PutMode,
    ) -> Result<ObjectMeta, StorageError> {
        self.timed("put", self.inner.put(key, body, mode)).await
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        self.timed("delete", self.inner.delete(key)).await
    }

    async fn copy(&self, from: &Key, to: &Key) -> Result<ObjectMeta, StorageError> {
        self.timed("copy", self.inner.copy(from, to)).await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage, StorageError> {
        self.timed("list", self.inner.list(prefix, options)).await
    }

    async fn create_multipart(&self, key: &Key) -> Result<String, StorageError> {
        self.timed("create_multipart", self.inner.create_multipart(key))
            .await
    }

    async fn put_part(
        &self,
        key: &Key,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
    ) -> Result<PartInfo, StorageError> {
        self.timed(
            "put_part",
            self.inner.put_part(key, upload_id, part_number, body),
        )
        .await
    }

    async fn complete_multipart(
        &self,
        key: &Key,
        upload_id: &str,
        parts: &[PartInfo],
    ) -> Result<ObjectMeta, StorageError> {
        self.timed(
            "complete_multipart",
            self.inner.complete_multipart(key, upload_id, parts),
        )
        .await
    }

    async fn abort_multipart(&self, key: &Key, upload_id: &str) -> Result<(), StorageError> {
        self.timed(
            "abort_multipart",
            self.inner.abort_multipart(key, upload_id),
        )
        .await
    }

    async fn download_url(&self, key: &Key) -> Result<Option<String>, StorageError> {
        self.timed("download_url", self.inner.download_url(key))
            .await
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.timed("check", self.inner.check()).await
    }
}
