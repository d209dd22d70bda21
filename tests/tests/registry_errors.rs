//! Registry errors: bad input gets the spec's 4xx codes (never a 5xx) and never reaches Nix;
//! an unknown package gets MANIFEST_UNKNOWN naming it.

use nixery_e2e::harness::{error_code_in, http_get, nix_calls, raw_get, tail, try_http, Server};

const ZERO_DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn unknown_package_is_manifest_unknown_naming_it() {
    let server = Server::start_temp();
    let resp = http_get(&server.url("/v2/hello/nosuchpkgxyz/manifests/latest"), &[]);
    assert_eq!(resp.status, 404, "unknown package: {}", resp.text());
    assert_eq!(resp.error_code(), "MANIFEST_UNKNOWN", "{}", resp.text());
    let err = &resp.json()["errors"][0];
    let text = format!("{} {}", err["message"], err["detail"]);
    assert!(
        text.contains("nosuchpkgxyz"),
        "the error does not name the missing package: {}",
        resp.text()
    );
}

/// One bad request and what the registry must answer.
struct Case {
    method: &'static str,
    path: String,
    status: u16,
    code: &'static str,
    /// Send the target byte for byte (no URL normalisation).
    raw: bool,
}

fn case(method: &'static str, path: impl Into<String>, status: u16, code: &'static str) -> Case {
    Case {
        method,
        path: path.into(),
        status,
        code,
        raw: false,
    }
}

fn bad_cases() -> Vec<Case> {
    let mut cases = vec![];
    // Bad names.
    for name in [
        "he\"llo",
        "hello;rm",
        "hello$(id)",
        "${hello}",
        "{hello}",
        "Hello",
        "hello/Git",
        "hello%2Fgit",
        "hello//git",
        "/hello",
        "hello/",
        "hello/a b",
        "hello/`id`",
    ] {
        cases.push(case(
            "GET",
            format!("/v2/{name}/manifests/latest"),
            400,
            "NAME_INVALID",
        ));
    }
    cases.push(case(
        "GET",
        format!("/v2/{}/manifests/latest", "a".repeat(256)),
        400,
        "NAME_INVALID",
    ));
    cases.push(case(
        "GET",
        format!("/v2/{}a/manifests/latest", "a/".repeat(128)),
        400,
        "NAME_INVALID",
    ));
    cases.push(case(
        "HEAD",
        "/v2/hel;lo/manifests/latest",
        400,
        "NAME_INVALID",
    ));
    cases.push(case(
        "GET",
        format!("/v2/hel;lo/blobs/{ZERO_DIGEST}"),
        400,
        "NAME_INVALID",
    ));
    cases.push(case("GET", "/v2/he$llo/tags/list", 400, "NAME_INVALID"));
    for raw in [
        "/v2/hello/../git/manifests/latest",
        "/v2/../hello/manifests/latest",
        "/v2/hello/%2e%2e/git/manifests/latest",
        "/v2/hello/./git/manifests/latest",
    ] {
        let mut c = case("GET", raw, 400, "NAME_INVALID");
        c.raw = true;
        cases.push(c);
    }
    // Bad digests.
    for d in ["sha256:xyz", "sha256:abc", "sha256:ABCDEF"] {
        cases.push(case(
            "GET",
            format!("/v2/hello/manifests/{d}"),
            400,
            "DIGEST_INVALID",
        ));
        cases.push(case(
            "GET",
            format!("/v2/hello/blobs/{d}"),
            400,
            "DIGEST_INVALID",
        ));
    }
    cases.push(case(
        "GET",
        format!("/v2/hello/blobs/sha256:{}", "a".repeat(63)),
        400,
        "DIGEST_INVALID",
    ));
    cases.push(case("GET", "/v2/hello/blobs/latest", 400, "DIGEST_INVALID"));
    cases.push(case(
        "HEAD",
        "/v2/hello/blobs/sha256:nothex",
        400,
        "DIGEST_INVALID",
    ));
    // Bad tags.
    for tag in ["-bad", ".bad", "bad$tag", "bad{tag}"] {
        cases.push(case(
            "GET",
            format!("/v2/hello/manifests/{tag}"),
            400,
            "TAG_INVALID",
        ));
    }
    cases.push(case(
        "GET",
        format!("/v2/hello/manifests/{}", "t".repeat(129)),
        400,
        "TAG_INVALID",
    ));
    // Unknown content (no Nix needed to know).
    cases.push(case(
        "GET",
        format!("/v2/hello/blobs/{ZERO_DIGEST}"),
        404,
        "BLOB_UNKNOWN",
    ));
    cases.push(case(
        "HEAD",
        format!("/v2/hello/blobs/{ZERO_DIGEST}"),
        404,
        "BLOB_UNKNOWN",
    ));
    cases.push(case(
        "GET",
        format!("/v2/hello/manifests/{ZERO_DIGEST}"),
        404,
        "MANIFEST_UNKNOWN",
    ));
    // Push methods.
    for (method, path) in [
        ("POST", "/v2/hello/blobs/uploads/".to_string()),
        ("PUT", "/v2/hello/manifests/latest".to_string()),
        ("DELETE", "/v2/hello/manifests/latest".to_string()),
        ("PATCH", "/v2/hello/blobs/uploads/some-uuid".to_string()),
        ("DELETE", format!("/v2/hello/blobs/{ZERO_DIGEST}")),
        (
            "PUT",
            format!("/v2/hello/blobs/uploads/x?digest={ZERO_DIGEST}"),
        ),
    ] {
        cases.push(case(method, path, 405, "UNSUPPORTED"));
    }
    cases
}

#[test]
fn bad_input_gets_4xx_errors_and_never_reaches_nix() {
    let server = Server::start_temp();
    let mut failures = vec![];
    for c in bad_cases() {
        let (status, code, body) = if c.raw {
            let (status, body) = raw_get(&server.addr, &c.path);
            let code = error_code_in(&body);
            (status, code, body)
        } else {
            match try_http(c.method, &server.url(&c.path), &[]) {
                Ok(resp) => (resp.status, resp.error_code(), resp.text()),
                Err(e) => (0, String::new(), e),
            }
        };
        // HEAD responses have no body, so only their status can be checked.
        let code_ok = c.method == "HEAD" || code == c.code;
        if status >= 500 || status != c.status || !code_ok {
            failures.push(format!(
                "{} {}: got {status} {code:?}, want {} {}; body: {}",
                c.method,
                c.path,
                c.status,
                c.code,
                body.chars().take(300).collect::<String>()
            ));
        }
    }
    let log = server.log();
    let calls = nix_calls(&log);
    if calls > 0 {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("nix call")).collect();
        failures.push(format!(
            "{calls} `nix call` lines: bad input reached Nix:\n{}",
            lines.join("\n")
        ));
    }
    assert!(
        failures.is_empty(),
        "{} problems with bad requests:\n{}\nserver log (tail):\n{}",
        failures.len(),
        failures.join("\n"),
        tail(&log, 20)
    );
}
