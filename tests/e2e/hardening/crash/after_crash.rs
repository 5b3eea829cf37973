//! Right after a crash interrupted a write, what the write may have left must be absent or
//! whole: never a truncated blob or manifest, never a tag that is listed but does not resolve.

use oci_storage_tests::sha256;
use reqwest::Method;

use super::pusher::Pusher;
use crate::protocol::OCI_MANIFEST;

impl Pusher {
    /// The blob is absent from the repository or served whole and correct.
    pub fn check_blob(&mut self, digest: &str, len: usize) -> Result<(), String> {
        let path = format!("/v2/{}/blobs/{digest}", self.repo());
        let head = self.answered("check", Method::HEAD, &path, &[], None)?;
        match head.status {
            404 => return Ok(()),
            200 if head.header("content-length") == Some(&len.to_string()) => {}
            _ => {
                return Err(format!(
                    "after a crash, HEAD {path} ({len} bytes pushed): {} content-length {:?}",
                    head.status,
                    head.header("content-length")
                ));
            }
        }
        let get = self.answered("check", Method::GET, &path, &[], None)?;
        if get.status != 200 || get.body.len() != len || sha256(&get.body) != digest {
            return Err(format!(
                "after a crash, GET {path} served {} bytes hashing to {} (status {})",
                get.body.len(),
                sha256(&get.body),
                get.status
            ));
        }
        Ok(())
    }

    /// The manifest is absent or served exactly; the tag is absent (if it had no acknowledged
    /// manifest), at its `previous` manifest, or at this one; and listed exactly when served.
    pub fn check_manifest(
        &mut self,
        tag: &str,
        digest: &str,
        bytes: &[u8],
        previous: Option<&str>,
    ) -> Result<(), String> {
        let accept = [("accept", OCI_MANIFEST.to_owned())];
        let path = format!("/v2/{}/manifests/{digest}", self.repo());
        let got = self.answered("check", Method::GET, &path, &accept, None)?;
        if !(got.status == 404 || (got.status == 200 && got.body == bytes)) {
            return Err(format!("after a crash, GET {path}: {}", got.describe()));
        }
        let path = format!("/v2/{}/manifests/{tag}", self.repo());
        let got = self.answered("check", Method::GET, &path, &accept, None)?;
        let served = got.header("docker-content-digest").map(str::to_owned);
        let fine = match got.status {
            404 => previous.is_none(),
            200 => {
                let served = served.as_deref().unwrap_or_default();
                (served == digest || Some(served) == previous) && sha256(&got.body) == served
            }
            _ => false,
        };
        if !fine {
            return Err(format!(
                "after a crash, tag {tag} (previous {previous:?}, pushing {digest}): {} digest {served:?}",
                got.describe()
            ));
        }
        let listed = self.tag_listed(tag)?;
        if listed != (got.status == 200) {
            return Err(format!(
                "after a crash, tag {tag} is {} but its GET answers {}",
                if listed { "listed" } else { "not listed" },
                got.describe()
            ));
        }
        Ok(())
    }

    /// Whether the repository's tag list names `tag` (a repository not yet created lists none).
    fn tag_listed(&mut self, tag: &str) -> Result<bool, String> {
        let path = format!("/v2/{}/tags/list?n=1000", self.repo());
        let list = self.answered("check", Method::GET, &path, &[], None)?;
        match list.status {
            200 => Ok(serde_json::from_slice::<serde_json::Value>(&list.body)
                .map_err(|e| format!("{path}: {e}"))?["tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| t == tag))),
            404 => Ok(false),
            _ => Err(format!("after a crash, {path}: {}", list.describe())),
        }
    }
}
