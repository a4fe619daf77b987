//! Helpers for a plugin's unit tests (feature `test-util`): finding readings by key.
//! They panic with the readings there were when the key is missing.

use hbc_plugin_api::{Reading, Value};

/// The reading with `key`; panics if there is none.
pub fn reading<'a>(readings: &'a [Reading], key: &str) -> &'a Reading {
    match readings.iter().find(|r| r.key.as_str() == key) {
        Some(r) => r,
        None => panic!("no reading {key} in {readings:?}"),
    }
}

/// The value of the reading with `key`; panics if there is none.
pub fn value<'a>(readings: &'a [Reading], key: &str) -> &'a Value {
    &reading(readings, key).value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_key() {
        let r = [
            Reading::integer("a.count", 3, ""),
            Reading::number("a.rate", 1.5, "1/s"),
        ];
        assert_eq!(value(&r, "a.rate"), &Value::F64(1.5));
        assert_eq!(reading(&r, "a.count").unit.as_str(), "");
    }

    #[test]
    #[should_panic(expected = "no reading a.missing")]
    fn a_missing_key_panics() {
        value(&[Reading::integer("a.count", 3, "")], "a.missing");
    }
}
