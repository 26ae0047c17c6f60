//! One row of `ferrocast_apps` and its mapping to an [`AppConfig`].
//!
//! The columns hold what identifies an app and what changes by hand most; `limits` holds every
//! other key of an `[[apps]]` entry (feature switches, limits, `allowed_origins`) by its config
//! name, missing keys at their defaults, and `webhooks` the `[[apps.webhooks]]` list. Mapping
//! goes through the same `Deserialize` as the config file, so a typo in `limits` is refused the
//! same way (and named).

use ferrocast_broker::AppConfig;
use serde_json::{Map, Value};
use thiserror::Error;

/// Keys that are columns (or meaningless in a database) and so may not appear in `limits`.
pub const RESERVED_LIMIT_KEYS: &[&str] = &[
    "id",
    "key",
    "secret",
    "secret_env",
    "previous_secret",
    "previous_secret_expires_at",
    "enabled",
    "webhooks",
];

/// A row that is not a valid app; names the app and the column, never a value.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("app {id:?}: {column}: {problem}")]
pub struct RowError {
    pub id: String,
    pub column: &'static str,
    pub problem: String,
}

/// The columns of one row, as read or about to be written.
#[derive(Clone, PartialEq, Eq)]
pub struct AppRow {
    pub id: String,
    pub key: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    pub enabled: bool,
    pub limits: Value,
    pub webhooks: Value,
}

impl std::fmt::Debug for AppRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRow")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .field("previous_secret", &self.previous_secret.as_ref().map(|_| "<redacted>"))
            .field("previous_secret_expires_at", &self.previous_secret_expires_at)
            .field("enabled", &self.enabled)
            .field("limits", &self.limits)
            .field("webhooks", &self.webhooks)
            .finish()
    }
}

/// The `SELECT` list matching [`AppRow::from_row`].
pub const COLUMNS: &str = "id, key, secret, previous_secret, previous_secret_expires_at, enabled, limits, webhooks";

impl AppRow {
    /// A new app with the defaults of every limit and no webhooks.
    pub fn new(id: &str, key: &str, secret: &str) -> Self {
        Self {
            id: id.into(),
            key: key.into(),
            secret: secret.into(),
            previous_secret: None,
            previous_secret_expires_at: None,
            enabled: true,
            limits: Value::Object(Map::new()),
            webhooks: Value::Array(Vec::new()),
        }
    }

    /// Every column as a statement parameter, in [`COLUMNS`] order ($1 = id ... $8 = webhooks),
    /// so that an insert and an update bind the same way.
    pub(crate) fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 8] {
        [
            &self.id,
            &self.key,
            &self.secret,
            &self.previous_secret,
            &self.previous_secret_expires_at,
            &self.enabled,
            &self.limits,
            &self.webhooks,
        ]
    }

    /// Read a row selected with [`COLUMNS`].
    pub fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get(0)?,
            key: row.try_get(1)?,
            secret: row.try_get(2)?,
            previous_secret: row.try_get(3)?,
            previous_secret_expires_at: row.try_get(4)?,
            enabled: row.try_get(5)?,
            limits: row.try_get(6)?,
            webhooks: row.try_get(7)?,
        })
    }

    /// The app this row describes. Checks the shape (types, unknown or reserved keys); the
    /// server checks the values as it does for `[[apps]]`.
    pub fn to_config(&self) -> Result<AppConfig, RowError> {
        let fail = |column: &'static str, problem: String| RowError {
            id: self.id.clone(),
            column,
            problem,
        };
        let Value::Object(limits) = &self.limits else {
            return Err(fail("limits", "must be a JSON object".into()));
        };
        if let Some(reserved) = limits.keys().find(|k| RESERVED_LIMIT_KEYS.contains(&k.as_str())) {
            return Err(fail("limits", format!("{reserved:?} is a column, not a limit")));
        }
        if !self.webhooks.is_array() {
            return Err(fail("webhooks", "must be a JSON array".into()));
        }
        let expires = match self.previous_secret_expires_at {
            Some(at) => {
                Some(u64::try_from(at).map_err(|_| fail("previous_secret_expires_at", "must not be negative".into()))?)
            }
            None => None,
        };
        let limits_only: AppConfig =
            serde_json::from_value(Value::Object(limits.clone())).map_err(|e| fail("limits", redact_serde(&e)))?;
        let webhooks = serde_json::from_value(self.webhooks.clone()).map_err(|e| fail("webhooks", redact_serde(&e)))?;
        Ok(AppConfig {
            id: self.id.clone(),
            key: self.key.clone(),
            secret: self.secret.clone(),
            secret_env: None,
            previous_secret: self.previous_secret.clone(),
            previous_secret_expires_at: expires,
            enabled: self.enabled,
            webhooks,
            ..limits_only
        })
    }

    /// Set limit `key` to `value` (validated by the next [`AppRow::to_config`]).
    pub fn set_limit(&mut self, key: &str, value: Value) {
        if let Value::Object(map) = &mut self.limits {
            map.insert(key.to_owned(), value);
        }
    }
}

