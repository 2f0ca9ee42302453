//! Object keys in the order a file writes them. serde_json's `Map` keeps keys sorted, which
//! is right for lookups but loses the author's column order; tables (`export`) want it back:
//! a schema's `properties` in order, a JSONL record's fields in order.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The keys of the object found by following `path` from the top of `json`, in file order.
pub fn ordered_keys(json: &[u8], path: &[&str]) -> Result<Vec<String>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    KeysAt { path }.deserialize(&mut deserializer)
}

struct KeysAt<'a> {
    path: &'a [&'a str],
}

impl<'de> DeserializeSeed<'de> for KeysAt<'_> {
    type Value = Vec<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<String>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeysAt<'_> {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
        let mut keys = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match self.path.split_first() {
                None => {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                }
                Some((first, rest)) if *first == key => {
                    keys = map.next_value_seed(KeysAt { path: rest })?;
                }
                Some(_) => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_file_order() {
        let json = br#"{"type": "object", "properties": {"zeta": {"type": "string"}, "alpha": {}}, "b": 1}"#;
        assert_eq!(
            ordered_keys(json, &[]).unwrap(),
            ["type", "properties", "b"]
        );
        assert_eq!(
            ordered_keys(json, &["properties"]).unwrap(),
            ["zeta", "alpha"]
        );
        assert!(ordered_keys(json, &["absent"]).unwrap().is_empty());
        assert!(ordered_keys(b"[1]", &[]).is_err());
    }
}
