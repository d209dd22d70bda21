//! Messages of the log events that operators and tests watch for. Tests match these
//! constants, never hand-typed text, so rewording a message cannot silently break them.

/// An image was built (fields: `image`, `manifest`, `elapsed_ms`).
pub const IMAGE_BUILT: &str = "image built";
/// A store-path layer was packed and stored (fields: `digest`, `size`, `paths`).
pub const LAYER_PACKED: &str = "layer packed";
/// A stored layer was reused instead of packed (fields: `digest`, `paths`).
pub const LAYER_REUSED: &str = "layer reused";
/// A Nix process ran (fields: `program`, `elapsed_ms`).
pub const NIX_CALL: &str = "nix call";
/// One step of a build finished (fields: `image`, `step`, `elapsed_ms`).
pub const BUILD_STEP: &str = "build step";
/// A registry token was issued (fields: `tenant`, `repositories`).
pub const TOKEN_ISSUED: &str = "token issued";
/// A bearer token was refused: expired, forged or for another service (field: `error`).
pub const TOKEN_REJECTED: &str = "token rejected";
