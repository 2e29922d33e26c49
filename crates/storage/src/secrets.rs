//! Secrets sealed at rest: the integration secrets an admin sends over the API.
//!
//! A secret is sealed with **XChaCha20-Poly1305** (an AEAD: a changed byte fails to
//! open instead of decrypting to garbage) under the server's key, `SECRETS_KEY` (32
//! random bytes in base64: `openssl rand -base64 32`). Each sealing draws a fresh
//! random 192-bit nonce, large enough that random nonces never repeat in practice.
//! The stored text is `base64(nonce ‖ ciphertext ‖ tag)`, next to the id of the key
//! that sealed it.
//!
//! **Context.** Every sealing binds a context string as associated data (for an
//! integration: its organization and integration key), so a ciphertext copied into
//! another row, or another organization's row, does not open.
//!
//! **Key ids and rotation.** A key's id is derived from the key itself (the first 8
//! bytes of a domain-separated SHA-256, in hex), so it cannot be misconfigured. To
//! rotate, make the new key `SECRETS_KEY` and move the old one to
//! `SECRETS_PREVIOUS_KEYS` (comma-separated): new secrets are sealed with the new key,
//! old ones still open with the old, and writing a secret again re-seals it.
//!
//! **Without a key** nothing can be sealed: writing a secret is refused
//! ([`SecretsError::NoKey`]), never stored in clear. The key material and opened
//! secrets have no `Debug` output that shows them, so they cannot reach a log line.

use base64ct::{Base64, Encoding};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, Env};

/// Bytes of a key.
pub const KEY_BYTES: usize = 32;
/// Bytes of an XChaCha20 nonce.
const NONCE_BYTES: usize = 24;

/// A secret sealed for storage: the key's id and `base64(nonce ‖ ciphertext)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub ciphertext: String,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// An opened secret. No `Debug`/`Display`: it cannot be formatted into a log line.
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

/// Why a secret could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("no SECRETS_KEY is configured, so secrets cannot be stored")]
    NoKey,
    #[error("the secret was sealed with key {key_id}, which is not configured")]
    UnknownKey { key_id: String },
    #[error("the sealed secret does not open (altered, or sealed for another record)")]
    Corrupt,
}

struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn new(bytes: &[u8; KEY_BYTES]) -> Self {
        Key {
            id: key_id(bytes),
            cipher: XChaCha20Poly1305::new(bytes.into()),
        }
    }
}

/// The server's keys: the current one seals and opens, previous ones only open.
#[derive(Default)]
pub struct SecretKeys {
    current: Option<Key>,
    previous: Vec<Key>,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let previous: Vec<&str> = self.previous.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("SecretKeys")
            .field("current", &self.current_key_id())
            .field("previous", &previous)
            .finish()
    }
}

