//! API keys: `nxr_<id>_<secret>`, with 8 random bytes of id and 32 of secret, both hex. The
//! id is stored as is, the secret only as its SHA-256, compared in constant time.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "nxr_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    id: String,
    secret: String,
}

#[derive(Debug, thiserror::Error)]
#[error("not an API key of the form nxr_<id>_<secret>")]
pub struct KeyError;

impl ApiKey {
    pub fn generate() -> ApiKey {
        ApiKey {
            id: random_hex(ID_BYTES),
            secret: random_hex(SECRET_BYTES),
        }
    }

    pub fn parse(s: &str) -> Result<ApiKey, KeyError> {
        let rest = s.strip_prefix(PREFIX).ok_or(KeyError)?;
        let (id, secret) = rest.split_once('_').ok_or(KeyError)?;
        let hex = |v: &str, n: usize| {
            v.len() == 2 * n
                && v.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !hex(id, ID_BYTES) || !hex(secret, SECRET_BYTES) {
            return Err(KeyError);
        }
        Ok(ApiKey {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// What is stored instead of the secret.
    pub fn secret_hash(&self) -> String {
        hex::encode(Sha256::digest(self.secret.as_bytes()))
    }

    /// Whether this key has the given id and secret hash; the hash is compared in constant
    /// time, so timing tells nothing about how much of a guess was right.
    pub fn matches(&self, id: &str, secret_hash: &str) -> bool {
        let same_hash: bool = self
            .secret_hash()
            .as_bytes()
            .ct_eq(secret_hash.as_bytes())
            .into();
        same_hash && self.id == id
    }

    /// The key as the tenant types it. Shown once, at creation or rotation.
    pub fn reveal(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, self.secret)
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source");
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_only_the_right_one_matches() {
        let key = ApiKey::generate();
        let text = key.reveal();
        assert!(
            text.starts_with("nxr_") && text.len() == 4 + 16 + 1 + 64,
            "{text}"
        );
        let parsed = ApiKey::parse(&text).expect("parses");
        assert!(parsed.matches(key.id(), &key.secret_hash()));
        let other = ApiKey::generate();
        assert!(!other.matches(key.id(), &key.secret_hash()));
        assert!(!parsed.matches(other.id(), &key.secret_hash()));
        for bad in [
            "",
            "nxr_",
            "nxr_x_y",
            &text[..text.len() - 1],
            &text.to_uppercase(),
        ] {
            assert!(ApiKey::parse(bad).is_err(), "{bad}");
        }
    }
}
