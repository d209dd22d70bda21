//! Binary cache metadata: narinfo files and their signatures (both come from an untrusted
//! cache; only the signature makes a narinfo trusted, and it does not cover the URL).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use nixery_core::binary_cache::{check_relative, NarInfo, TrustedKeys, STORE_DIR};

pub fn narinfo(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = check_relative(text) {
        // It goes into a URL and a file path: plain segments only.
        let plain = |b: u8| b.is_ascii_alphanumeric() || b"._-/".contains(&b);
        assert!(path.bytes().all(plain), "{path:?}");
        assert!(!path
            .split('/')
            .any(|s| s.is_empty() || s == ".." || s == "."));
    }
    let Ok(info) = NarInfo::parse("fuzz", text) else {
        return;
    };
    for path in std::iter::once(&info.store_path).chain(&info.references) {
        let base = path.strip_prefix(STORE_DIR).expect("store path");
        assert!(
            base.starts_with('/') && !base[1..].contains('/'),
            "{path:?}"
        );
        assert!(!path.contains([';', ',', '\n']), "{path:?}");
    }
    // The fingerprint is what signatures sign: its fields cannot run into each other.
    let fingerprint = info.fingerprint();
    assert_eq!(fingerprint.split(';').count(), 5, "{fingerprint:?}");
    assert!(info.references.windows(2).all(|w| w[0] < w[1]));
}

/// The first line is a trusted key (or several, space-separated), the rest a narinfo.
/// Whatever the fuzzer writes, a narinfo verifies only when signed by a trusted key over its
/// fingerprint: a signature we make with our own key verifies, and a changed one does not.
pub fn signature(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (keys, body) = text.split_once('\n').unwrap_or((text, ""));
    let keys: Vec<&str> = keys.split_whitespace().collect();
    let fuzzed = TrustedKeys::parse(&keys);
    let Ok(mut info) = NarInfo::parse("fuzz", body) else {
        return;
    };
    if let Ok(fuzzed) = &fuzzed {
        // Random keys and signatures: a forgery would need ed25519 broken, or a weak key
        // accepted (verify_strict refuses those).
        if fuzzed.verify(&info).is_ok() {
            let ours = SigningKey::from_bytes(&[7; 32]);
            let public = STANDARD.encode(ours.verifying_key().as_bytes());
            assert!(
                keys.iter().any(|k| k.ends_with(&public)),
                "a fuzzed signature verified: {text:?}"
            );
        }
    }
    let ours = SigningKey::from_bytes(&[7; 32]);
    let trusted = format!(
        "fuzz-1:{}",
        STANDARD.encode(ours.verifying_key().as_bytes())
    );
    let trusted = TrustedKeys::parse(&[trusted]).expect("our key parses");
    let sig = ours.sign(info.fingerprint().as_bytes());
    let mut changed = sig.to_bytes();
    changed[data.len() % 64] ^= 1 << (data.len() % 8);
    info.sigs = vec![format!("fuzz-1:{}", STANDARD.encode(changed))];
    assert!(
        trusted.verify(&info).is_err(),
        "a changed signature verified"
    );
    info.sigs
        .push(format!("fuzz-1:{}", STANDARD.encode(sig.to_bytes())));
    assert!(
        trusted.verify(&info).is_ok(),
        "our signature did not verify"
    );
    info.nar_size = info.nar_size.wrapping_add(1);
    assert!(
        trusted.verify(&info).is_err(),
        "a signature survived a NarSize change"
    );
}
