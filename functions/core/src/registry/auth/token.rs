//! Registry tokens: JWTs signed with HMAC-SHA256 (`jsonwebtoken`), carrying the tenant and
//! the repositories it may pull, as the distribution token spec's `access` claim. The header
//! names the key (`kid`), so keys can be rotated: the first secret signs, all verify.

use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;

/// Who issues the tokens, in the `iss` claim.
const ISSUER: &str = "nixery";
/// The shortest token lifetime: docker and the distribution spec assume at least 60 s, and
/// docker caches a token for at least that long whatever `expires_in` says.
pub const MIN_TOKEN_TTL_SECS: u64 = 60;
/// Tokens are accepted this long past their expiry: a client that refreshes exactly at
/// `issued_at + expires_in` may still send the old one while the new one is on its way.
const EXPIRY_LEEWAY_SECS: u64 = 10;
/// Secrets shorter than this are refused: HMAC-SHA256 keys should have 256 bits.
const MIN_SECRET: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no signing secret given")]
    Empty,
    #[error("a signing secret is {0} bytes; at least {MIN_SECRET} are needed")]
    Short(usize),
}

/// The secrets tokens are signed with; the first signs, every one verifies.
#[derive(Clone)]
pub struct SigningKeys {
    keys: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(kid, _)| kid.as_str()).collect();
        write!(f, "SigningKeys({kids:?})")
    }
}

impl SigningKeys {
    /// A new random secret (32 bytes, hex), for a key file.
    pub fn generate_secret() -> String {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the operating system's random source");
        hex::encode(secret)
    }

    /// Whitespace-separated secrets, as stored in a key file or an SSM parameter.
    pub fn parse(text: &str) -> Result<SigningKeys, KeyError> {
        let mut keys = Vec::new();
        for secret in text.split_whitespace() {
            if secret.len() < MIN_SECRET {
                return Err(KeyError::Short(secret.len()));
            }
            let kid = hex::encode(&Sha256::digest(secret.as_bytes())[..8]);
            keys.push((kid, secret.as_bytes().to_vec()));
        }
        match keys.is_empty() {
            true => Err(KeyError::Empty),
            false => Ok(SigningKeys { keys }),
        }
    }
}

/// One grant of the `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The tenant.
    pub sub: String,
    /// The registry's service name.
    pub aud: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    pub access: Vec<Grant>,
}

impl Claims {
    pub fn new(
        tenant: &str,
        service: &str,
        now: u64,
        ttl: u64,
        repositories: &BTreeSet<String>,
    ) -> Claims {
        let access = repositories
            .iter()
            .map(|name| Grant {
                kind: "repository".into(),
                name: name.clone(),
                actions: vec!["pull".into()],
            })
            .collect();
        let mut jti = [0u8; 16];
        let _ = getrandom::fill(&mut jti);
        Claims {
            iss: ISSUER.into(),
            sub: tenant.into(),
            aud: service.into(),
            iat: now,
            nbf: now,
            exp: now + ttl,
            jti: hex::encode(jti),
            access,
        }
    }

    /// Whether the token lets its holder pull `repository`.
    pub fn may_pull(&self, repository: &str) -> bool {
        self.access.iter().any(|g| {
            g.kind == "repository" && g.name == repository && g.actions.iter().any(|a| a == "pull")
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token names no key this registry has")]
    UnknownKey,
    #[error("{0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

impl SigningKeys {
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let (kid, secret) = &self.keys[0];
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        Ok(encode(&header, claims, &EncodingKey::from_secret(secret))?)
    }

    /// The claims of a token signed by one of the keys, for `service`, and not expired.
    pub fn verify(&self, token: &str, service: &str) -> Result<Claims, TokenError> {
        let header = decode_header(token)?;
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let (_, secret) = self
            .keys
            .iter()
            .find(|(k, _)| *k == kid)
            .ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[service]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
        validation.validate_nbf = true;
        // Past expiry (and the leeway), clients learn of it from a 401 `invalid_token`.
        validation.leeway = EXPIRY_LEEWAY_SECS;
        let data = decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)?;
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";

    fn claims(exp_in: u64) -> Claims {
        let now = crate::storage::now_ms() / 1000;
        let repos = ["shell/git".to_string()].into_iter().collect();
        Claims::new("acme", "reg.example", now, exp_in, &repos)
    }

    #[test]
    fn tokens_verify_with_any_key_and_rotate() {
        let old = SigningKeys::parse(A).expect("keys");
        let token = old.sign(&claims(60)).expect("sign");
        let rotated = SigningKeys::parse(&format!("{B}\n{A}")).expect("keys");
        let c = rotated
            .verify(&token, "reg.example")
            .expect("old token still verifies");
        assert!(c.may_pull("shell/git") && !c.may_pull("git"));
        let only_new = SigningKeys::parse(B).expect("keys");
        assert!(matches!(
            only_new.verify(&token, "reg.example"),
            Err(TokenError::UnknownKey)
        ));
        assert!(
            rotated.verify(&token, "other.example").is_err(),
            "audience is checked"
        );
    }

    #[test]
    fn expired_tampered_and_short_keys_are_refused() {
        let keys = SigningKeys::parse(A).expect("keys");
        let mut expired = claims(0);
        expired.exp -= EXPIRY_LEEWAY_SECS + 1;
        let token = keys.sign(&expired).expect("sign");
        assert!(keys.verify(&token, "reg.example").is_err());
        let good = keys.sign(&claims(60)).expect("sign");
        let mut parts: Vec<String> = good.split('.').map(String::from).collect();
        parts[1] = parts[1].chars().rev().collect();
        assert!(keys.verify(&parts.join("."), "reg.example").is_err());
        assert!(matches!(
            SigningKeys::parse("short"),
            Err(KeyError::Short(5))
        ));
        assert!(matches!(SigningKeys::parse("  "), Err(KeyError::Empty)));
    }
}
