//! Binary cache signatures: ed25519 over a narinfo's fingerprint, with keys and signatures
//! written `name:base64`, as `nix-store --generate-binary-cache-key` and `nix store sign` do.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};

use super::narinfo::NarInfo;
use super::BinaryCacheError as Error;

/// The public keys a narinfo must be signed with (one valid signature from any of them).
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<String, VerifyingKey>,
}

impl TrustedKeys {
    /// Parse `name:base64(32-byte public key)` strings, e.g. the contents of a `pk` file or of
    /// Nix's `trusted-public-keys`.
    pub fn parse<S: AsRef<str>>(keys: &[S]) -> Result<TrustedKeys, Error> {
        let mut parsed = BTreeMap::new();
        for key in keys {
            let key = key.as_ref().trim();
            let (name, bytes) = split(key).ok_or_else(|| Error::Key(key.to_string()))?;
            let bytes: [u8; 32] = bytes.try_into().map_err(|_| Error::Key(key.to_string()))?;
            let key_ok = VerifyingKey::from_bytes(&bytes).map_err(|_| Error::Key(key.into()))?;
            parsed.insert(name.to_string(), key_ok);
        }
        Ok(TrustedKeys { keys: parsed })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Ok if at least one `Sig` line is from a trusted key and verifies over the fingerprint.
    /// Signatures from unknown keys or that fail to parse are skipped, as Nix does.
    pub fn verify(&self, info: &NarInfo) -> Result<(), Error> {
        let fingerprint = info.fingerprint();
        let valid = info.sigs.iter().any(|sig| {
            let Some((name, bytes)) = split(sig) else {
                return false;
            };
            let (Some(key), Ok(sig)) = (self.keys.get(name), Signature::from_slice(&bytes)) else {
                return false;
            };
            key.verify_strict(fingerprint.as_bytes(), &sig).is_ok()
        });
        if valid {
            return Ok(());
        }
        Err(Error::Untrusted {
            path: info.store_path.clone(),
            trusted: self.keys.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }
}

fn split(text: &str) -> Option<(&str, Vec<u8>)> {
    let (name, b64) = text.split_once(':')?;
    let bytes = STANDARD.decode(b64).ok()?;
    (!name.is_empty()).then_some((name, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn info(sigs: Vec<String>) -> Result<NarInfo, Error> {
        let text = "StorePath: /nix/store/p4pclmv1gyja5kzc26npqpia1qqxrf0l-ruby-2.7.3\n\
            URL: nar/x.nar\nCompression: none\n\
            NarHash: sha256:1impfw8zdgisxkghq9a3q7cn7jb9zyzgxdydiamp8z2nlyyl0h5h\nNarSize: 8\n";
        let mut info = NarInfo::parse("ruby", text)?;
        info.sigs = sigs;
        Ok(info)
    }

    fn key(seed: u8) -> (SigningKey, String) {
        let signing = SigningKey::from_bytes(&[seed; 32]);
        let public = STANDARD.encode(signing.verifying_key().as_bytes());
        (signing, format!("k{seed}:{public}"))
    }

    #[test]
    fn one_trusted_valid_signature_is_enough() -> Result<(), Error> {
        let (good, good_pk) = key(1);
        let (other, _) = key(2);
        let fingerprint = info(vec![])?.fingerprint();
        let sign = |k: &SigningKey, name: &str| {
            format!(
                "{name}:{}",
                STANDARD.encode(k.sign(fingerprint.as_bytes()).to_bytes())
            )
        };
        let trusted = TrustedKeys::parse(&[good_pk])?;
        let mixed = vec!["junk".into(), sign(&other, "k2"), sign(&good, "k1")];
        trusted.verify(&info(mixed)?)?;
        // Right key name, wrong signer; unknown key name; no signature at all.
        for sigs in [vec![sign(&other, "k1")], vec![sign(&good, "k9")], vec![]] {
            let err = trusted.verify(&info(sigs)?).err().map(|e| e.to_string());
            assert!(err.is_some_and(|e| e.contains("ruby-2.7.3")));
        }
        Ok(())
    }

    #[test]
    fn malformed_keys_are_rejected() {
        for bad in ["nocolon", ":AAAA", "k:AAAA", "k:not-base64!"] {
            assert!(TrustedKeys::parse(&[bad]).is_err(), "{bad}");
        }
    }
}
