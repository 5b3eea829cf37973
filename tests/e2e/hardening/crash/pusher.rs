//! A client pushing images through crashes: every request that a kill interrupts is sent
//! again (or its upload started over) until acknowledged, after checking what it left, and
//! only acknowledged writes go into its [`Outcome`].

use std::sync::atomic::Ordering;

use oci_storage_tests::{XorShift, sha256};
use reqwest::Method;

use super::SHARED_LAYERS;
use super::ledger::{Blob, Outcome};
use super::transport::{Answer, Connection, Sent};
use crate::protocol::{OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, image_manifest, with_query};

const KIB: usize = 1024;
/// How often one request is sent again before the test gives up on it.
const ATTEMPTS: usize = 50;

/// How a blob is uploaded.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// `POST ?digest=` with the body.
    Monolithic,
    /// `POST`, then `PUT ?digest=` with the body.
    PostPut,
    /// `POST`, `PATCH`es, `PUT ?digest=`.
    Chunked,
}

pub struct Pusher {
    index: usize,
    conn: Connection,
    rng: XorShift,
    out: Outcome,
}

impl Pusher {
    pub fn new(index: usize, conn: Connection, rng: XorShift) -> Self {
        Self {
            index,
            conn,
            rng,
            out: Outcome::new(format!("crash/client{index}")),
        }
    }

    pub fn repo(&self) -> &str {
        &self.out.repo
    }

    /// Pushes images until told to stop: a config, a layer of its own, now and then a
    /// shared layer, and the manifest under a tag of its own and under `latest`.
    pub fn run(mut self) -> Result<Outcome, String> {
        let mut image = 0u64;
        while !self.conn.target().stop.load(Ordering::SeqCst) {
            let own_seed = ((self.index as u64 + 1) << 32) | image;
            let own = Blob::new(
                own_seed,
                self.rng.range(200 * KIB as u64, 3 * 1024 * KIB as u64) as usize,
            );
            let mut layers = vec![own];
            if self.rng.range(0, 2) == 0 {
                let shared = self.rng.range(0, SHARED_LAYERS);
                layers.push(Blob::new(
                    1000 + shared,
                    600 * KIB + shared as usize * 512 * KIB,
                ));
            }
            for layer in &layers {
                let mode = self.mode();
                self.push_blob(layer, mode)?;
                self.out.blobs.push(layer.clone());
            }
            let (config_digest, config_len) = self.push_config(image)?;
            let layer_refs: Vec<(&str, &str, usize)> = layers
                .iter()
                .map(|l| (OCI_LAYER, l.digest.as_str(), l.len))
                .collect();
            let manifest = image_manifest(OCI_CONFIG, &config_digest, config_len, &layer_refs);
            // Either tag may be the one whose push stores the manifest.
            let mut tags = [format!("i{image}"), "latest".to_owned()];
            if self.rng.range(0, 2) == 0 {
                tags.reverse();
            }
            for tag in &tags {
                self.push_manifest(tag, &manifest)?;
            }
            image += 1;
            self.out.images += 1;
        }
        Ok(self.out)
    }

    fn mode(&mut self) -> Mode {
        match self.rng.range(0, 3) {
            0 => Mode::Monolithic,
            1 => Mode::PostPut,
            _ => Mode::Chunked,
        }
    }

    /// Sends until the request is answered (it is idempotent or its effect is checked).
    pub fn answered(
        &mut self,
        kind: &'static str,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Answer, String> {
        for _ in 0..ATTEMPTS {
            match self.conn.send(method.clone(), path, headers, body)? {
                Sent::Answer(answer) => return Ok(answer),
                Sent::Killed => self.out.interrupted(kind),
            }
        }
        Err(format!("{method} {path}: interrupted {ATTEMPTS} times"))
    }

    /// Sends a request that creates something, once: true when acknowledged (201), false when
    /// a kill interrupted it (counted as `kind`).
    fn create_once(
        &mut self,
        kind: &'static str,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<bool, String> {
        match self.conn.send(method.clone(), path, headers, Some(body))? {
            Sent::Answer(answer) => {
                answer.expect(201, &format!("{method} {path}"))?;
                Ok(true)
            }
            Sent::Killed => {
                self.out.interrupted(kind);
                Ok(false)
            }
        }
    }

