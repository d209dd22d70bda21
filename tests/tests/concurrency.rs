//! Concurrent pulls of one missing image cause exactly one build.

use std::collections::BTreeSet;

use nixery_e2e::harness::{built_manifests, http_get, images_built, tail, Server, ACCEPT_ALL};

const THREADS: usize = 20;

#[test]
fn concurrent_pulls_of_a_missing_image_build_it_once() {
    let server = Server::start_temp();
    let url = server.url("/v2/jq/zlib/manifests/latest");
    let barrier = std::sync::Barrier::new(THREADS);

    let results: Vec<(u16, String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let resp = http_get(&url, &[("Accept", ACCEPT_ALL)]);
                    (
                        resp.status,
                        resp.header("docker-content-digest"),
                        resp.text().chars().take(300).collect(),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request thread panicked"))
            .collect()
    });

    let log = server.log();
    let failed: Vec<&(u16, String, String)> = results
        .iter()
        .filter(|(status, _, _)| *status != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {THREADS} concurrent requests did not get 200: {failed:?}\nlog:\n{}",
        failed.len(),
        tail(&log, 60)
    );
    let digests: BTreeSet<&String> = results.iter().map(|(_, d, _)| d).collect();
    assert_eq!(
        digests.len(),
        1,
        "concurrent requests got different manifest digests: {digests:?}"
    );
    assert_eq!(
        images_built(&log),
        1,
        "expected exactly one `image built` line for {THREADS} concurrent pulls\nlog:\n{}",
        tail(&log, 80)
    );
    let built = built_manifests(&log);
    if let (Some(built), Some(served)) = (built.first(), digests.first()) {
        assert_eq!(built, *served, "the built manifest is not the one served");
    }
}
