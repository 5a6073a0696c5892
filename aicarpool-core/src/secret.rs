//! Sealing upstream credentials at rest with AES-256-GCM (and other
//! secrets that leave the process, such as pending sign-ins).
//!
//! A sealed blob is `version (1) ‖ nonce (12) ‖ ciphertext+tag`. The account
//! id is bound in as associated data, so a blob copied onto another account
//! fails to open.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde::{Deserialize, Serialize};

use crate::account::Credentials;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// Errors of sealing and opening.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("master key must be 32 bytes of base64")]
    BadMasterKey,
    #[error("sealed credentials are damaged or were sealed under another key")]
    Open,
    /// Nothing was sealed: the account has no credentials (an edit that
    /// sent it elsewhere dropped them).
    #[error("the account has no credentials; give them again")]
    Missing,
    #[error("credentials could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Ciphertext of an account's credentials, as stored. `Debug` shows only
/// its length.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed(pub Vec<u8>);

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// The master key. `Debug` redacts it.
#[derive(Clone)]
pub struct MasterKey(Key<Aes256Gcm>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(Aes256Gcm::generate_key(OsRng))
    }

    /// Reads a base64-encoded 32-byte key (surrounding whitespace ignored).
    pub fn from_base64(s: &str) -> Result<Self, SecretError> {
        let bytes = B64
            .decode(s.trim())
            .map_err(|_| SecretError::BadMasterKey)?;
        if bytes.len() != 32 {
            return Err(SecretError::BadMasterKey);
        }
        Ok(Self(*Key::<Aes256Gcm>::from_slice(&bytes)))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0.as_slice())
    }
}

/// Seals and opens credentials under one master key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
    /// Keys a rotation is moving from or to: opened with, never sealed
    /// with (see [`Sealer::with_others`]).
    others: Vec<Aes256Gcm>,
    deployment_id: DeploymentId,
}

/// A short public name of a deployment: every instance sharing a master
/// key shares it, and it tells nothing about the key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DeploymentId([u8; 8]);

impl DeploymentId {
    fn of(key: &MasterKey) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"aicarpool-deployment")
            .chain_update(key.0.as_slice())
            .finalize();
        let mut id = [0; 8];
        id.copy_from_slice(&digest[..8]);
        Self(id)
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeploymentId({self})")
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    pub fn new(key: &MasterKey) -> Self {
        Self::with_others(key, &[])
    }

    /// Seals under `key` and opens what any of `key` and `others` sealed:
    /// what instances run with while a master key is rotated, so every
    /// credential opens on every instance at every step.
    pub fn with_others(key: &MasterKey, others: &[MasterKey]) -> Self {
        Self {
            cipher: Aes256Gcm::new(&key.0),
            others: others.iter().map(|k| Aes256Gcm::new(&k.0)).collect(),
            deployment_id: DeploymentId::of(key),
        }
    }

    /// Whether `sealed` opens under the sealing key itself (a rotation
    /// has re-sealed it).
    pub fn opens_with_own_key(&self, aad: &[u8], sealed: &Sealed) -> bool {
        open_with(&self.cipher, aad, &sealed.0).is_ok()
    }

    /// The deployment this key belongs to: what the gateway's hop mark
    /// carries (see [`crate::gateway::hops`]).
    pub fn deployment_id(&self) -> DeploymentId {
        self.deployment_id
    }

    /// Encrypts `creds` for account `account_id`.
    pub fn seal(&self, account_id: &str, creds: &Credentials) -> Result<Sealed, SecretError> {
        let plain = serde_json::to_vec(creds)?;
        self.seal_bytes(account_id.as_bytes(), &plain)
    }

    /// Decrypts the credentials of account `account_id`.
    pub fn open(&self, account_id: &str, sealed: &Sealed) -> Result<Credentials, SecretError> {
        if sealed.0.is_empty() {
            return Err(SecretError::Missing);
        }
        let plain = self.open_bytes(account_id.as_bytes(), &sealed.0)?;
        serde_json::from_slice(&plain).map_err(|_| SecretError::Open)
    }

    /// Encrypts any bytes, bound to `aad`: opening needs the same `aad`.
    /// Give each kind of secret an `aad` of its own (`oauth-login:<id>`,
    /// an account id), so a blob of one kind never opens as another.
    pub fn seal_bytes(&self, aad: &[u8], plain: &[u8]) -> Result<Sealed, SecretError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(&nonce, Payload { msg: plain, aad })
            .map_err(|_| SecretError::Open)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(Sealed(out))
    }

    /// Decrypts what [`seal_bytes`](Self::seal_bytes) sealed under `aad`.
    pub fn open_bytes(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        std::iter::once(&self.cipher)
            .chain(&self.others)
            .find_map(|cipher| open_with(cipher, aad, sealed).ok())
            .ok_or(SecretError::Open)
    }
}