    /// Pushes this image's config blob (its bytes kept in the ledger); answers its digest
    /// and length.
    fn push_config(&mut self, image: u64) -> Result<(String, usize), String> {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"client":"{}","image":"{image}"}}}}}}"#,
            self.index
        )
        .into_bytes();
        let digest = sha256(&config);
        let path = format!("/v2/{}/blobs/uploads/?digest={digest}", self.out.repo);
        while !self.create_once("blob POST", Method::POST, &path, &[], &config)? {
            self.check_blob(&digest, config.len())?;
        }
        let len = config.len();
        self.out.configs.push((digest.clone(), config));
        Ok((digest, len))
    }

    /// Opens an upload session; `None` when a kill interrupted it (a session it may have
    /// created is never used).
    fn open_session(&mut self) -> Result<Option<String>, String> {
        let path = format!("/v2/{}/blobs/uploads/", self.out.repo);
        match self.conn.send(Method::POST, &path, &[], None)? {
            Sent::Answer(answer) => {
                answer.expect(202, "opening an upload session")?;
                let location = answer.header("location").ok_or("no Location")?;
                Ok(Some(location.to_owned()))
            }
            Sent::Killed => {
                self.out.interrupted("session POST");
                Ok(None)
            }
        }
    }

    /// The offset an upload session reports; `None` when it is gone.
    fn session_offset(&mut self, location: &str) -> Result<Option<usize>, String> {
        let status = self.answered("check", Method::GET, location, &[], None)?;
        match status.status {
            204 => {
                let range = status.header("range").ok_or("no Range")?;
                let end: usize = range
                    .strip_prefix("0-")
                    .and_then(|e| e.parse().ok())
                    .ok_or_else(|| format!("Range {range}"))?;
                // Chunks are far longer than one byte, so `0-0` means empty.
                Ok(Some(if end == 0 { 0 } else { end + 1 }))
            }
            404 => Ok(None),
            _ => Err(format!("upload status {location}: {}", status.describe())),
        }
    }

    /// Pushes a blob until the server acknowledges it, checking after every crash what the
    /// interrupted request left.
    fn push_blob(&mut self, blob: &Blob, mode: Mode) -> Result<(), String> {
        let bytes = blob.bytes();
        let octets = [("content-type", "application/octet-stream".to_owned())];
        for _ in 0..ATTEMPTS {
            let acknowledged = match mode {
                Mode::Monolithic => {
                    let path = format!(
                        "/v2/{}/blobs/uploads/?digest={}",
                        self.out.repo, blob.digest
                    );
                    self.create_once("blob POST", Method::POST, &path, &octets, &bytes)?
                }
                Mode::PostPut => {
                    let Some(location) = self.open_session()? else {
                        continue;
                    };
                    let path = with_query(&location, &format!("digest={}", blob.digest));
                    self.create_once("blob PUT", Method::PUT, &path, &octets, &bytes)?
                }
                Mode::Chunked => self.push_chunked(blob, &bytes)?,
            };
            if acknowledged {
                return Ok(());
            }
            self.check_blob(&blob.digest, blob.len)?;
        }
        Err(format!("blob {} never acknowledged", blob.digest))
    }

    /// One chunked upload, continued across crashes while its session can be: true when the
    /// final PUT was acknowledged, false to start over.
    fn push_chunked(&mut self, blob: &Blob, bytes: &[u8]) -> Result<bool, String> {
        let Some(location) = self.open_session()? else {
            return Ok(false);
        };
        let mut offset = 0;
        while offset < bytes.len() {
            let end = (offset + self.rng.range(64 * KIB as u64, 1024 * KIB as u64) as usize)
                .min(bytes.len());
            let headers = [
                ("content-type", "application/octet-stream".to_owned()),
                ("content-range", format!("{offset}-{}", end - 1)),
            ];
            let chunk = Some(&bytes[offset..end]);
            match self.conn.send(Method::PATCH, &location, &headers, chunk)? {
                Sent::Answer(answer) => {
                    answer.expect(202, "PATCH")?;
                    let range = format!("0-{}", end - 1);
                    if answer.header("range") != Some(range.as_str()) {
                        return Err(format!("PATCH answered Range {:?}", answer.header("range")));
                    }
                    offset = end;
                }
                Sent::Killed => {
                    self.out.interrupted("PATCH");
                    // The session holds what was acknowledged, plus perhaps the chunk the
                    // server was writing: never a part of it.
                    match self.session_offset(&location)? {
                        Some(at) if at == offset || at == end => {
                            self.out.resumed += 1;
                            offset = at;
                        }
                        other => {
                            return Err(format!(
                                "after a crash during PATCH {offset}-{end}, the session reports {other:?}"
                            ));
                        }
                    }
                }
            }
        }
        self.finish_chunked(blob, &location)
    }

    /// The final PUT of a chunked upload: true when acknowledged, false when an interrupted
    /// attempt left the session unusable (the upload is started over).
    fn finish_chunked(&mut self, blob: &Blob, location: &str) -> Result<bool, String> {
        let path = with_query(location, &format!("digest={}", blob.digest));
        let mut interrupted = false;
        for _ in 0..ATTEMPTS {
            match self.conn.send(Method::PUT, &path, &[], None)? {
                Sent::Answer(answer) if answer.status == 201 => return Ok(true),
                // A PUT interrupted earlier had claimed the session (409), or completed it
                // (404): it cannot be finished; start over.
                Sent::Answer(answer)
                    if interrupted && (answer.status == 409 || answer.status == 404) =>
                {
                    *self.out.restarted.entry(answer.status).or_default() += 1;
                    return Ok(false);
                }
                Sent::Answer(answer) => return Err(format!("final PUT: {}", answer.describe())),
                Sent::Killed => {
                    interrupted = true;
                    self.out.interrupted("final PUT");
                    self.check_blob(&blob.digest, blob.len)?;
                }
            }
        }
        Err(format!("final PUT interrupted {ATTEMPTS} times"))
    }

    /// PUTs a manifest by `tag` until acknowledged; records it and the tag.
    fn push_manifest(&mut self, tag: &str, bytes: &[u8]) -> Result<(), String> {
        let digest = sha256(bytes);
        let path = format!("/v2/{}/manifests/{tag}", self.out.repo);
        let headers = [("content-type", OCI_MANIFEST.to_owned())];
        for _ in 0..ATTEMPTS {
            match self.conn.send(Method::PUT, &path, &headers, Some(bytes))? {
                Sent::Answer(answer) => {
                    answer.expect(201, "manifest PUT")?;
                    if answer.header("docker-content-digest") != Some(digest.as_str()) {
                        return Err(format!("manifest PUT answered digest {:?}", answer.headers));
                    }
                    self.out.manifests.insert(digest.clone(), bytes.to_vec());
                    self.out.tags.insert(tag.to_owned(), digest);
                    return Ok(());
                }
                Sent::Killed => {
                    self.out.interrupted("manifest PUT");
                    let previous = self.out.tags.get(tag).cloned();
                    self.check_manifest(tag, &digest, bytes, previous.as_deref())?;
                }
            }
        }
        Err(format!("manifest {tag} never acknowledged"))
    }
}
