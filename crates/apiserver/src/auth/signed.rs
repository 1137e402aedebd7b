//! Signed bearer tokens: `ironnet token create` mints them for node agents and operators with a
//! key kept in the data directory, and the API server accepts them until they expire.
//!
//! A token is `ironnet.v1.<claims>.<mac>`: the claims (user, uid, groups, issue and expiry
//! times) as base64url JSON, authenticated with HMAC-SHA256 under the signing key. Tokens cannot
//! be revoked one by one: replacing the key file (and restarting the server) revokes every token.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::UserInfo;
use super::token::{TokenAuthenticator, TokenVerdict};

/// The prefix that marks a token as one of these.
pub const TOKEN_PREFIX: &str = "ironnet.v1.";

/// What a signed token asserts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The user name.
    pub sub: String,
    /// The user's uid (may be empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The user's groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// When the token was minted (seconds since the epoch).
    pub iat: u64,
    /// When the token expires (seconds since the epoch).
    pub exp: u64,
}

impl TokenClaims {
    /// Claims for `user` in `groups`, valid for `ttl` from now.
    pub fn new(user: &str, groups: &[String], ttl: Duration) -> TokenClaims {
        let now = unix_now();
        TokenClaims {
            sub: user.to_owned(),
            uid: String::new(),
            groups: groups.to_vec(),
            iat: now,
            exp: now.saturating_add(ttl.as_secs()),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Errors loading a signing key.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    /// Reading or writing the key file failed.
    #[error("token signing key {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not hold a key.
    #[error("token signing key {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Mints and verifies signed tokens with one key.
pub struct TokenSigner {
    key: hmac::Key,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner").finish_non_exhaustive()
    }
}

/// The key length in bytes (HMAC-SHA256's block-size-independent recommendation: the output size).
const KEY_LEN: usize = 32;

impl TokenSigner {
    /// A signer with the given key bytes.
    pub fn from_key(key: &[u8]) -> TokenSigner {
        TokenSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// Loads the key from `path` (base64), or creates a random one there (mode 0600) if the file
    /// does not exist.
    pub fn load_or_create(path: &Path) -> Result<TokenSigner, SigningKeyError> {
        let io = |source| SigningKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .ok()
                    .filter(|k| k.len() >= KEY_LEN)
                    .ok_or_else(|| SigningKeyError::Invalid {
                        path: path.display().to_string(),
                        message: format!("not a base64 key of at least {KEY_LEN} bytes"),
                    })?;
                Ok(TokenSigner::from_key(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; KEY_LEN];
                SystemRandom::new()
                    .fill(&mut key)
                    .map_err(|_| io(std::io::Error::other("the system random generator failed")))?;
                let text = base64::engine::general_purpose::STANDARD.encode(key);
                crate::pki::write_private(path, text.as_bytes()).map_err(io)?;
                Ok(TokenSigner::from_key(&key))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The token for `claims`.
    pub fn sign(&self, claims: &TokenClaims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims always serialize"));
        let tag = hmac::sign(&self.key, payload.as_bytes());
        format!("{TOKEN_PREFIX}{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The claims of `token` if its signature holds and it has not expired.
    pub fn verify(&self, token: &str) -> Result<TokenClaims, String> {
        let rest = token
            .strip_prefix(TOKEN_PREFIX)
            .ok_or_else(|| "not a signed token".to_owned())?;
        let (payload, tag) = rest
            .split_once('.')
            .ok_or_else(|| "signed token: malformed".to_owned())?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| "signed token: malformed signature".to_owned())?;
        hmac::verify(&self.key, payload.as_bytes(), &tag)
            .map_err(|_| "signed token: the signature does not verify".to_owned())?;
        let claims: TokenClaims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(|| "signed token: malformed claims".to_owned())?;
        if claims.sub.is_empty() {
            return Err("signed token: no user".into());
        }
        if claims.exp <= unix_now() {
            return Err(format!("signed token for {:?}: expired", claims.sub));
        }
        Ok(claims)
    }
}

impl TokenAuthenticator for TokenSigner {
    fn authenticate_token(&self, token: &str) -> TokenVerdict {
        if !token.starts_with(TOKEN_PREFIX) {
            return TokenVerdict::Unknown;
        }
        match self.verify(token) {
            Ok(claims) => TokenVerdict::User(UserInfo {
                name: claims.sub,
                uid: claims.uid,
                groups: claims.groups,
                extra: Default::default(),
            }),
            Err(why) => TokenVerdict::Rejected(why),
        }
    }
}

/// Parses a duration as `ironnet token create --ttl` takes it: a number with a unit `s`, `m`,
/// `h` or `d` (`90m`, `24h`, `365d`).
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?}: missing unit (s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number followed by s, m, h or d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (s, m, h or d)")),
    };
    if n == 0 {
        return Err(format!("{text:?}: must be positive"));
    }
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?}: too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_verifies_and_expires() {
        let signer = TokenSigner::from_key(&[7; 32]);
        let claims = TokenClaims::new(
            "system:node:hv-1",
            &["system:nodes".into()],
            Duration::from_secs(60),
        );
        let token = signer.sign(&claims);
        assert!(token.starts_with(TOKEN_PREFIX));
        assert_eq!(signer.verify(&token).unwrap(), claims);

        let other = TokenSigner::from_key(&[8; 32]);
        assert_eq!(
            other.verify(&token).unwrap_err(),
            "signed token: the signature does not verify"
        );
        // A changed claim breaks the signature.
        let (head, tag) = token.rsplit_once('.').unwrap();
        let forged_claims = TokenClaims {
            sub: "kubernetes-admin".into(),
            ..claims.clone()
        };
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap());
        let forged = format!("{TOKEN_PREFIX}{forged_payload}.{tag}");
        assert_ne!(forged.rsplit_once('.').unwrap().0, head);
        assert!(signer.verify(&forged).is_err());

        let expired = TokenClaims {
            exp: unix_now() - 1,
            ..claims
        };
        assert_eq!(
            signer.verify(&signer.sign(&expired)).unwrap_err(),
            "signed token for \"system:node:hv-1\": expired"
        );
        assert_eq!(signer.authenticate_token("abc"), TokenVerdict::Unknown);
    }

    #[test]
    fn keys_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.key");
        let a = TokenSigner::load_or_create(&path).unwrap();
        let token = a.sign(&TokenClaims::new("u", &[], Duration::from_secs(60)));
        let b = TokenSigner::load_or_create(&path).unwrap();
        assert_eq!(b.verify(&token).unwrap().sub, "u");
        std::fs::write(&path, "short").unwrap();
        let err = TokenSigner::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("not a base64 key"), "{err}");
    }

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_ttl("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_ttl("10").unwrap_err().contains("missing unit"));
        assert!(parse_ttl("5w").unwrap_err().contains("unknown unit"));
        assert!(parse_ttl("0h").unwrap_err().contains("positive"));
    }
}
