//! The JSON rules serde_json does not enforce, checked on manifests before anything else
//! reads them: no object with the same key twice (the OCI image spec requires unique keys, and
//! two parsers could otherwise read two different documents from one manifest) and at most
//! [`MAX_DEPTH`] levels of nesting.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Deepest nesting accepted (an image index with annotations is four levels deep).
pub const MAX_DEPTH: usize = 64;

/// Checks that `bytes` is one JSON value with unique keys and bounded nesting.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Checked { depth: 0 }
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())
}

#[derive(Clone, Copy)]
struct Checked {
    depth: usize,
}

impl Checked {
    fn nested<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(Self {
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Checked {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        let mut keys = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if keys.contains(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format!(
                    "an object has the key {shown:?} twice"
                )));
            }
            keys.insert(key);
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_json() {
        check(br#"{"a":[1,2.5,-3,true,null,"x",{"b":{}}],"c":"\u0041"}"#).unwrap();
        check(b" [] ").unwrap();
    }

    #[test]
    fn refuses_duplicate_keys_at_any_depth_even_when_escaped() {
        for doc in [
            r#"{"a":1,"a":2}"#,
            r#"{"x":{"annotations":{"k":"1","k":"2"}}}"#,
            r#"[{"k":1,"\u006b":2}]"#,
        ] {
            let err = check(doc.as_bytes()).unwrap_err();
            assert!(err.contains("twice"), "{doc}: {err}");
        }
        check(br#"{"a":{"k":1},"b":{"k":1}}"#).expect("the same key in two objects is fine");
    }

    #[test]
    fn bounds_nesting() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        check(deep(MAX_DEPTH).as_bytes()).unwrap();
        let err = check(deep(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert!(err.contains("nested deeper"), "{err}");
        let objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
        assert!(check(objects.as_bytes()).is_err());
    }

    #[test]
    fn refuses_trailing_data_and_garbage() {
        assert!(check(b"{} {}").is_err());
        assert!(check(b"{").is_err());
        assert!(check(b"").is_err());
    }
}
