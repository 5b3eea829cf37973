//! Blob downloads with `sendfile(2)`: the bytes of a blob stored on the local file system go
//! from the page cache to the socket without being copied through the process, as nginx and
//! Distribution serve files. The stream path costs a read into a buffer, a write out of it and
//! a hand-off to the blocking pool per chunk.
//!
//! hyper only writes bytes it holds, so such a response's body is the file's range mapped
//! into memory ([`mapping`]) and never touched. The connection ([`connection`]) recognises the
//! mapping by address when hyper writes it, and sends the same bytes from the file with
//! `sendfile` instead ([`transfer`]): hyper queues body chunks by reference when the
//! connection writes vectored, which it does. Should anything copy the body on its way (a
//! wrapper that does not write vectored, TLS), the copy reads the mapping: the same bytes,
//! only slower. Correctness never rests on hyper's internals; speed does, and the end-to-end
//! tests measure which path the bytes took.
//!
//! The fast path is taken where nothing between hyper and the socket should copy: plain-text
//! HTTP/1 connections accepted by [`Acceptor`] and handed to poem as they are (not boxed:
//! poem's `BoxIo` does not write vectored), for storage that offers the open file
//! ([`oci_storage_core::GetResult::file`]). Everything else streams the body ([`blob_body`]).

mod body;
mod connection;
mod mapping;
mod transfer;

pub use body::blob_body;
pub use connection::Acceptor;
