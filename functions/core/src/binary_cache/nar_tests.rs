use super::*;

/// A test encoder: tokens and contents in NAR's `str` framing.
#[derive(Default)]
struct Nar(Vec<u8>);

impl Nar {
    fn s(mut self, bytes: &[u8]) -> Self {
        self.0.extend((bytes.len() as u64).to_le_bytes());
        self.0.extend(bytes);
        self.0.resize(self.0.len().div_ceil(8) * 8, 0);
        self
    }

    fn t(self, tokens: &[&str]) -> Self {
        tokens.iter().fold(self, |nar, t| nar.s(t.as_bytes()))
    }
}

#[derive(Default)]
struct Record(Vec<String>);

impl NarSink for Record {
    fn directory(&mut self, path: &Path) -> io::Result<()> {
        self.0.push(format!("d {}", path.display()));
        Ok(())
    }

    fn file(&mut self, path: &Path, x: bool, size: u64, data: &mut dyn Read) -> io::Result<()> {
        let mut text = String::new();
        data.read_to_string(&mut text)?;
        assert_eq!(text.len() as u64, size);
        self.0.push(format!("f {} {x} {text}", path.display()));
        Ok(())
    }

    fn symlink(&mut self, path: &Path, target: &Path) -> io::Result<()> {
        self.0
            .push(format!("l {} {}", path.display(), target.display()));
        Ok(())
    }
}

fn entry(nar: Nar, name: &str) -> Nar {
    nar.t(&["entry", "(", "name", name, "node", "(", "type"])
}

/// root/ { a/ { c: "c" }, a-b: executable "#!", z -> a/c }
fn sample() -> Nar {
    let nar = Nar::default().t(&["nix-archive-1", "(", "type", "directory"]);
    let nar = entry(nar, "a").t(&["directory"]);
    let nar = entry(nar, "c").t(&["regular", "contents", "c", ")", ")"]);
    let nar = nar.t(&[")", ")"]);
    let nar = entry(nar, "a-b").t(&["regular", "executable", "", "contents", "#!", ")", ")"]);
    entry(nar, "z").t(&["symlink", "target", "a/c", ")", ")", ")"])
}

fn parse(bytes: &[u8]) -> io::Result<Vec<String>> {
    let mut sink = Record::default();
    read_nar(&mut &bytes[..], Path::new("r"), &mut sink)?;
    Ok(sink.0)
}

#[test]
fn entries_come_depth_first_with_contents() -> io::Result<()> {
    let want = [
        "d r",
        "d r/a",
        "f r/a/c false c",
        "f r/a-b true #!",
        "l r/z a/c",
    ];
    assert_eq!(parse(&sample().0)?, want);
    let single = Nar::default().t(&["nix-archive-1", "(", "type", "regular"]);
    let single = single.t(&["contents", "hello", ")"]);
    assert_eq!(parse(&single.0)?, ["f r false hello"]);
    Ok(())
}

#[test]
fn malformed_archives_are_errors() {
    let good = sample().0;
    let unsorted = String::from_utf8_lossy(&good).replace("a-b", "0-b");
    let mut bad_padding = good.clone();
    bad_padding[8 + 13] = 1; // inside the padding of "nix-archive-1"
    let huge = Nar::default().t(&["nix-archive-1"]).0;
    let huge = [huge, u64::MAX.to_le_bytes().to_vec()].concat();
    let dotdot = String::from_utf8_lossy(&good).replace("a-b", "..\0");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (good[..good.len() - 8].to_vec(), "truncated"),
        (unsorted.into_bytes(), "out of order"),
        (bad_padding, "padding"),
        (huge, "string of"),
        (dotdot.into_bytes(), "invalid entry name"),
        (Nar::default().t(&["nix-archive-2"]).0, "expected"),
    ];
    for (bytes, why) in cases {
        let err = parse(&bytes)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains(why) || (why == "truncated" && err.contains("fill whole buffer")),
            "{why}: {err}"
        );
    }
}

#[test]
fn hashing_reader_checks_size_hash_and_trailing_data() -> io::Result<()> {
    let nar = sample().0;
    let sha: [u8; 32] = Sha256::digest(&nar).into();
    let run = |bytes: &[u8], size: u64, sha: [u8; 32]| -> io::Result<()> {
        let mut reader = HashingReader::new(bytes);
        read_nar(&mut reader, Path::new("r"), &mut Record::default())?;
        reader.check(size, &sha)
    };
    run(&nar, nar.len() as u64, sha)?;
    let wrong = |r: io::Result<()>| r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(wrong(run(&nar, nar.len() as u64, [0; 32])).contains("hash mismatch"));
    assert!(wrong(run(&nar, 8, sha)).contains("size mismatch"));
    let trailing = [&nar[..], &[0u8; 8]].concat();
    assert!(wrong(run(&trailing, nar.len() as u64, sha)).contains("after the end"));
    Ok(())
}
