//! `.narinfo` files: what a binary cache says about one store path. A text file of
//! `Key: value` lines; unknown keys are ignored so newer caches still parse.

use super::nixbase32;
use super::BinaryCacheError as Error;

pub const STORE_DIR: &str = "/nix/store";

/// How the NAR file at `url` is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NarCompression {
    None,
    Xz,
    Zstd,
}

/// The parsed narinfo of one store path. Paths are absolute (`/nix/store/...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NarInfo {
    pub store_path: String,
    /// Where the NAR is, relative to the cache root (e.g. `nar/<hash>.nar.xz`).
    pub url: String,
    pub compression: NarCompression,
    /// `FileHash` and `FileSize` describe the compressed file; informational only, since
    /// the signed NAR hash is what we check.
    pub file_hash: Option<String>,
    pub file_size: Option<u64>,
    /// SHA-256 of the uncompressed NAR.
    pub nar_hash: [u8; 32],
    pub nar_size: u64,
    /// Full store paths, sorted; may include `store_path` itself.
    pub references: Vec<String>,
    pub deriver: Option<String>,
    /// `name:base64` signatures, in file order.
    pub sigs: Vec<String>,
}

impl NarInfo {
    /// Parse a narinfo; `path` (what was asked for) names the narinfo in errors.
    pub fn parse(path: &str, text: &str) -> Result<NarInfo, Error> {
        let bad = |reason: String| Error::NarInfo {
            path: path.to_string(),
            reason,
        };
        let mut fields = Fields::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) = line
                .split_once(": ")
                .ok_or_else(|| bad(format!("line {line:?} is not `Key: value`")))?;
            fields.set(key, value.trim()).map_err(&bad)?;
        }
        fields.finish().map_err(bad)
    }

    /// What the signatures sign, as Nix's `ValidPathInfo::fingerprint` writes it: the hash in
    /// Nix base-32 and the references sorted, comma-separated and absolute.
    pub fn fingerprint(&self) -> String {
        format!(
            "1;{};sha256:{};{};{}",
            self.store_path,
            nixbase32::encode(&self.nar_hash),
            self.nar_size,
            self.references.join(",")
        )
    }

    /// `nar_hash` as the narinfo writes it.
    pub fn nar_hash_string(&self) -> String {
        format!("sha256:{}", nixbase32::encode(&self.nar_hash))
    }
}

/// Fields seen so far; `finish` checks the required ones are there.
#[derive(Default)]
struct Fields {
    store_path: Option<String>,
    url: Option<String>,
    compression: Option<NarCompression>,
    file_hash: Option<String>,
    file_size: Option<u64>,
    nar_hash: Option<[u8; 32]>,
    nar_size: Option<u64>,
    references: Vec<String>,
    deriver: Option<String>,
    sigs: Vec<String>,
}

