//! The command line: every subcommand and option, and the environment variables `--help` lists.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `ferrocast --version`: the version and the commit, so a bug report names the exact build.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("FERROCAST_COMMIT"), ")");

const ENVIRONMENT: &str = "\
Environment:
  FERROCAST_<SECTION>__<KEY>       Override a config key, e.g. FERROCAST_SERVER__PORT=7001,
                                   FERROCAST_BACKPLANE__URL=redis://redis:6379 (serve, check-config)
  FERROCAST_LOG                    Log filter, replacing [log] filter: a level (info) or
                                   target=level directives (info,ferrocast_broker=debug);
                                   an invalid filter is a configuration error (exit 2)
  FERROCAST_LOG__FORMAT            text or json, replacing [log] format (--log-format wins)
  SSL_CERT_FILE                    CA bundle trusted for rediss:// and https:// webhooks
  FERROCAST_URL, FERROCAST_APP_ID, FERROCAST_APP_KEY, FERROCAST_APP_SECRET
                                   Defaults of --url, --app-id, --key, --secret (trigger,
                                   channels, users, terminate); `ferrocast keygen` prints them
  FERROCAST_ENCRYPTION_MASTER_KEY  Base64 32-byte master key of `trigger --encrypted`
  FERROCAST_REGISTRY__URL          PostgreSQL URL of the postgres app registry (serve, migrate,
                                   apps): --url of `migrate` and `apps`

Exit status: 0 success, 1 failure at run time, 2 usage or configuration error.";

/// A Pusher Channels (protocol 7) broker: WebSocket and HTTP API edge, clustered over Redis.
///
/// Without a subcommand, runs a node, as `ferrocast serve` does: with no --config, one node with
/// the demo app (id app-id, key app-key, secret app-secret) and no Redis.
#[derive(Debug, Parser)]
#[command(name = "ferrocast", version = VERSION, after_help = ENVIRONMENT, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node (the default without a subcommand).
    Serve(ServeArgs),
    /// Check a configuration file without starting a node (exit 0 if valid, 2 if not).
    ///
    /// Checks every key with its FERROCAST_* overrides, and reads the files the configuration
    /// names (TLS certificates and keys, CA bundles); binds no port and connects to nothing.
    CheckConfig {
        /// The TOML configuration file.
        #[arg(value_name = "FILE")]
        file: String,
    },
    /// Print a fresh app id, key, secret and encryption master key, one per line.
    Keygen {
        /// Print an [[apps]] block for the configuration file instead of environment lines.
        #[arg(long)]
        toml: bool,
    },
    /// Publish an event on one or more channels (POST /apps/{id}/events).
    Trigger(TriggerArgs),
    /// List occupied channels, or show one channel's attributes.
    Channels(ChannelsArgs),
    /// List the users of a presence channel.
    Users(UsersArgs),
    /// Close every connection of a signed-in user.
    Terminate(TerminateArgs),
    /// Create or upgrade the schema of the postgres app registry (nodes also do it at start).
    Migrate(DbArgs),
    /// Manage the apps of the postgres app registry; every change reaches every node at once.
    Apps {
        #[command(subcommand)]
        command: AppsCommand,
    },
}

/// Where the postgres app registry is.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// The registry's PostgreSQL URL, postgres://user:password@host:5432/db (prefer the
    /// environment variable: arguments are visible in `ps`).
    #[arg(long, env = "FERROCAST_REGISTRY__URL", hide_env_values = true)]
    pub url: String,
}

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Add an app; without --key or --secret they are generated (as `ferrocast keygen` does) and
    /// printed.
    Add(AppAddArgs),
    /// Change an app: only the options given change.
    Update(AppUpdateArgs),
    /// Refuse the app's new connections and REST calls, and close its sockets (4003).
    Disable(AppIdArgs),
    /// Accept the app again.
    Enable(AppIdArgs),
    /// Delete the app: its sockets are closed (4001) and its REST calls refused.
    Remove(AppIdArgs),
    /// Print every app, one JSON object per line, without secrets unless --show-secrets.
    List(AppListArgs),
}

#[derive(Debug, Args)]
pub struct AppIdArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The app id.
    #[arg(long)]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct AppAddArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The app id (default: 7 random digits).
    #[arg(long)]
    pub id: Option<String>,
    /// Add it disabled.
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub fields: AppFields,
}

#[derive(Debug, Args)]
pub struct AppUpdateArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The app id.
    #[arg(long)]
    pub id: String,
    /// Stop accepting the previous secret now.
    #[arg(long, conflicts_with_all = ["previous_secret", "previous_secret_expires_at"])]
    pub clear_previous_secret: bool,
    #[command(flatten)]
    pub fields: AppFields,
}