/// A serde error without the offending value: `invalid type: string "x"` keeps only its kind.
fn redact_serde(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match (text.find("invalid type: "), text.find(", expected")) {
        (Some(start), Some(end)) if end > start => {
            let from = start + "invalid type: ".len();
            let kind = text[from..end].split_whitespace().next().unwrap_or("value");
            format!("{}{kind}{}", &text[..from], &text[end..])
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_maps_to_an_app_with_defaults_for_missing_limits() {
        let mut row = AppRow::new("a1", "k1", "s1");
        row.previous_secret = Some("old".into());
        row.previous_secret_expires_at = Some(1_900_000_000);
        row.enabled = false;
        row.limits =
            json!({"max_connections": 5, "enable_client_messages": true, "allowed_origins": ["https://x.test"]});
        row.webhooks = json!([{"url": "http://127.0.0.1:9/h", "events": ["channel_occupied"]}]);
        let c = row.to_config().unwrap();
        assert_eq!((c.id.as_str(), c.key.as_str(), c.secret.as_str()), ("a1", "k1", "s1"));
        assert_eq!(c.previous_secret.as_deref(), Some("old"));
        assert_eq!(c.previous_secret_expires_at, Some(1_900_000_000));
        assert!(!c.enabled && c.enable_client_messages);
        assert_eq!(c.max_connections, 5);
        assert_eq!(c.allowed_origins, ["https://x.test"]);
        assert_eq!(c.webhooks.len(), 1);
        assert_eq!(c.webhooks[0].events, ["channel_occupied"]);
        let defaults = AppConfig::default();
        assert_eq!(c.max_client_events_per_second, defaults.max_client_events_per_second);
        assert_eq!(c.cache_ttl_s, defaults.cache_ttl_s);
        assert!(c.secret_env.is_none());
    }

    #[test]
    fn bad_rows_name_the_app_and_column_never_a_value() {
        let cases = [
            (json!({"max_conections": 1}), json!([]), "limits", "max_conections"),
            (json!({"secret": "leak-me"}), json!([]), "limits", "column"),
            (
                json!({"max_connections": "leak-me"}),
                json!([]),
                "limits",
                "invalid type: string",
            ),
            (json!([1]), json!([]), "limits", "object"),
            (json!({}), json!({"url": "x"}), "webhooks", "array"),
            (
                json!({}),
                json!([{"url": "http://h/x", "bogus": 1}]),
                "webhooks",
                "bogus",
            ),
        ];
        for (limits, webhooks, column, needle) in cases {
            let mut row = AppRow::new("a1", "k1", "s1");
            row.limits = limits.clone();
            row.webhooks = webhooks;
            let e = row.to_config().unwrap_err();
            assert_eq!(e.column, column, "{limits}");
            let text = e.to_string();
            assert!(
                text.contains(needle) && text.contains("a1") && !text.contains("leak-me"),
                "{text}"
            );
        }
        let mut row = AppRow::new("a1", "k1", "s1");
        row.previous_secret = Some("o".into());
        row.previous_secret_expires_at = Some(-1);
        assert_eq!(row.to_config().unwrap_err().column, "previous_secret_expires_at");
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let mut row = AppRow::new("a1", "k1", "very-secret");
        row.previous_secret = Some("older-secret".into());
        let text = format!("{row:?}");
        assert!(
            !text.contains("very-secret") && !text.contains("older-secret"),
            "{text}"
        );
    }

    #[test]
    fn set_limit_adds_or_replaces_a_key() {
        let mut row = AppRow::new("a1", "k1", "s1");
        row.set_limit("max_connections", json!(3));
        row.set_limit("max_connections", json!(4));
        assert_eq!(row.to_config().unwrap().max_connections, 4);
    }
}
