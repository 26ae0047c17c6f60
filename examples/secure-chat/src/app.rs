//! The endpoints. Who may read a room is decided here, on the server: pusher-js asks
//! `/pusher/auth` before every subscription, and only an allowed user gets the signature and the
//! room's shared secret (the key that opens its messages).

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use ferrocast_sdk::{Client, Config as SdkConfig, Error as SdkError, TriggerParams};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, COOKIE, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::config::Config;

/// Who may read and write which room: the equivalent of the docs' `canAccessChannel`. A real app
/// would ask its database; anyone may log in, but only the users listed here may join a room.
const ROOMS: &[(&str, &[&str])] = &[("private-encrypted-room-1", &["alice", "bob"])];

/// The room the page joins.
const DEFAULT_ROOM: &str = "private-encrypted-room-1";

/// Request bodies are tiny: a name, a socket id and a channel, or one chat line.
const MAX_BODY: usize = 8 * 1024;
const MAX_TEXT_CHARS: usize = 500;
const COOKIE_NAME: &str = "secure_chat_session";

const INDEX_HTML: &str = include_str!("../static/index.html");

/// Whether `user` may subscribe and post to `channel`.
fn can_access_channel(user: &str, channel: &str) -> bool {
    ROOMS
        .iter()
        .any(|(room, users)| *room == channel && users.contains(&user))
}

type Res = Response<Full<Bytes>>;

/// The app's state: the SDK client, the sessions, and what the page needs to connect.
pub struct App {
    sdk: Client,
    /// Session token (random, in a cookie) → user name. In memory and never expired (a toy): a
    /// restart logs everyone out.
    sessions: Mutex<HashMap<String, String>>,
    /// What the page reads from `/config.json`; the secret and master key stay here.
    page_config: String,
    pusher_js: Bytes,
}

impl App {
    /// Builds the SDK client and loads pusher-js; fails with a message meant for a person.
    pub fn new(config: &Config) -> Result<App, String> {
        let mut sdk_config =
            SdkConfig::new(&config.app_id, &config.app_key, &config.app_secret).base_url(&config.broker_url);
        if let Some(key) = &config.master_key {
            sdk_config = sdk_config
                .master_key_base64(key)
                .map_err(|e| format!("SECURE_CHAT_MASTER_KEY: {e} (use `openssl rand -base64 32`)"))?;
        }
        let sdk = Client::new(sdk_config).map_err(|e| e.to_string())?;
        let pusher_js = std::fs::read(&config.pusher_js).map_err(|e| {
            format!(
                "cannot read pusher-js's encryption build at {} ({e}).\n\
                 Install it with `npm ci` in examples/secure-chat (or run `make example` at the \
                 repository root), or point SECURE_CHAT_PUSHER_JS at the file.",
                config.pusher_js.display()
            )
        })?;
        let page_config = json!({
            "key": config.app_key,
            "wsHost": config.ws_host,
            "wsPort": config.ws_port,
            "room": DEFAULT_ROOM,
        })
        .to_string();
        Ok(App {
            sdk,
            sessions: Mutex::new(HashMap::new()),
            page_config,
            pusher_js: pusher_js.into(),
        })
    }

