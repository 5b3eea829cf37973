//! Shared by the unit tests: a real fs storage in a temporary directory.

use std::sync::Arc;

use oci_storage_core::Storage;

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
