//! End-to-end encrypted channels (`private-encrypted-`, protocol reference §8): the master key, the
//! per-channel shared secret, and NaCl `crypto_secretbox` (XSalsa20-Poly1305) sealing and opening
//! of event payloads, compatible with tweetnacl (pusher-js) and the official Node SDK.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Prefix of end-to-end encrypted channels.
pub const ENCRYPTED_PREFIX: &str = "private-encrypted-";

/// Whether `channel` is an end-to-end encrypted channel (`private-encrypted-…`).
pub fn is_encrypted_channel(channel: &str) -> bool {
    channel.starts_with(ENCRYPTED_PREFIX)
}

/// The app's 32-byte encryption master key. Never printed: its `Debug` shows only `MasterKey(..)`.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A key from its 32 raw bytes; any other length is refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            Error::InvalidMasterKey(format!(
                "must be 32 bytes long, the provided key is {} bytes long",
                bytes.len()
            ))
        })?;
        Ok(MasterKey(key))
    }

    /// A key from standard base64 (44 characters with padding) of 32 bytes, as the Node SDK's
    /// `encryptionMasterKeyBase64`; anything else is refused.
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| Error::InvalidMasterKey("not valid base64".to_owned()))?;
        if bytes.len() != 32 {
            return Err(Error::InvalidMasterKey(format!(
                "base64 key must decode to 32 bytes, but the provided key decodes to {} bytes",
                bytes.len()
            )));
        }
        Self::from_bytes(&bytes)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The channel's shared secret: `SHA-256(utf8(channel) ‖ master key)`.
    pub fn shared_secret(&self, channel: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(channel.as_bytes());
        h.update(self.0);
        h.finalize().into()
    }

    /// The channel's shared secret in standard base64, as sent to clients in `shared_secret`.
    pub fn shared_secret_base64(&self, channel: &str) -> String {
        BASE64.encode(self.shared_secret(channel))
    }

    /// Seals `plaintext` for `channel` with a fresh random 24-byte nonce: the event `data` string
    /// `{"nonce":"<b64>","ciphertext":"<b64>"}`.
    pub fn encrypt(&self, channel: &str, plaintext: &[u8]) -> Result<String> {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        seal(&self.shared_secret(channel), &nonce, plaintext)
    }

    /// Opens an event `data` string `{"nonce":…,"ciphertext":…}` sent to `channel`, returning the
    /// plaintext bytes (the JSON text the publisher serialised).
    pub fn decrypt(&self, channel: &str, data: &str) -> Result<Vec<u8>> {
        open(&self.shared_secret(channel), data)
    }
}

/// The wire form of an encrypted event payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedPayload {
    /// Standard base64 of the 24-byte nonce.
    pub nonce: String,
    /// Standard base64 of the secretbox output: 16-byte Poly1305 tag ‖ ciphertext.
    pub ciphertext: String,
}

/// Seals `plaintext` with `key` (a channel's shared secret) and `nonce`; returns the event `data`
/// string `{"nonce":"<b64>","ciphertext":"<b64>"}`. Use a fresh random nonce for every message
/// ([`MasterKey::encrypt`] does); a fixed nonce is only for test vectors.
pub fn seal(key: &[u8; 32], nonce: &[u8; 24], plaintext: &[u8]) -> Result<String> {
    let cipher = XSalsa20Poly1305::new(Key::from_slice(key));
    let boxed = cipher
        .encrypt(Nonce::from_slice(nonce), plaintext)
        .map_err(|_| Error::Decrypt("secretbox refused to seal".to_owned()))?;
    let payload = EncryptedPayload {
        nonce: BASE64.encode(nonce),
        ciphertext: BASE64.encode(boxed),
    };
    Ok(serde_json::to_string(&payload)?)
}

