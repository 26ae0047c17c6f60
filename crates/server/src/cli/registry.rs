//! `ferrocast migrate` and `ferrocast apps ...`: the postgres app registry from a shell.
//!
//! Each change is one committed statement; the table's trigger then notifies every node, which
//! applies it within a second. Values are checked as the config file's `[[apps]]` are (exit 2
//! when refused), before anything is written. Secrets are printed only by `apps add` (the
//! credentials it made) and by `apps list --show-secrets`.

use std::process::ExitCode;

use ferrocast_registry_postgres::{AppRow, PgUrl, RegistryError, Store};
use ferrocast_server::config;
use serde_json::{json, Value};

use super::args::{AppAddArgs, AppFields, AppIdArgs, AppListArgs, AppUpdateArgs, AppsCommand, DbArgs};
use super::{fail, keygen, EXIT_USAGE};

/// A command's failure: a usage error (exit 2) or a failure at run time (exit 1).
enum Failure {
    Usage(String),
    Run(String),
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Self {
        let missing_table = matches!(&e, RegistryError::Postgres { source, .. }
            if source.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE));
        if missing_table {
            return Failure::Run(format!("{e} (run `ferrocast migrate` first)"));
        }
        match e {
            RegistryError::Url(message) => Failure::Usage(format!("--url: {message}")),
            RegistryError::Row(e) => Failure::Usage(e.to_string()),
            other => Failure::Run(other.to_string()),
        }
    }
}

fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => fail(EXIT_USAGE, message),
        Err(Failure::Run(message)) => fail(1, message),
    }
}

/// Run `work` against the store of `db` on a small runtime.
fn with_store<F, Fut>(db: &DbArgs, work: F) -> ExitCode
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let result = (|| {
        let url = PgUrl::parse(&db.url).map_err(Failure::from)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::Run(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(async {
            let store = Store::new(&url)?;
            work(store).await
        })
    })();
    finish(result)
}

pub fn migrate(db: &DbArgs) -> ExitCode {
    with_store(db, |store| async move {
        let applied = store.migrate().await?;
        let latest = ferrocast_registry_postgres::MIGRATIONS.last().map_or(0, |m| m.version);
        if applied.is_empty() {
            println!("{}: schema up to date (version {latest})", store.url());
        } else {
            let list: Vec<String> = applied.iter().map(i32::to_string).collect();
            println!(
                "{}: applied migration(s) {}; schema at version {latest}",
                store.url(),
                list.join(", ")
            );
        }
        Ok(())
    })
}

pub fn apps(command: AppsCommand) -> ExitCode {
    match command {
        AppsCommand::Add(args) => add(args),
        AppsCommand::Update(args) => update(args),
        AppsCommand::Disable(args) => set_enabled(args, false),
        AppsCommand::Enable(args) => set_enabled(args, true),
        AppsCommand::Remove(args) => remove(args),
        AppsCommand::List(args) => list(args),
    }
}

fn add(args: AppAddArgs) -> ExitCode {
    let (id, key, secret) = keygen::credentials();
    let generated_secret = args.fields.secret.is_none();
    let mut row = AppRow::new(
        args.id.as_deref().unwrap_or(&id),
        args.fields.key.as_deref().unwrap_or(&key),
        args.fields.secret.as_deref().unwrap_or(&secret),
    );
    row.enabled = !args.disabled;
    if let Err(e) = apply_fields(&mut row, &args.fields, false) {
        return finish(Err(e));
    }
    with_store(&args.db, |store| async move {
        store.insert(&row).await?;
        println!("FERROCAST_APP_ID={}", row.id);
        println!("FERROCAST_APP_KEY={}", row.key);
        if generated_secret {
            println!("FERROCAST_APP_SECRET={}", row.secret);
        }
        Ok(())
    })
}

fn update(args: AppUpdateArgs) -> ExitCode {
    let AppUpdateArgs {
        db,
        id,
        clear_previous_secret,
        fields,
    } = args;
    with_store(&db, |store| async move {
        let mut row = store.get(&id).await?.ok_or(RegistryError::NoSuchApp(id.clone()))?;
        if clear_previous_secret {
            row.previous_secret = None;
            row.previous_secret_expires_at = None;
        }
        apply_fields(&mut row, &fields, true)?;
        store.update(&row).await?;
        println!("app {id} updated");
        Ok(())
    })
}

fn set_enabled(args: AppIdArgs, enabled: bool) -> ExitCode {
    let AppIdArgs { db, id } = args;
    with_store(&db, |store| async move {
        let mut row = store.get(&id).await?.ok_or(RegistryError::NoSuchApp(id.clone()))?;
        row.enabled = enabled;
        store.update(&row).await?;
        println!("app {id} {}", if enabled { "enabled" } else { "disabled" });
        Ok(())
    })
}

fn remove(args: AppIdArgs) -> ExitCode {
    let AppIdArgs { db, id } = args;
    with_store(&db, |store| async move {
        store.remove(&id).await?;
        println!("app {id} removed");
        Ok(())
    })
}

fn list(args: AppListArgs) -> ExitCode {
    let show = args.show_secrets;
    with_store(&args.db, |store| async move {
        for row in store.all().await? {
            println!("{}", listed(&row, show));
        }
        Ok(())
    })
}

