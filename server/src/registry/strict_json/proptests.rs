//! Properties of the strict JSON check that runs first on every pushed manifest: ordinary
//! JSON passes, a repeated key (however escaped, at any depth) and nesting past the limit are
//! refused, and nothing passes that serde_json itself would refuse. Also the document edits
//! that the manifest properties build near-valid input with.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;

use super::*;
use crate::test_support::json_value;

/// One change to a document, at a node chosen by an index into all its nodes.
#[derive(Debug, Clone)]
pub(in crate::registry) enum Edit {
    Remove,
    Replace(Value),
    WrapInArray,
    WrapInObject,
    SwapWithSibling(Index),
    /// Repeats a key of the object (written with an escape when `escaped`): always invalid.
    DuplicateKey(Value, bool),
    /// Byte-level: cut the text short, or overwrite one byte.
    Truncate(Index),
    SetByte(Index, u8),
}

pub(in crate::registry) fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        Just(Edit::Remove),
        json_value().prop_map(Edit::Replace),
        Just(Edit::WrapInArray),
        Just(Edit::WrapInObject),
        any::<Index>().prop_map(Edit::SwapWithSibling),
        (json_value(), any::<bool>()).prop_map(|(v, e)| Edit::DuplicateKey(v, e)),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::SetByte(i, b)),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    At(usize),
}

fn paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                here.push(Step::At(i));
                paths(item, here, out);
                here.pop();
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                here.push(Step::Key(k.clone()));
                paths(item, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn node<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(v, |v, step| match step {
        Step::Key(k) => &mut v[k.as_str()],
        Step::At(i) => &mut v[*i],
    })
}

/// A string no generated document contains, replaced after serializing.
const MARK: &str = "\u{1}duplicate-key-goes-here\u{1}";

/// `doc` with `edit` applied at node `at`, as the bytes a client would send. The second
/// value tells whether the edit repeated a key (so the document must be refused).
pub(in crate::registry) fn edited(doc: &Value, at: Index, edit: &Edit) -> (Vec<u8>, bool) {
    let mut doc = doc.clone();
    let mut all = Vec::new();
    paths(&doc, &mut Vec::new(), &mut all);
    let path = &all[at.index(all.len())];
    let text = |doc: &Value| serde_json::to_vec(doc).unwrap();
    match edit {
        Edit::Remove => match path.split_last() {
            Some((Step::Key(k), parent)) => {
                node(&mut doc, parent).as_object_mut().unwrap().remove(k);
            }
            Some((Step::At(i), parent)) => {
                node(&mut doc, parent).as_array_mut().unwrap().remove(*i);
            }
            None => doc = Value::Null,
        },
        Edit::Replace(v) => *node(&mut doc, path) = v.clone(),
        Edit::WrapInArray => {
            let n = node(&mut doc, path);
            *n = Value::Array(vec![n.take()]);
        }
        Edit::WrapInObject => {
            let n = node(&mut doc, path);
            *n = serde_json::json!({ "x": n.take() });
        }
        Edit::SwapWithSibling(other) => {
            if let Some((_, parent)) = path.split_last() {
                let parent = node(&mut doc, parent);
                let at = path.last().unwrap();
                match (parent, at) {
                    (Value::Object(map), Step::Key(k)) => {
                        let keys: Vec<String> = map.keys().cloned().collect();
                        let k2 = &keys[other.index(keys.len())];
                        let (a, b) = (map[k].clone(), map[k2].clone());
                        map[k] = b;
                        map[k2] = a;
                    }
                    (Value::Array(items), Step::At(i)) => {
                        let j = other.index(items.len());
                        items.swap(*i, j);
                    }
                    _ => unreachable!("a step matches its parent"),
                }
            }
        }
        Edit::DuplicateKey(v, escaped) => {
            let n = node(&mut doc, path);
            let Some((key, _)) = n.as_object().and_then(|m| m.iter().next()) else {
                return (text(&doc), false);
            };
            let mut key_text = serde_json::to_string(key).unwrap();
            if *escaped && let Some(c) = key.chars().next().filter(|c| (*c as u32) < 0x10000) {
                // `"k…"` → `"\u006b…"`: the same key to a JSON reader.
                let first = serde_json::to_string(&c.to_string()).unwrap();
                key_text = format!("\"\\u{:04x}{}", c as u32, &key_text[first.len() - 1..]);
            }
            let object = serde_json::to_string(n).unwrap();
            let repeated = format!(
                "{{{key_text}:{},{}",
                serde_json::to_string(v).unwrap(),
                &object[1..]
            );
            *n = Value::String(MARK.to_owned());
            let marked = serde_json::to_string(&doc).unwrap();
            let mark = serde_json::to_string(MARK).unwrap();
            return (marked.replacen(&mark, &repeated, 1).into_bytes(), true);
        }
        Edit::Truncate(i) => {
            let mut bytes = text(&doc);
            bytes.truncate(i.index(bytes.len() + 1));
            return (bytes, false);
        }
        Edit::SetByte(i, b) => {
            let mut bytes = text(&doc);
            let i = i.index(bytes.len());
            bytes[i] = *b;
            return (bytes, false);
        }
    }
    (text(&doc), false)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// serde_json writes unique keys, and generated values are shallow: all pass, compact
    /// or pretty.
    #[test]
    fn ordinary_json_passes(v in json_value()) {
        prop_assert_eq!(check(&serde_json::to_vec(&v).unwrap()), Ok(()));
        prop_assert_eq!(check(&serde_json::to_vec_pretty(&v).unwrap()), Ok(()));
    }

    #[test]
    fn a_repeated_key_is_refused_at_any_depth(
        v in json_value(),
        at in any::<Index>(),
        dup in json_value(),
        escaped in any::<bool>(),
    ) {
        let (bytes, repeated) = edited(&v, at, &Edit::DuplicateKey(dup, escaped));
        if repeated {
            let err = check(&bytes).unwrap_err();
            prop_assert!(err.contains("twice"), "{}: {}", String::from_utf8_lossy(&bytes), err);
        }
    }

    /// A scalar inside `depth` arrays and objects passes exactly when `depth <= MAX_DEPTH`.
    #[test]
    fn nesting_is_bounded(kinds in prop::collection::vec(any::<bool>(), 0..(2 * MAX_DEPTH))) {
        let mut doc = String::from("1");
        for array in &kinds {
            doc = if *array { format!("[{doc}]") } else { format!("{{\"k\":{doc}}}") };
        }
        prop_assert_eq!(check(doc.as_bytes()).is_ok(), kinds.len() <= MAX_DEPTH);
    }

    /// The check is never looser than serde_json (it runs before serde_json reads the manifest).
    #[test]
    fn never_looser_than_serde_json(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            (json_value(), any::<Index>(), edit()).prop_map(|(v, at, e)| edited(&v, at, &e).0),
        ]
    ) {
        if check(&bytes).is_ok() {
            prop_assert!(serde_json::from_slice::<Value>(&bytes).is_ok());
        }
    }
}
