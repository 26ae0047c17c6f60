//! Settings from the environment. The defaults match `ferrocast` started without arguments (the
//! demo app on 127.0.0.1:6001), so `cargo run -p ferrocast-example-secure-chat` next to `make run`
//! needs nothing else but a master key.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything the app needs to know.
pub struct Config {
    /// Where the page and the endpoints are served (`SECURE_CHAT_LISTEN`).
    pub listen: SocketAddr,
    /// The broker's HTTP API, used by the SDK to trigger events (`SECURE_CHAT_BROKER_URL`).
    pub broker_url: String,
    /// Where the browser opens its WebSocket (`SECURE_CHAT_WS_HOST`, `SECURE_CHAT_WS_PORT`;
    /// by default the host and port of the broker URL).
    pub ws_host: String,
    /// See `ws_host`.
    pub ws_port: u16,
    /// The app's credentials on the broker (`SECURE_CHAT_APP_ID`, `_APP_KEY`, `_APP_SECRET`).
    pub app_id: String,
    /// See `app_id`.
    pub app_key: String,
    /// See `app_id`. Never sent to the browser.
    pub app_secret: String,
    /// Base64 of 32 random bytes (`SECURE_CHAT_MASTER_KEY`). Each room's key is derived from it;
    /// the broker never sees it. Without it the app still starts, but every authorization of an
    /// encrypted room fails with 500 (the SDK refuses), which is what the page's error message for
    /// a broken server is tested with.
    pub master_key: Option<String>,
    /// pusher-js's encryption build, installed by `npm ci` in this directory
    /// (`SECURE_CHAT_PUSHER_JS`).
    pub pusher_js: PathBuf,
}

fn var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

impl Config {
    /// Reads the environment; an unusable value is an error naming the variable.
    pub fn from_env() -> Result<Config, String> {
        let listen = var("SECURE_CHAT_LISTEN", "127.0.0.1:3000");
        let listen = listen
            .parse()
            .map_err(|_| format!("SECURE_CHAT_LISTEN={listen:?} is not host:port, e.g. 127.0.0.1:3000"))?;
        let broker_url = var("SECURE_CHAT_BROKER_URL", "http://127.0.0.1:6001");
        let authority = broker_url
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .ok_or_else(|| format!("SECURE_CHAT_BROKER_URL={broker_url:?} must start with http://"))?;
        let (default_host, default_port) = authority.rsplit_once(':').unwrap_or((authority, "80"));
        let ws_host = var("SECURE_CHAT_WS_HOST", default_host);
        let ws_port = var("SECURE_CHAT_WS_PORT", default_port);
        let ws_port = ws_port
            .parse()
            .map_err(|_| format!("SECURE_CHAT_WS_PORT={ws_port:?} is not a port number"))?;
        Ok(Config {
            listen,
            broker_url,
            ws_host,
            ws_port,
            app_id: var("SECURE_CHAT_APP_ID", "app-id"),
            app_key: var("SECURE_CHAT_APP_KEY", "app-key"),
            app_secret: var("SECURE_CHAT_APP_SECRET", "app-secret"),
            master_key: std::env::var("SECURE_CHAT_MASTER_KEY").ok().filter(|k| !k.is_empty()),
            pusher_js: std::env::var_os("SECURE_CHAT_PUSHER_JS")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/node_modules/pusher-js/dist/web/pusher-with-encryption.min.js"
                    ))
                }),
        })
    }

    /// What the app runs with, secrets left out.
    pub fn print(&self) {
        println!("secure-chat configuration:");
        println!("  SECURE_CHAT_LISTEN      {}", self.listen);
        println!("  SECURE_CHAT_BROKER_URL  {}", self.broker_url);
        println!("  SECURE_CHAT_WS_HOST     {}", self.ws_host);
        println!("  SECURE_CHAT_WS_PORT     {}", self.ws_port);
        println!("  SECURE_CHAT_APP_ID      {}", self.app_id);
        println!("  SECURE_CHAT_APP_KEY     {}", self.app_key);
        println!("  SECURE_CHAT_APP_SECRET  (set, not shown)");
        match self.master_key {
            Some(_) => println!("  SECURE_CHAT_MASTER_KEY  (set, not shown)"),
            None => println!(
                "  SECURE_CHAT_MASTER_KEY  NOT SET: joining a room will fail with 500 \
                 (set it to the output of `openssl rand -base64 32`)"
            ),
        }
        println!("  SECURE_CHAT_PUSHER_JS   {}", self.pusher_js.display());
    }
}