/// Opens an event `data` string `{"nonce":…,"ciphertext":…}` with `key` (a channel's shared
/// secret), as pusher-js does: both members required, nonce 24 bytes, ciphertext ≥ 16 bytes.
pub fn open(key: &[u8; 32], data: &str) -> Result<Vec<u8>> {
    let payload: EncryptedPayload =
        serde_json::from_str(data).map_err(|e| Error::Decrypt(format!("not an encrypted payload: {e}")))?;
    let nonce = BASE64
        .decode(&payload.nonce)
        .map_err(|_| Error::Decrypt("nonce is not base64".to_owned()))?;
    let boxed = BASE64
        .decode(&payload.ciphertext)
        .map_err(|_| Error::Decrypt("ciphertext is not base64".to_owned()))?;
    if nonce.len() != 24 {
        return Err(Error::Decrypt(format!("nonce must be 24 bytes, got {}", nonce.len())));
    }
    if boxed.len() < 16 {
        return Err(Error::Decrypt(format!(
            "ciphertext must be at least 16 bytes, got {}",
            boxed.len()
        )));
    }
    let cipher = XSalsa20Poly1305::new(Key::from_slice(key));
    cipher
        .decrypt(Nonce::from_slice(&nonce), boxed.as_slice())
        .map_err(|_| Error::Decrypt("authentication failed (wrong key or tampered payload)".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        let bytes: Vec<u8> = (0u8..32).collect();
        match MasterKey::from_bytes(&bytes) {
            Ok(k) => k,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn reference_12_4_shared_secret() {
        let key = master();
        assert_eq!(
            hex::encode(key.shared_secret("private-encrypted-vault")),
            "c29f0eae3b764b81f89fc7433fba5ad80f6b79db914d379d6da8959e3aa89ac7"
        );
        assert_eq!(
            key.shared_secret_base64("private-encrypted-vault"),
            "wp8Orjt2S4H4n8dDP7pa2A9reduRTTedbaiVnjqomsc="
        );
        let b64 = MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        assert_eq!(b64.as_bytes(), key.as_bytes());
    }

    #[test]
    fn node_sdk_test_suite_shared_secret() {
        let key = MasterKey::from_base64("zyrm8pvV2C9fJcBfhyXzvxbJVN/H7QLmbe0xJi1GhPU=").unwrap();
        assert_eq!(
            key.shared_secret_base64("private-encrypted-bla"),
            "nlr49ISQHz91yS3cy/yWmW8wFMNeTnNL5tNHnbPJcLQ="
        );
    }

    #[test]
    fn reference_12_4_secretbox_vector() {
        let key = master();
        let secret = key.shared_secret("private-encrypted-vault");
        let nonce: [u8; 24] = std::array::from_fn(|i| 100 + i as u8);
        let data = seal(&secret, &nonce, br#"{"amount":100}"#).unwrap();
        assert_eq!(
            data,
            r#"{"nonce":"ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7","ciphertext":"hU6KWlKz2DFP5xXXnOfdKatj3Z8fRsy2YNph2muj"}"#
        );
        assert_eq!(
            key.decrypt("private-encrypted-vault", &data).unwrap(),
            br#"{"amount":100}"#
        );
    }

    #[test]
    fn fresh_nonce_every_time_and_round_trip() {
        let key = master();
        let a = key.encrypt("private-encrypted-x", b"\"hi\"").unwrap();
        let b = key.encrypt("private-encrypted-x", b"\"hi\"").unwrap();
        assert_ne!(a, b);
        assert_eq!(key.decrypt("private-encrypted-x", &a).unwrap(), b"\"hi\"");
        // Another channel's key does not open it.
        assert!(matches!(key.decrypt("private-encrypted-y", &a), Err(Error::Decrypt(_))));
    }

    #[test]
    fn tampering_and_garbage_refused() {
        let key = master();
        let data = key.encrypt("private-encrypted-x", b"{}").unwrap();
        let mut p: EncryptedPayload = serde_json::from_str(&data).unwrap();
        let mut bytes = BASE64.decode(&p.ciphertext).unwrap();
        bytes[17] ^= 1;
        p.ciphertext = BASE64.encode(bytes);
        let tampered = serde_json::to_string(&p).unwrap();
        assert!(key.decrypt("private-encrypted-x", &tampered).is_err());
        assert!(key.decrypt("private-encrypted-x", "{}").is_err());
        assert!(key
            .decrypt("private-encrypted-x", r#"{"nonce":"AAAA","ciphertext":"AAAA"}"#)
            .is_err());
    }

    #[test]
    fn bad_master_keys_refused_without_leaking() {
        for bad in [&b"short"[..], &[0u8; 31][..], &[0u8; 33][..]] {
            let err = MasterKey::from_bytes(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidMasterKey(_)), "{err}");
        }
        let err = MasterKey::from_base64("c2VjcmV0LXRoYXQtaXMtdG9vLXNob3J0").unwrap_err();
        assert!(err.to_string().contains("decodes to 24 bytes"), "{err}");
        assert!(!err.to_string().contains("c2VjcmV0"));
        assert!(MasterKey::from_base64("not base64 !!").is_err());
        assert_eq!(format!("{:?}", master()), "MasterKey(..)");
    }
}
