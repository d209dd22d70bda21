//! Replays every committed corpus file and saved crash through its fuzz check, so the normal
//! test suite keeps what the fuzzer found (`fuzz/run.sh` fuzzes; this only replays).

use std::io::Read;
use std::path::PathBuf;

/// The inputs of `target`, each with a name for messages: `corpus/<target>.tar.zst` (what
/// libFuzzer kept for coverage, minimised and packed by `fuzz/run.sh`) and
/// `regressions/<target>/*` (inputs that once failed a check, kept after the fix).
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    let packed = root.join("corpus").join(format!("{target}.tar.zst"));
    if let Ok(file) = std::fs::File::open(&packed) {
        let decoder = zstd::stream::read::Decoder::new(file).expect("zstd corpus");
        let mut archive = tar::Archive::new(decoder);
        for entry in archive.entries().expect("tar corpus") {
            let mut entry = entry.expect("corpus entry");
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = format!(
                "{}:{}",
                packed.display(),
                entry.path().expect("name").display()
            );
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("corpus input");
            found.push((name, data));
        }
    }
    if let Ok(entries) = std::fs::read_dir(root.join("regressions").join(target)) {
        for entry in entries {
            let path = entry.expect("regression entry").path();
            let data = std::fs::read(&path).expect("regression input");
            found.push((path.display().to_string(), data));
        }
    }
    found
}

#[test]
fn every_target_has_a_corpus() {
    for (target, _) in nixery_fuzz::TARGETS {
        assert!(
            inputs(target).len() >= 3,
            "fuzz/corpus/{target}.tar.zst holds fewer than 3 inputs: run fuzz/run.sh"
        );
    }
}

macro_rules! replay {
    ($($target:ident),* $(,)?) => {$(
        #[test]
        fn $target() {
            let files = inputs(stringify!($target));
            for (name, data) in &files {
                let run = std::panic::catch_unwind(|| nixery_fuzz::$target(data));
                assert!(run.is_ok(), "{name} fails its check");
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
