//! Image names: whatever parses names only safe package attributes and reparses the same.

use nixery_core::name::{ImageName, MAX_NAME_LEN};

pub fn image_name(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(name) = ImageName::parse(text) else {
        return;
    };
    assert!(text.len() <= MAX_NAME_LEN);
    assert_eq!(name.to_string(), text);
    for package in &name.packages {
        // Package names become Nix attribute names: never anything a shell or Nix parses.
        let safe = |b: u8| b.is_ascii_alphanumeric() || b"._-".contains(&b);
        assert!(
            !package.is_empty() && package.bytes().all(safe),
            "{package:?}"
        );
        assert!(!package.starts_with(['.', '-', '_']), "{package:?}");
    }
    assert_eq!(ImageName::parse(&name.to_string()).as_ref(), Ok(&name));
}
