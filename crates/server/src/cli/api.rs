//! `trigger`, `channels`, `users`, `terminate`: a running cluster's HTTP API through the SDK,
//! the way an app server calls it, so an operator can publish a test event or look at a channel
//! from a shell.
//!
//! Answers with content are printed as JSON on stdout. A refused or failed call prints the
//! API's answer on stderr and exits 1; arguments the SDK refuses before sending exit 2.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use ferrocast_sdk::{ChannelsQuery, Client, Config, Error, TriggerParams};
use serde::Serialize;

use super::args::{ApiArgs, ChannelsArgs, TerminateArgs, TriggerArgs, UsersArgs};
use super::{fail, EXIT_USAGE};

/// The variable `trigger --encrypted` reads the master key from (never a flag: `ps` shows those).
const MASTER_KEY_ENV: &str = "FERROCAST_ENCRYPTION_MASTER_KEY";

pub fn trigger(args: TriggerArgs) -> ExitCode {
    let encrypted_channel = args.channels.iter().find(|c| ferrocast_sdk::is_encrypted_channel(c));
    let master_key = match (args.encrypted, encrypted_channel) {
        (true, Some(_)) => match std::env::var(MASTER_KEY_ENV) {
            Ok(key) if !key.trim().is_empty() => Some(key),
            _ => {
                return fail(
                    EXIT_USAGE,
                    format_args!("--encrypted needs the base64 master key in {MASTER_KEY_ENV}"),
                )
            }
        },
        (true, None) => return fail(EXIT_USAGE, "--encrypted is only for private-encrypted- channels"),
        (false, Some(channel)) => {
            return fail(
                EXIT_USAGE,
                format_args!(
                    "{channel} is end-to-end encrypted: add --encrypted (with the master key in {MASTER_KEY_ENV})"
                ),
            )
        }
        (false, None) => None,
    };
    let data = match read_data(&args.data) {
        Ok(data) => data,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let client = match client(&args.api, master_key.as_deref()) {
        Ok(client) => client,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let channels: Vec<&str> = args.channels.iter().map(String::as_str).collect();
    let params = TriggerParams {
        socket_id: args.socket_id,
        info: args.info.clone(),
    };
    call(async move {
        let answer = client.trigger(&channels, &args.event, &data, &params).await?;
        // Without --info the API answers an empty object: print nothing, as a shell tool does.
        Ok(args.info.is_some().then(|| json(&answer)))
    })
}

pub fn channels(args: ChannelsArgs) -> ExitCode {
    let client = match client(&args.api, None) {
        Ok(client) => client,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    call(async move {
        let info = args.info.unwrap_or_default();
        let text = match &args.channel {
            Some(channel) => {
                let attributes: Vec<&str> = info.split(',').filter(|a| !a.is_empty()).collect();
                json(&client.channel_info(channel, &attributes).await?)
            }
            None => {
                let query = ChannelsQuery {
                    filter_by_prefix: args.prefix,
                    info: (!info.is_empty()).then_some(info),
                };
                json(&client.channels(&query).await?)
            }
        };
        Ok(Some(text))
    })
}

pub fn users(args: UsersArgs) -> ExitCode {
    let client = match client(&args.api, None) {
        Ok(client) => client,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    call(async move {
        let users = client.users(&args.channel).await?;
        Ok(Some(json(&serde_json::json!({ "users": users }))))
    })
}

pub fn terminate(args: TerminateArgs) -> ExitCode {
    let client = match client(&args.api, None) {
        Ok(client) => client,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    call(async move {
        client.terminate_user_connections(&args.user_id).await?;
        Ok(None)
    })
}

fn client(api: &ApiArgs, master_key: Option<&str>) -> Result<Client, Error> {
    let mut config = Config::new(&api.app_id, &api.key, &api.secret)
        .base_url(&api.url)
        .timeout(Duration::from_secs(api.timeout));
    if let Some(key) = master_key {
        config = config.master_key_base64(key)?;
    }
    Client::new(config)
}

/// `--data`: JSON, or `-` for JSON on stdin. Parsed here so a typo is refused before sending.
fn read_data(data: &str) -> Result<serde_json::Value, String> {
    let text = if data == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("--data -: cannot read stdin: {e}"))?;
        text
    } else {
        data.to_owned()
    };
    serde_json::from_str(&text)
        .map_err(|e| format!("--data is not JSON ({e}); to send a plain string, quote it as JSON: '\"text\"'"))
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Run one API call on a small runtime; print its output, or its error with the exit code of
/// its kind.
fn call(work: impl std::future::Future<Output = Result<Option<String>, Error>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(1, format_args!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(work) {
        Ok(Some(text)) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e @ (Error::Http { .. } | Error::Transport(_) | Error::Timeout(_) | Error::Json(_))) => fail(1, e),
        Err(e) => fail(EXIT_USAGE, e),
    }
}
