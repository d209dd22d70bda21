//! The fuzz checks: one function per `cargo fuzz` target, each taking the fuzzer's bytes and
//! panicking when an invariant fails. `fuzz_targets/*.rs` call them under libFuzzer;
//! `tests/corpora.rs` replays every corpus file and every saved crash through them in the
//! normal test suite, so a fixed crash stays fixed.

mod cache;
mod http;
mod names;
mod nar;
mod tar_layers;

pub use cache::{narinfo, signature};
pub use http::{apigw_event, range, registry_request};
pub use names::image_name;
pub use nar::nar;
pub use tar_layers::tar_round_trip;

/// A check: panics when the input breaks an invariant.
pub type Check = fn(&[u8]);

/// The targets, by name, as the corpus directories are named.
pub const TARGETS: &[(&str, Check)] = &[
    ("image_name", image_name),
    ("registry_request", registry_request),
    ("range", range),
    ("narinfo", narinfo),
    ("nar", nar),
    ("signature", signature),
    ("apigw_event", apigw_event),
    ("tar_round_trip", tar_round_trip),
];
