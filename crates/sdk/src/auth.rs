//! Channel authorization and user authentication responses (protocol reference §3, §6, §8).

use serde::{Deserialize, Serialize};

use crate::encryption::{is_encrypted_channel, MasterKey};
use crate::error::{Error, Result};
use crate::signing::hmac_sha256_hex;

/// The JSON body an app's channel-authorization endpoint answers with (HTTP 200).
///
/// Serialises in the member order of the Node SDK: `channel_data`, `auth`, `shared_secret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelAuth {
    /// For presence channels: the exact `channel_data` string that was signed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub channel_data: Option<String>,
    /// `"{key}:{hex signature}"`.
    pub auth: String,
    /// For `private-encrypted-` channels: base64 of the channel's shared secret.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shared_secret: Option<String>,
}

impl ChannelAuth {
    /// The response body as JSON text.
    pub fn to_json(&self) -> String {
        // A struct of strings always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The JSON body an app's user-authentication endpoint answers with (pusher-js `signin`).
///
/// Serialises in the member order of the Node SDK: `auth`, `user_data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAuth {
    /// `"{key}:{hex signature}"` over `{socket_id}::user::{user_data}`.
    pub auth: String,
    /// The exact `user_data` string that was signed.
    pub user_data: String,
}

impl UserAuth {
    /// The response body as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A presence channel member, serialised as `channel_data`: `{"user_id":…,"user_info":…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceMember {
    /// The member's user id.
    pub user_id: String,
    /// Anything the other members should see (name, avatar, …); omitted when `None`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_info: Option<serde_json::Value>,
}

impl PresenceMember {
    /// A member without `user_info`.
    pub fn new(user_id: impl Into<String>) -> Self {
        PresenceMember {
            user_id: user_id.into(),
            user_info: None,
        }
    }

    /// Sets `user_info`.
    pub fn with_info(mut self, user_info: serde_json::Value) -> Self {
        self.user_info = Some(user_info);
        self
    }
}

/// The signed-in user, serialised as `user_data`: `{"id":…,"user_info":…,"watchlist":[…]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserData {
    /// The user id (non-empty).
    pub id: String,
    /// Anything about the user; it also becomes the presence `user_info` when a presence
    /// subscription carries no `channel_data`. Omitted when `None`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_info: Option<serde_json::Value>,
    /// Ids of users whose online status this user wants to follow. Omitted when `None`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub watchlist: Option<Vec<String>>,
}

impl UserData {
    /// A user with only an id.
    pub fn new(id: impl Into<String>) -> Self {
        UserData {
            id: id.into(),
            user_info: None,
            watchlist: None,
        }
    }

    /// Sets `user_info`.
    pub fn with_info(mut self, user_info: serde_json::Value) -> Self {
        self.user_info = Some(user_info);
        self
    }

    /// Sets the watchlist.
    pub fn with_watchlist<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.watchlist = Some(ids.into_iter().map(Into::into).collect());
        self
    }
}

/// Validates a socket id: `^\d+\.\d+$`.
pub fn validate_socket_id(socket_id: &str) -> Result<()> {
    let ok = socket_id.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSocketId(socket_id.to_owned()))
    }
}

/// Validates a channel name as the Node SDK does: 1 to 200 characters of `A-Za-z0-9_-=@,.;`.
pub fn validate_channel(channel: &str) -> Result<()> {
    let ok = !channel.is_empty()
        && channel.len() <= 200
        && channel
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_-=@,.;".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidChannel(channel.to_owned()))
    }
}

pub(crate) fn validate_user_id(user_id: &str) -> Result<()> {
    if user_id.is_empty() {
        Err(Error::InvalidUser("empty user id".to_owned()))
    } else {
        Ok(())
    }
}

/// Signs a channel subscription. `channel_data` is the exact presence string (signed as
/// `{socket_id}:{channel}:{channel_data}`), `None` for other channels. Encrypted channels get
/// `shared_secret` and need `master_key`.
pub(crate) fn channel_auth(
    key: &str,
    secret: &str,
    master_key: Option<&MasterKey>,
    socket_id: &str,
    channel: &str,
    channel_data: Option<String>,
) -> Result<ChannelAuth> {
    validate_socket_id(socket_id)?;
    validate_channel(channel)?;
    let to_sign = match &channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    };
    let shared_secret = if is_encrypted_channel(channel) {
        let master = master_key.ok_or_else(|| Error::EncryptionKeyMissing(channel.to_owned()))?;
        Some(master.shared_secret_base64(channel))
    } else {
        None
    };
    Ok(ChannelAuth {
        channel_data,
        auth: format!("{key}:{}", hmac_sha256_hex(secret, to_sign.as_bytes())),
        shared_secret,
    })
}