/// The id of a key: 8 bytes of SHA-256 over a label and the key, in hex.
fn key_id(key: &[u8; KEY_BYTES]) -> String {
    let digest = Sha256::new()
        .chain_update(b"agenda secrets key id\0")
        .chain_update(key)
        .finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 bytes from base64, or why not (the value itself is never echoed: it is a key).
fn decode_key(var: &'static str, raw: &str) -> Result<[u8; KEY_BYTES], ConfigError> {
    let mut key = [0u8; KEY_BYTES];
    match Base64::decode(raw.trim(), &mut key) {
        Ok(decoded) if decoded.len() == KEY_BYTES => Ok(key),
        _ => Err(ConfigError::new(
            var,
            "is not a key: expected 32 random bytes in base64 (44 characters, e.g. from \
             `openssl rand -base64 32`)",
        )),
    }
}

impl SecretKeys {
    /// `SECRETS_KEY` (the current key, optional) and `SECRETS_PREVIOUS_KEYS` (older
    /// keys that still open what they sealed, comma-separated).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let current = env
            .get("SECRETS_KEY")
            .map(|raw| decode_key("SECRETS_KEY", raw))
            .transpose()?;
        let previous = env
            .get("SECRETS_PREVIOUS_KEYS")
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| decode_key("SECRETS_PREVIOUS_KEYS", k))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Self::from_keys(current, &previous))
    }

    /// Keys given directly (tests, tools).
    pub fn from_keys(current: Option<[u8; KEY_BYTES]>, previous: &[[u8; KEY_BYTES]]) -> Self {
        SecretKeys {
            current: current.as_ref().map(Key::new),
            previous: previous.iter().map(Key::new).collect(),
        }
    }

    /// The id of the key new secrets are sealed with, if there is one.
    pub fn current_key_id(&self) -> Option<&str> {
        self.current.as_ref().map(|k| k.id.as_str())
    }

    /// Seals `plaintext`, bound to `context` (the record it belongs to).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<Sealed, SecretsError> {
        let key = self.current.as_ref().ok_or(SecretsError::NoKey)?;
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        // Encrypting into memory only fails for inputs beyond 256 GiB.
        let ciphertext = key
            .cipher
            .encrypt(&nonce, payload)
            .map_err(|_| SecretsError::Corrupt)?;
        let mut stored = nonce.to_vec();
        stored.extend_from_slice(&ciphertext);
        Ok(Sealed {
            key_id: key.id.clone(),
            ciphertext: Base64::encode_string(&stored),
        })
    }

    /// Opens what [`SecretKeys::seal`] sealed with the same `context`.
    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<Secret, SecretsError> {
        let key = self
            .current
            .iter()
            .chain(&self.previous)
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| SecretsError::UnknownKey {
                key_id: sealed.key_id.clone(),
            })?;
        let stored = Base64::decode_vec(&sealed.ciphertext).map_err(|_| SecretsError::Corrupt)?;
        if stored.len() < NONCE_BYTES {
            return Err(SecretsError::Corrupt);
        }
        let (nonce, ciphertext) = stored.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SecretsError::Corrupt)?;
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        key.cipher
            .decrypt(&XNonce::from(nonce), payload)
            .map(Secret)
            .map_err(|_| SecretsError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [7; 32];
    const B: [u8; 32] = [9; 32];

    #[test]
    fn seals_and_opens_in_its_context_only() {
        let keys = SecretKeys::from_keys(Some(A), &[]);
        let sealed = keys.seal(b"whsec_123", "org-1/stripe").unwrap();
        assert_eq!(sealed.key_id.len(), 16);
        assert!(!sealed.ciphertext.contains("whsec"));
        assert_eq!(
            keys.open(&sealed, "org-1/stripe").unwrap().expose(),
            b"whsec_123"
        );
        // Another record's context, or a changed byte, does not open.
        assert_eq!(
            keys.open(&sealed, "org-2/stripe").err(),
            Some(SecretsError::Corrupt)
        );
        let mut bytes = Base64::decode_vec(&sealed.ciphertext).unwrap();
        bytes[30] ^= 1;
        let altered = Sealed {
            key_id: sealed.key_id.clone(),
            ciphertext: Base64::encode_string(&bytes),
        };
        assert_eq!(
            keys.open(&altered, "org-1/stripe").err(),
            Some(SecretsError::Corrupt)
        );
        // Two sealings of one secret differ (fresh nonces).
        assert_ne!(
            keys.seal(b"whsec_123", "c").unwrap().ciphertext,
            keys.seal(b"whsec_123", "c").unwrap().ciphertext
        );
    }

    #[test]
    fn rotation_keeps_old_secrets_readable() {
        let old = SecretKeys::from_keys(Some(A), &[]);
        let sealed = old.seal(b"s", "ctx").unwrap();
        let rotated = SecretKeys::from_keys(Some(B), &[A]);
        assert_eq!(rotated.open(&sealed, "ctx").unwrap().expose(), b"s");
        assert_ne!(rotated.seal(b"s", "ctx").unwrap().key_id, sealed.key_id);
        let forgotten = SecretKeys::from_keys(Some(B), &[]);
        assert!(matches!(
            forgotten.open(&sealed, "ctx"),
            Err(SecretsError::UnknownKey { .. })
        ));
    }

    #[test]
    fn without_a_key_nothing_is_sealed() {
        let none = SecretKeys::default();
        assert_eq!(none.seal(b"s", "ctx").err(), Some(SecretsError::NoKey));
        assert_eq!(none.current_key_id(), None);
    }

    #[test]
    fn keys_come_from_the_environment_and_bad_ones_are_not_echoed() {
        let a = Base64::encode_string(&A);
        let b = Base64::encode_string(&B);
        let env = Env::from_pairs([
            ("SECRETS_KEY", a.clone()),
            ("SECRETS_PREVIOUS_KEYS", format!("{b}, ")),
        ]);
        let keys = SecretKeys::from_env(&env).unwrap();
        assert_eq!(keys.current_key_id(), Some(key_id(&A).as_str()));
        assert_eq!(keys.previous.len(), 1);
        let debug = format!("{keys:?}");
        assert!(
            !debug.contains(&a) && debug.contains(&key_id(&B)),
            "{debug}"
        );

        for bad in [
            "short",
            "not base64 at all!!",
            &Base64::encode_string(&[1u8; 16]),
        ] {
            let err = SecretKeys::from_env(&Env::from_pairs([("SECRETS_KEY", bad)])).unwrap_err();
            assert_eq!(err.var, "SECRETS_KEY");
            assert!(!err.to_string().contains(bad), "{err}");
        }
        assert!(
            SecretKeys::from_env(&Env::default())
                .unwrap()
                .current_key_id()
                .is_none()
        );
    }
}
