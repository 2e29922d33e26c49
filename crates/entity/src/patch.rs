//! Partial updates: telling "absent" from "null".
//!
//! An update input declares an optional column as `Option<Option<T>>` with
//! `#[serde(default, deserialize_with = "crate::patch::present")]`: an absent field is
//! `None` (leave as is), `null` is `Some(None)` (clear it), a value is `Some(Some(v))`.

use serde::{Deserialize, Deserializer};

/// Deserialises a field that is present (possibly `null`) into `Some(..)`.
pub fn present<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize)]
    struct Patch {
        #[serde(default, deserialize_with = "super::present")]
        label: Option<Option<String>>,
    }

    #[test]
    fn absent_null_and_value_are_three_states() {
        let absent: Patch = serde_json::from_str("{}").unwrap();
        let null: Patch = serde_json::from_str(r#"{"label": null}"#).unwrap();
        let value: Patch = serde_json::from_str(r#"{"label": "home"}"#).unwrap();
        assert_eq!(absent.label, None);
        assert_eq!(null.label, Some(None));
        assert_eq!(value.label, Some(Some("home".to_owned())));
    }
}