fn open_with(cipher: &Aes256Gcm, aad: &[u8], b: &[u8]) -> Result<Vec<u8>, SecretError> {
    if b.len() < 1 + NONCE_LEN || b[0] != VERSION {
        return Err(SecretError::Open);
    }
    let nonce = Nonce::from_slice(&b[1..1 + NONCE_LEN]);
    cipher
        .decrypt(
            nonce,
            Payload {
                msg: &b[1 + NONCE_LEN..],
                aad,
            },
        )
        .map_err(|_| SecretError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_ids_follow_the_key_and_hide_it() {
        let key = MasterKey::generate();
        let id = Sealer::new(&key).deployment_id();
        assert_eq!(id, Sealer::new(&key).deployment_id());
        assert_ne!(id, Sealer::new(&MasterKey::generate()).deployment_id());
        let text = id.to_string();
        assert_eq!(text.len(), 16);
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!key.to_base64().contains(&text));
    }

    fn creds() -> Credentials {
        Credentials {
            api_key: Some("sk-test-123".into()),
            ..Default::default()
        }
    }

    #[test]
    fn seal_open_round_trip() {
        let s = Sealer::new(&MasterKey::generate());
        let sealed = s.seal("acc1", &creds()).unwrap();
        assert!(!String::from_utf8_lossy(&sealed.0).contains("sk-test-123"));
        assert_eq!(s.open("acc1", &sealed).unwrap(), creds());
    }

    #[test]
    fn wrong_account_or_key_fails() {
        let s = Sealer::new(&MasterKey::generate());
        let sealed = s.seal("acc1", &creds()).unwrap();
        assert!(s.open("acc2", &sealed).is_err());
        let other = Sealer::new(&MasterKey::generate());
        assert!(other.open("acc1", &sealed).is_err());
    }

    #[test]
    fn a_rotation_opens_under_either_key_and_seals_under_its_own() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let before = Sealer::new(&old).seal("acc1", &creds()).unwrap();
        // Step 1: instances seal with the old key and accept the new one.
        let accepting = Sealer::with_others(&old, std::slice::from_ref(&new));
        // Step 2: the rotation re-seals under the new key.
        let rotating = Sealer::with_others(&new, std::slice::from_ref(&old));
        let after = rotating.seal("acc1", &creds()).unwrap();
        assert!(accepting.open("acc1", &after).is_ok());
        assert!(rotating.open("acc1", &before).is_ok());
        assert!(!rotating.opens_with_own_key(b"acc1", &before));
        assert!(rotating.opens_with_own_key(b"acc1", &after));
        // Step 3: the old key is gone; only re-sealed blobs open.
        let done = Sealer::new(&new);
        assert!(done.open("acc1", &after).is_ok());
        assert!(done.open("acc1", &before).is_err());
    }

    #[test]
    fn master_key_base64() {
        let k = MasterKey::generate();
        let k2 = MasterKey::from_base64(&k.to_base64()).unwrap();
        assert_eq!(k.to_base64(), k2.to_base64());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
    }
}
