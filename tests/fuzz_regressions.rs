//! Replays every input saved under `fuzz/regressions/<target>/` (crashes found by
//! `scripts/fuzz.sh`, plus hand-picked hostile seeds) through the same entry points the
//! cargo-fuzz targets use, on stable Rust, so a fixed crash stays fixed; and the requests
//! captured from real agents, which are also the fuzzer's seed corpus.

#[path = "../fuzz/src/lib.rs"]
mod targets;

mod common;

#[test]
fn saved_fuzz_inputs_run_clean() {
    let root = common::repo_root().join("fuzz/regressions");
    let mut replayed = 0;
    for (name, run) in targets::TARGETS {
        let dir = root.join(name);
        assert!(dir.is_dir(), "missing {}", dir.display());
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == ".gitkeep") {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            run(&data);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no saved inputs under {}", root.display());
}

#[test]
fn captured_requests_run_clean_through_the_fuzz_entry_points() {
    let by_target: [(&str, targets::Target); 9] = [
        ("web-vitals.jsonl", targets::native_beacon),
        ("faro.jsonl", targets::faro),
        ("faro-gzip.jsonl", targets::gunzip),
        ("otlp-json.jsonl", targets::otlp_json),
        ("otlp-proto.jsonl", targets::otlp_protobuf),
        ("splunk-rum.jsonl", targets::zipkin_spans),
        ("elastic-rum.jsonl", targets::elastic_intake),
        ("elastic-rum-v3.jsonl", targets::elastic_intake),
        ("boomerang.jsonl", targets::boomerang_beacon),
    ];
    for (file, run) in by_target {
        let requests = common::captured(file);
        assert!(!requests.is_empty(), "{file}");
        for request in requests {
            run(&request.body);
        }
    }
    let beacon =
        std::fs::read(common::repo_root().join("examples/beacons/page-load.json")).unwrap();
    targets::native_beacon(&beacon);
}
