//! Media types as RFC 6838 defines them, the form the OCI image spec requires of `mediaType`
//! and `artifactType`: checked wherever a media type enters from outside (manifest pushes,
//! upstream answers) before it is stored and served as a Content-Type.

/// Whether `s` is a media type without parameters: `type/subtype`, each a restricted-name of
/// at most 127 characters (a letter or digit, then letters, digits and `!#$&-^_.+`).
pub fn is_media_type(s: &str) -> bool {
    let restricted_name = |part: &str| {
        let mut bytes = part.bytes();
        part.len() <= 127
            && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
            && bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    s.split_once('/')
        .is_some_and(|(t, sub)| restricted_name(t) && restricted_name(sub))
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6838() {
        for good in [
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.cncf.helm.config.v1+json",
            "a/b",
            "x-1/y_2.z^3",
        ] {
            assert!(is_media_type(good), "{good}");
        }
        let long = format!("application/{}", "a".repeat(128));
        for bad in [
            "",
            "application",
            "/json",
            "application/",
            "a/b/c",
            "a/b; charset=utf-8",
            " a/b",
            "a/.b",
            "é/b",
            long.as_str(),
        ] {
            assert!(!is_media_type(bad), "{bad}");
        }
    }
}