/// One line of `apps list`: the secrets only when asked for.
fn listed(row: &AppRow, show_secrets: bool) -> Value {
    let mut line = json!({
        "id": row.id,
        "key": row.key,
        "enabled": row.enabled,
        "previous_secret_expires_at": row.previous_secret_expires_at,
        "limits": row.limits,
        "webhooks": row.webhooks,
    });
    if show_secrets {
        line["secret"] = json!(row.secret);
        line["previous_secret"] = json!(row.previous_secret);
    }
    line
}

/// Set what the options give on `row`, then check the result as an `[[apps]]` entry would be.
/// `replace_credentials`: an update (absent options keep the row's values).
fn apply_fields(row: &mut AppRow, fields: &AppFields, replace_credentials: bool) -> Result<(), Failure> {
    if replace_credentials {
        if let Some(key) = &fields.key {
            row.key = key.clone();
        }
        if let Some(secret) = &fields.secret {
            row.secret = secret.clone();
        }
    }
    if let Some(previous) = &fields.previous_secret {
        row.previous_secret = Some(previous.clone());
    }
    if let Some(at) = fields.previous_secret_expires_at {
        let at = i64::try_from(at).map_err(|_| Failure::Usage("--previous-secret-expires-at: too large".into()))?;
        row.previous_secret_expires_at = Some(at);
    }
    let limits = [
        ("max_connections", fields.max_connections.map(Value::from)),
        (
            "max_client_events_per_second",
            fields.max_client_events_per_second.map(Value::from),
        ),
        ("enable_client_messages", fields.enable_client_messages.map(Value::from)),
        (
            "enable_user_authentication",
            fields.enable_user_authentication.map(Value::from),
        ),
    ];
    for (key, value) in limits {
        if let Some(value) = value {
            row.set_limit(key, value);
        }
    }
    for pair in &fields.set {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| Failure::Usage(format!("--set {pair:?}: expected KEY=VALUE")))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        row.set_limit(key.trim(), value);
    }
    if fields.no_webhooks {
        row.webhooks = json!([]);
    } else if !fields.webhooks.is_empty() {
        row.webhooks = Value::Array(fields.webhooks.iter().map(|url| json!({ "url": url })).collect());
    }
    let app = row.to_config().map_err(|e| Failure::Usage(e.to_string()))?;
    config::validate_app("app", &app).map_err(|e| Failure::Usage(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> AppFields {
        AppFields {
            key: None,
            secret: None,
            previous_secret: None,
            previous_secret_expires_at: None,
            max_connections: None,
            max_client_events_per_second: None,
            enable_client_messages: None,
            enable_user_authentication: None,
            set: Vec::new(),
            webhooks: Vec::new(),
            no_webhooks: false,
        }
    }

    #[test]
    fn options_set_columns_and_limits_and_are_checked_like_apps() {
        let mut row = AppRow::new("1", "k", "s");
        let given = AppFields {
            secret: Some("s2".into()),
            previous_secret: Some("s".into()),
            previous_secret_expires_at: Some(1_900_000_000),
            max_connections: Some(5),
            enable_client_messages: Some(true),
            set: vec![
                "max_event_payload_kb=20".into(),
                r#"allowed_origins=["https://a.example"]"#.into(),
            ],
            webhooks: vec!["https://hooks.example/p".into()],
            ..fields()
        };
        assert!(apply_fields(&mut row, &given, true).is_ok());
        let app = row.to_config().unwrap();
        assert_eq!((app.secret.as_str(), app.previous_secret.as_deref()), ("s2", Some("s")));
        assert_eq!((app.max_connections, app.max_event_payload_kb), (5, 20));
        assert!(app.enable_client_messages);
        assert_eq!(app.allowed_origins, ["https://a.example"]);
        assert_eq!(app.webhooks[0].url, "https://hooks.example/p");

        // On add, --key/--secret were used to build the row: not applied twice.
        let mut added = AppRow::new("2", "k2", "s2");
        assert!(apply_fields(
            &mut added,
            &AppFields {
                key: Some("other".into()),
                ..fields()
            },
            false
        )
        .is_ok());
        assert_eq!(added.key, "k2");

        for (bad, needle) in [
            (
                AppFields {
                    set: vec!["max_event_payload_kb=0".into()],
                    ..fields()
                },
                "app.max_event_payload_kb",
            ),
            (
                AppFields {
                    set: vec!["nonsense".into()],
                    ..fields()
                },
                "KEY=VALUE",
            ),
            (
                AppFields {
                    set: vec!["secret=x".into()],
                    ..fields()
                },
                "column",
            ),
            (
                AppFields {
                    secret: Some("k".into()),
                    ..fields()
                },
                "app.secret",
            ),
            (
                AppFields {
                    webhooks: vec!["ftp://x".into()],
                    ..fields()
                },
                "webhooks[0].url",
            ),
        ] {
            let mut row = AppRow::new("1", "k", "s");
            match apply_fields(&mut row, &bad, true) {
                Err(Failure::Usage(message)) => assert!(message.contains(needle), "{needle}: {message}"),
                _ => panic!("{needle}: accepted"),
            }
        }
    }

    #[test]
    fn list_hides_secrets_unless_asked() {
        let mut row = AppRow::new("1", "k", "very-secret");
        row.previous_secret = Some("older".into());
        let hidden = listed(&row, false).to_string();
        assert!(!hidden.contains("very-secret") && !hidden.contains("older"), "{hidden}");
        let shown = listed(&row, true).to_string();
        assert!(shown.contains("very-secret") && shown.contains("older"), "{shown}");
    }
}