    /// Routes one request. Never panics on input: every failure is an HTTP answer.
    pub async fn handle(&self, req: Request<Incoming>) -> Res {
        let user = self.session_user(&req);
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/") => reply(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML),
            (&Method::GET, "/pusher-with-encryption.min.js") => {
                reply(StatusCode::OK, "text/javascript; charset=utf-8", self.pusher_js.clone())
            }
            (&Method::GET, "/config.json") => reply(StatusCode::OK, "application/json", self.page_config.clone()),
            (&Method::POST, "/login") => match read_body(req).await {
                Ok(body) => self.login(&body),
                Err(res) => res,
            },
            (&Method::POST, "/pusher/auth") => match read_body(req).await {
                Ok(body) => self.authorize(user, &body),
                Err(res) => res,
            },
            (&Method::POST, "/send") => match read_body(req).await {
                Ok(body) => self.send(user, &body).await,
                Err(res) => res,
            },
            (_, "/" | "/pusher-with-encryption.min.js" | "/config.json" | "/login" | "/pusher/auth" | "/send") => {
                error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            }
            _ => error(StatusCode::NOT_FOUND, "not found"),
        }
    }

    /// `POST /login` with `{"username": "alice"}`: any well-formed name gets a session.
    fn login(&self, body: &[u8]) -> Res {
        #[derive(Deserialize)]
        struct Login {
            username: String,
        }
        let Ok(Login { username }) = serde_json::from_slice(body) else {
            return error(StatusCode::BAD_REQUEST, "expected JSON {\"username\": \"...\"}");
        };
        let username = username.trim().to_lowercase();
        let well_formed = (1..=32).contains(&username.len())
            && username
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !well_formed {
            return error(
                StatusCode::BAD_REQUEST,
                "a user name is 1 to 32 letters, digits, '-' or '_'",
            );
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.insert(token.clone(), username.clone());
        }
        let rooms: Vec<&str> = ROOMS
            .iter()
            .filter(|(_, users)| users.contains(&username.as_str()))
            .map(|(room, _)| *room)
            .collect();
        let mut res = reply(
            StatusCode::OK,
            "application/json",
            json!({"user": username, "rooms": rooms}).to_string(),
        );
        if let Ok(cookie) = format!("{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict").parse() {
            res.headers_mut().insert(SET_COOKIE, cookie);
        }
        res
    }

    /// `POST /pusher/auth`, pusher-js's `channelAuthorization` endpoint (form body `socket_id`,
    /// `channel_name`). 401 without a session, 403 for a user not allowed in the room, 500 when the
    /// SDK cannot sign (e.g. no master key: it refuses to hand out a shared secret it cannot derive).
    fn authorize(&self, user: Option<String>, body: &[u8]) -> Res {
        let Some(user) = user else {
            return error(StatusCode::UNAUTHORIZED, "log in first");
        };
        let form = parse_form(body);
        let (Some(socket_id), Some(channel)) = (form.get("socket_id"), form.get("channel_name")) else {
            return error(StatusCode::BAD_REQUEST, "socket_id and channel_name are required");
        };
        if !can_access_channel(&user, channel) {
            return error(StatusCode::FORBIDDEN, &format!("{user} may not join {channel}"));
        }
        match self.sdk.authorize_channel(socket_id, channel) {
            Ok(auth) => reply(StatusCode::OK, "application/json", auth.to_json()),
            Err(e @ (SdkError::InvalidSocketId(_) | SdkError::InvalidChannel(_))) => {
                error(StatusCode::BAD_REQUEST, &e.to_string())
            }
            Err(e) => {
                eprintln!("secure-chat: cannot authorize {user} on {channel}: {e}");
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the server cannot authorize this subscription",
                )
            }
        }
    }

    /// `POST /send` with `{"room": "...", "text": "..."}`: triggers `message` with `{from, text}`
    /// on the room. The SDK seals it with the room's key before it leaves this process.
    async fn send(&self, user: Option<String>, body: &[u8]) -> Res {
        #[derive(Deserialize)]
        struct Send {
            room: String,
            text: String,
        }
        let Some(user) = user else {
            return error(StatusCode::UNAUTHORIZED, "log in first");
        };
        let Ok(Send { room, text }) = serde_json::from_slice(body) else {
            return error(
                StatusCode::BAD_REQUEST,
                "expected JSON {\"room\": \"...\", \"text\": \"...\"}",
            );
        };
        let text = text.trim();
        if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
            return error(StatusCode::BAD_REQUEST, "a message is 1 to 500 characters");
        }
        if !can_access_channel(&user, &room) {
            return error(StatusCode::FORBIDDEN, &format!("{user} may not post to {room}"));
        }
        let message = json!({"from": user, "text": text});
        match self
            .sdk
            .trigger(&[&room], "message", &message, &TriggerParams::default())
            .await
        {
            Ok(_) => reply(StatusCode::OK, "application/json", "{}"),
            Err(e) => {
                eprintln!("secure-chat: trigger on {room} failed: {e}");
                let status = match &e {
                    // The broker refused the request: too large is the sender's fault, anything
                    // else (bad credentials, over quota, broker error) is the upstream's.
                    SdkError::Http { status: 413, .. } => StatusCode::PAYLOAD_TOO_LARGE,
                    SdkError::Http { .. } | SdkError::Transport(_) => StatusCode::BAD_GATEWAY,
                    SdkError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                error(status, "the message could not be sent")
            }
        }
    }

    /// The user of the request's session cookie, if any.
    fn session_user(&self, req: &Request<Incoming>) -> Option<String> {
        let token = req
            .headers()
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .find_map(|pair| pair.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))?;
        self.sessions.lock().ok()?.get(token).cloned()
    }
}

/// The body, refused with 413 above [`MAX_BODY`].
async fn read_body(req: Request<Incoming>) -> Result<Bytes, Res> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")),
    }
}

/// `application/x-www-form-urlencoded`, as pusher-js sends it.
fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Res {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn error(status: StatusCode, message: &str) -> Res {
    reply(status, "application/json", json!({"error": message}).to_string())
}
