//! Repository names, tags and references, validated against the OCI grammar before anything
//! touches storage. A valid name is also a safe storage key fragment.

use std::fmt;
use std::str::FromStr;

use oci_storage_core::Digest;

/// A repository name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` components joined by `/`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

/// Longest accepted name. Clients limit `<host>/<name>` to 255 characters, so a name has at
/// most 253 (a one-character host and the `/`). This also keeps every storage key segment
/// within the 255 bytes filesystems allow (the catalog key adds one character to the name).
pub const MAX_NAME_LEN: usize = 253;

impl RepoName {
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() <= MAX_NAME_LEN && s.split('/').all(valid_component)).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoName({})", self.0)
    }
}

/// One path component: alphanumeric runs separated by `.`, `_`, `__` or one or more `-`.
fn valid_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
        let rest_ok = b[1.min(b.len())..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c));
        (first_ok && rest_ok && b.len() <= 128).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a manifest URL points at.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.contains(':') {
            s.parse().map(Reference::Digest).map_err(|_| ())
        } else {
            Tag::parse(s).map(Reference::Tag).ok_or(())
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tag(t) => t.fmt(f),
            Self::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
pub(crate) mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in [
            "a",
            "library/nginx",
            "a/b/c/d/e",
            "my-chart",
            "a--b",
            "a__b",
            "a.b_c",
            "team-a/charts/x",
            "0",
        ] {
            assert!(RepoName::parse(good).is_some(), "{good}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "-a", "a-", "a..b", "a___b", "..", "a/../b", "a/.b",
            "a_-b", "a b", "a%2fb", "_uploads",
        ] {
            assert!(RepoName::parse(bad).is_none(), "{bad}");
        }
        assert!(RepoName::parse(&"a".repeat(MAX_NAME_LEN)).is_some());
        assert!(RepoName::parse(&"a".repeat(MAX_NAME_LEN + 1)).is_none());
    }

    #[test]
    fn tags() {
        for good in ["latest", "1.0.0", "_x", "1.2.3-rc.1_build.5", "A"] {
            assert!(Tag::parse(good).is_some(), "{good}");
        }
        for bad in ["", ".x", "-x", "a+b", "a/b", "a:b"] {
            assert!(Tag::parse(bad).is_none(), "{bad}");
        }
        assert!(Tag::parse(&"a".repeat(128)).is_some());
        assert!(Tag::parse(&"a".repeat(129)).is_none());
    }
}
