//! A training configuration from the default and a JSON patch, as `--set` takes it.

use switchyard::classify::learned::TrainConfig;
use switchyard::{Error, ErrorKind, Result};

/// The default [`TrainConfig`] with the JSON object `patch` merged into it: nested objects merge
/// key by key (`{"features": {"hash_bits": 16}}` changes one feature setting and keeps the others),
/// any other value replaces the default's.
///
/// # Errors
/// [`ErrorKind::Config`](switchyard::ErrorKind::Config) when `patch` is not JSON or names a field or
/// value `TrainConfig` does not have; the message says which.
pub fn patched_config(patch: &str) -> Result<TrainConfig> {
    let mut value = serde_json::to_value(TrainConfig::default())
        .map_err(|e| config_error(format!("the default training configuration: {e}")))?;
    let patch: serde_json::Value =
        serde_json::from_str(patch).map_err(|e| config_error(format!("the training configuration patch: {e}")))?;
    merge(&mut value, patch);
    serde_json::from_value(value).map_err(|e| config_error(format!("the training configuration patch: {e}")))
}

fn config_error(message: String) -> Error {
    Error::new(ErrorKind::Config, message)
}

fn merge(into: &mut serde_json::Value, patch: serde_json::Value) {
    match (into, patch) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_changes_what_it_names_and_keeps_the_rest() {
        let c = patched_config(r#"{"min_trust": 1, "features": {"hash_bits": 16}}"#).unwrap();
        let d = TrainConfig::default();
        assert_eq!((c.min_trust, c.features.hash_bits), (1.0, 16));
        assert_eq!((c.features.char_ngram, c.l2.clone(), c.fallback), (d.features.char_ngram, d.l2, d.fallback));
        assert_eq!(patched_config("{}").unwrap(), TrainConfig::default());
        for bad in ["{\"no_such_field\": 1}", "{\"min_trust\": \"high\"}", "not json"] {
            let e = patched_config(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{bad}");
            assert!(e.to_string().contains("training configuration patch"), "{e}");
        }
    }
}
