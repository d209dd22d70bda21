//! Nix's base-32: the encoding of store path hashes and of `NarHash` in narinfo files. Not
//! RFC 4648: its own alphabet (no e, o, u, t) and it reads the bytes from the end.

const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Length of the encoding of `bytes` bytes (52 for a SHA-256).
pub fn encoded_len(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        (bytes * 8 - 1) / 5 + 1
    }
}

pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    (0..len)
        .rev()
        .map(|n| {
            let (i, j) = (n * 5 / 8, n * 5 % 8);
            let low = bytes[i] >> j;
            let high = bytes
                .get(i + 1)
                .map_or(0, |b| (u16::from(*b) << (8 - j)) as u8);
            char::from(ALPHABET[usize::from((low | high) & 0x1f)])
        })
        .collect()
}

/// Decode into exactly `size` bytes; `None` if a character is outside the alphabet, the length
/// is not the one `size` bytes encode to, or the leftover high bits are not zero.
pub fn decode(text: &str, size: usize) -> Option<Vec<u8>> {
    if text.len() != encoded_len(size) {
        return None;
    }
    let mut out = vec![0u8; size];
    for (n, c) in text.bytes().rev().enumerate() {
        let digit = ALPHABET.iter().position(|a| *a == c)? as u16;
        let (i, j) = (n * 5 / 8, n * 5 % 8);
        out[i] |= (digit << j) as u8;
        let carry = digit >> (8 - j);
        match out.get_mut(i + 1) {
            Some(next) => *next |= carry as u8,
            None if carry != 0 => return None,
            None => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn known_vectors() {
        // `nix hash to-base32 sha256:<hex of sha256("")>` and a store-path-sized (20 byte) hash.
        let empty = Sha256::digest(b"");
        let text = "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73";
        assert_eq!(encode(&empty), text);
        assert_eq!(decode(text, 32).as_deref(), Some(&empty[..]));
        assert_eq!(encode(&[0u8; 20]), "0".repeat(32));
        assert_eq!(encode(&[0xff]), "7z");
    }

    #[test]
    fn round_trips_every_length() {
        for size in 0..40 {
            let bytes: Vec<u8> = (0..size).map(|i| (i * 37 + 11) as u8).collect();
            let text = encode(&bytes);
            assert_eq!(text.len(), encoded_len(size));
            assert_eq!(decode(&text, size), Some(bytes));
        }
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(decode("e", 1), None, "not in the alphabet");
        assert_eq!(decode("00", 32), None, "wrong length");
        assert_eq!(decode("8z", 1), None, "bits beyond the last byte");
    }
}