/// Signs a user: `user_data` is the exact JSON string, which must hold a non-empty string `id`.
pub(crate) fn user_auth(key: &str, secret: &str, socket_id: &str, user_data: String) -> Result<UserAuth> {
    validate_socket_id(socket_id)?;
    let parsed: serde_json::Value = serde_json::from_str(&user_data)?;
    match parsed.get("id") {
        Some(serde_json::Value::String(id)) if !id.is_empty() => {}
        _ => return Err(Error::InvalidUser("user data needs a non-empty string `id`".to_owned())),
    }
    let to_sign = format!("{socket_id}::user::{user_data}");
    Ok(UserAuth {
        auth: format!("{key}:{}", hmac_sha256_hex(secret, to_sign.as_bytes())),
        user_data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "3f6a2c9b81e04d7d5a10";
    const SECRET: &str = "9e1d7b4c2a85f03e6b12";

    #[test]
    fn reference_12_1_private() {
        let a = channel_auth(KEY, SECRET, None, "98765.4321", "private-orders-42", None).unwrap();
        assert_eq!(
            a.to_json(),
            r#"{"auth":"3f6a2c9b81e04d7d5a10:49eb49805d292b7b95f14f5529e4d2cefacfae802c505ef0d400355235accf7e"}"#
        );
    }

    #[test]
    fn reference_12_2_presence() {
        let member = PresenceMember::new("u-17").with_info(serde_json::json!({"name": "Ada Lovelace"}));
        let data = serde_json::to_string(&member).unwrap();
        assert_eq!(data, r#"{"user_id":"u-17","user_info":{"name":"Ada Lovelace"}}"#);
        let a = channel_auth(KEY, SECRET, None, "98765.4321", "presence-room-7", Some(data)).unwrap();
        assert_eq!(
            a.to_json(),
            r#"{"channel_data":"{\"user_id\":\"u-17\",\"user_info\":{\"name\":\"Ada Lovelace\"}}","auth":"3f6a2c9b81e04d7d5a10:13d32a55a30d1a19ebe6842ef3df2f35a6210293271e5835da2f22feec2acc44"}"#
        );
    }

    #[test]
    fn reference_12_3_user() {
        let user = UserData::new("u-17")
            .with_info(serde_json::json!({"name": "Ada Lovelace"}))
            .with_watchlist(["u-2", "u-3"]);
        let data = serde_json::to_string(&user).unwrap();
        let a = user_auth(KEY, SECRET, "98765.4321", data).unwrap();
        assert_eq!(
            a.user_data,
            r#"{"id":"u-17","user_info":{"name":"Ada Lovelace"},"watchlist":["u-2","u-3"]}"#
        );
        assert_eq!(
            a.auth,
            "3f6a2c9b81e04d7d5a10:7c328b6624c9e83ab936ab8703a73045b4e81a08890e2466ad2a9f4e767114bc"
        );
    }

    #[test]
    fn reference_12_4_encrypted() {
        let master = MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let a = channel_auth(
            KEY,
            SECRET,
            Some(&master),
            "98765.4321",
            "private-encrypted-vault",
            None,
        )
        .unwrap();
        assert_eq!(
            a.to_json(),
            r#"{"auth":"3f6a2c9b81e04d7d5a10:1d757e19290ca09a690cdfca4a7c97a9e69fc2cf5db1d06493c8fa9b71cd6ee2","shared_secret":"wp8Orjt2S4H4n8dDP7pa2A9reduRTTedbaiVnjqomsc="}"#
        );
        let err = channel_auth(KEY, SECRET, None, "98765.4321", "private-encrypted-vault", None).unwrap_err();
        assert!(matches!(err, Error::EncryptionKeyMissing(_)));
    }

    #[test]
    fn reference_12_7_published_vectors() {
        let (k, s) = ("278d425bdf160c739803", "7ad3773142a6692b25b8");
        let a = channel_auth(k, s, None, "1234.1234", "private-foobar", None).unwrap();
        assert!(a
            .auth
            .ends_with(":58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"));
        let u = user_auth(k, s, "1234.1234", r#"{"id":"12345"}"#.to_owned()).unwrap();
        assert!(u
            .auth
            .ends_with(":4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"));
        let p = channel_auth(
            k,
            s,
            None,
            "1234.1234",
            "presence-foobar",
            Some(r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#.to_owned()),
        )
        .unwrap();
        assert!(p
            .auth
            .ends_with(":31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"));
    }

    #[test]
    fn validation() {
        for bad in ["", "1", "1.", ".1", "a.1", "1.2.3", "1.2\n"] {
            assert!(validate_socket_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_socket_id("123.456").is_ok());
        assert!(validate_channel("private-a_b-c=d@e,f.g;h").is_ok());
        for bad in ["", "a b", "#server-to-user-1", "a:b", &"x".repeat(201)] {
            assert!(validate_channel(bad).is_err(), "{bad:?}");
        }
        assert!(user_auth(KEY, SECRET, "1.1", r#"{"id":""}"#.to_owned()).is_err());
        assert!(user_auth(KEY, SECRET, "1.1", r#"{"id":7}"#.to_owned()).is_err());
        assert!(user_auth(KEY, SECRET, "1.1", "[]".to_owned()).is_err());
    }
}