impl Fields {
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let number = |v: &str| v.parse::<u64>().map_err(|e| format!("{key} {v:?}: {e}"));
        match key {
            "StorePath" => self.store_path = Some(store_path(value)?),
            "URL" => self.url = Some(value.to_string()),
            "Compression" => self.compression = Some(compression(value)?),
            "FileHash" => self.file_hash = Some(value.to_string()),
            "FileSize" => self.file_size = Some(number(value)?),
            "NarHash" => self.nar_hash = Some(parse_sha256(value)?),
            "NarSize" => self.nar_size = Some(number(value)?),
            "References" => {
                let full = value
                    .split_whitespace()
                    .map(|b| store_path(&format!("{STORE_DIR}/{b}")));
                self.references = full.collect::<Result<_, _>>()?;
                self.references.sort();
                self.references.dedup();
            }
            "Deriver" if value != "unknown-deriver" => {
                self.deriver = Some(format!("{STORE_DIR}/{value}"))
            }
            "Sig" => self.sigs.push(value.to_string()),
            _ => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<NarInfo, String> {
        let missing = |key: &str| format!("no {key} line");
        Ok(NarInfo {
            store_path: self.store_path.ok_or_else(|| missing("StorePath"))?,
            url: self.url.ok_or_else(|| missing("URL"))?,
            // Nix writes no Compression line for uncompressed NARs in old caches; its default
            // is bzip2 there, which we do not support, so an absent line is an error too.
            compression: self.compression.ok_or_else(|| missing("Compression"))?,
            file_hash: self.file_hash,
            file_size: self.file_size,
            nar_hash: self.nar_hash.ok_or_else(|| missing("NarHash"))?,
            nar_size: self.nar_size.ok_or_else(|| missing("NarSize"))?,
            references: self.references,
            deriver: self.deriver,
            sigs: self.sigs,
        })
    }
}

fn compression(value: &str) -> Result<NarCompression, String> {
    match value {
        "none" | "" => Ok(NarCompression::None),
        "xz" => Ok(NarCompression::Xz),
        "zstd" => Ok(NarCompression::Zstd),
        other => Err(format!(
            "compression {other:?} is not supported (use xz, zstd or none)"
        )),
    }
}

/// A store path `/nix/store/<32 base-32 chars>-<name>`, with no further `/`.
pub fn store_path(value: &str) -> Result<String, String> {
    let err = || format!("{value:?} is not a store path");
    let base = value
        .strip_prefix(STORE_DIR)
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(err)?;
    let (hash, name) = base.split_at_checked(32).ok_or_else(err)?;
    let name_ok = name.len() > 1
        && name.starts_with('-')
        && !name[1..].starts_with('.')
        && name[1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-._?=".contains(&b));
    if nixbase32::decode(hash, 20).is_none() || !name_ok {
        return Err(err());
    }
    Ok(value.to_string())
}

/// `sha256:<nix-base32>` (what Nix writes) or `sha256:<hex>`.
fn parse_sha256(value: &str) -> Result<[u8; 32], String> {
    let err = || format!("NarHash {value:?} is not sha256:<base-32 or hex>");
    let digest = value.strip_prefix("sha256:").ok_or_else(err)?;
    let bytes = match digest.len() {
        52 => nixbase32::decode(digest, 32),
        64 => hex::decode(digest).ok(),
        _ => None,
    };
    bytes.and_then(|b| b.try_into().ok()).ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "1impfw8zdgisxkghq9a3q7cn7jb9zyzgxdydiamp8z2nlyyl0h5h";

    fn sample() -> String {
        format!(
            "StorePath: /nix/store/p4pclmv1gyja5kzc26npqpia1qqxrf0l-ruby-2.7.3\n\
             URL: nar/1w1f.nar.xz\nCompression: xz\nFileHash: sha256:1w1f\nFileSize: 4029176\n\
             NarHash: sha256:{HASH}\nNarSize: 18735072\n\
             References: p4pclmv1gyja5kzc26npqpia1qqxrf0l-ruby-2.7.3 0d71ygfwbmy1xjlbj1v027dfmy9cqavy-libffi-3.3\n\
             Deriver: 7c0sr3hv1dx6jd3lyxqfa2zxsa3a4lgp-ruby-2.7.3.drv\n\
             Sig: a:AAAA\nSig: b:BBBB\n"
        )
    }

    #[test]
    fn parses_every_field_and_fingerprints_like_nix() -> Result<(), Error> {
        let info = NarInfo::parse("p4pc", &sample())?;
        assert_eq!(info.compression, NarCompression::Xz);
        assert_eq!((info.nar_size, info.file_size), (18735072, Some(4029176)));
        assert_eq!(info.sigs, ["a:AAAA", "b:BBBB"]);
        let deriver = "/nix/store/7c0sr3hv1dx6jd3lyxqfa2zxsa3a4lgp-ruby-2.7.3.drv";
        assert_eq!(info.deriver.as_deref(), Some(deriver));
        assert_eq!(
            info.fingerprint(),
            format!(
                "1;/nix/store/p4pclmv1gyja5kzc26npqpia1qqxrf0l-ruby-2.7.3;sha256:{HASH};18735072;\
                 /nix/store/0d71ygfwbmy1xjlbj1v027dfmy9cqavy-libffi-3.3,\
                 /nix/store/p4pclmv1gyja5kzc26npqpia1qqxrf0l-ruby-2.7.3"
            )
        );
        Ok(())
    }

    #[test]
    fn errors_name_the_path() {
        let cases = [
            (
                sample().replace("Compression: xz", "Compression: bzip2"),
                "bzip2",
            ),
            (sample().replace("NarSize: 18735072\n", ""), "no NarSize"),
            (sample().replace(HASH, "xyz"), "NarHash"),
            (sample().replace("0d71y", "../.."), "not a store path"),
            (format!("{}garbage\n", sample()), "garbage"),
        ];
        for (text, why) in cases {
            let err = NarInfo::parse("/nix/store/p4pc-ruby", &text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains("/nix/store/p4pc-ruby") && err.contains(why),
                "{err}"
            );
        }
    }
}
