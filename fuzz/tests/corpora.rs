//! Replays every committed corpus file and saved crash through its fuzz check, so the normal
//! test suite keeps what the fuzzer found (`fuzz/run.sh` fuzzes; this only replays).

use std::path::PathBuf;

/// `corpus/<target>/*` (inputs libFuzzer kept for coverage) and `regressions/<target>/*`
/// (inputs that once crashed a check, kept after the fix).
fn inputs(target: &str) -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        files.extend(entries.map(|e| e.expect("corpus entry").path()));
    }
    files.sort();
    files
}

#[test]
fn every_target_has_a_corpus() {
    for (target, _) in nixery_fuzz::TARGETS {
        assert!(
            inputs(target).len() >= 3,
            "fuzz/corpus/{target} holds fewer than 3 inputs: run fuzz/run.sh"
        );
    }
}

macro_rules! replay {
    ($($target:ident),* $(,)?) => {$(
        #[test]
        fn $target() {
            let files = inputs(stringify!($target));
            for file in &files {
                let data = std::fs::read(file).expect("read corpus file");
                let run = std::panic::catch_unwind(|| nixery_fuzz::$target(&data));
                assert!(run.is_ok(), "{} fails its check", file.display());
            }
            eprintln!("{}: {} inputs replayed", stringify!($target), files.len());
        }
    )*};
}

replay!(
    image_name,
    registry_request,
    range,
    narinfo,
    nar,
    signature,
    apigw_event,
    tar_round_trip,
);