/// What `apps add` and `apps update` may set.
#[derive(Debug, Args)]
pub struct AppFields {
    /// The app key (public: it is in every WebSocket URL).
    #[arg(long)]
    pub key: Option<String>,
    /// The app secret (arguments are visible in `ps`: prefer generating it with `apps add`).
    #[arg(long)]
    pub secret: Option<String>,
    /// The secret before a rotation, still accepted until --previous-secret-expires-at.
    #[arg(long, requires = "previous_secret_expires_at")]
    pub previous_secret: Option<String>,
    /// When the previous secret stops being accepted (Unix seconds).
    #[arg(long, value_name = "UNIX")]
    pub previous_secret_expires_at: Option<u64>,
    /// Connections at once, cluster-wide (0 = unlimited).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u64>,
    /// client-* events per second per connection.
    #[arg(long, value_name = "N")]
    pub max_client_events_per_second: Option<u32>,
    /// Accept client-* events.
    #[arg(long, value_name = "BOOL")]
    pub enable_client_messages: Option<bool>,
    /// Require user authentication (pusher:signin).
    #[arg(long, value_name = "BOOL")]
    pub enable_user_authentication: Option<bool>,
    /// Any other [[apps]] key, as KEY=VALUE (VALUE as JSON, else a string); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Webhook URLs receiving every event (replace the app's webhooks); repeatable.
    #[arg(long = "webhook", value_name = "URL")]
    pub webhooks: Vec<String>,
    /// Remove every webhook of the app.
    #[arg(long, conflicts_with = "webhooks")]
    pub no_webhooks: bool,
}

#[derive(Debug, Args)]
pub struct AppListArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Print secret and previous_secret too.
    #[arg(long)]
    pub show_secrets: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); without it, the demo app and the in-process backplane.
    #[arg(long, value_name = "FILE")]
    pub config: Option<String>,
    /// Log line format, replacing [log] format and FERROCAST_LOG__FORMAT.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines (colours only on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// Where the HTTP API is and which app to act for.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Base URL of any node's HTTP API: http:// or https:// (trusting the system store, or the
    /// CA bundle in SSL_CERT_FILE).
    #[arg(long, env = "FERROCAST_URL", default_value = "http://127.0.0.1:6001")]
    pub url: String,
    /// The app id.
    #[arg(long, env = "FERROCAST_APP_ID")]
    pub app_id: String,
    /// The app key.
    #[arg(long, env = "FERROCAST_APP_KEY")]
    pub key: String,
    /// The app secret (prefer the environment variable: arguments are visible in `ps`).
    #[arg(long, env = "FERROCAST_APP_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Seconds to wait for the answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct TriggerArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// A channel (repeat for up to 100; an encrypted channel must be the only one).
    #[arg(long = "channel", short = 'c', value_name = "CHANNEL", required = true)]
    pub channels: Vec<String>,
    /// The event name.
    #[arg(long, short = 'e')]
    pub event: String,
    /// The event data as JSON (a JSON string is sent as that string); `-` reads it from stdin.
    #[arg(long, short = 'd', value_name = "JSON")]
    pub data: String,
    /// Seal the data for a private-encrypted- channel with the master key in
    /// FERROCAST_ENCRYPTION_MASTER_KEY (base64 of 32 bytes); the broker only sees ciphertext.
    #[arg(long)]
    pub encrypted: bool,
    /// Do not deliver to this connection (usually the sender's).
    #[arg(long, value_name = "SOCKET_ID")]
    pub socket_id: Option<String>,
    /// Report these attributes per channel (user_count, subscription_count), printed as JSON.
    #[arg(long, value_name = "ATTRIBUTES")]
    pub info: Option<String>,
}

#[derive(Debug, Args)]
pub struct ChannelsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Show this channel's attributes instead of listing channels.
    #[arg(long, conflicts_with = "prefix")]
    pub channel: Option<String>,
    /// Only channels whose name starts with this (presence- to ask for user_count).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Comma-separated attributes: user_count, subscription_count (and cache for one channel).
    #[arg(long, value_name = "ATTRIBUTES")]
    pub info: Option<String>,
}

#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The presence channel.
    #[arg(long)]
    pub channel: String,
}

#[derive(Debug, Args)]
pub struct TerminateArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The user whose connections to close (the id they signed in with).
    #[arg(long)]
    pub user_id: String,
}
