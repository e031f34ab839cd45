//! `gostack bench --quick --json`: the shape of its report (not its
//! timings, which belong to benchmarks, not tests): every figure present,
//! positive and finite, every ratio the quotient of the figures it names,
//! the Go shapes in Go's order with the growths their depths force, and
//! Go's own figures or the way to install Go.

use serde_json::Value;
use std::process::Command;

fn gostack(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gostack"))
        .args(args)
        .output()
        .expect("run gostack");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A positive, finite number at `v[k]`.
fn pos(v: &Value, k: &str) -> f64 {
    let x = v[k]
        .as_f64()
        .unwrap_or_else(|| panic!("{k} is not a number: {}", v[k]));
    assert!(x.is_finite() && x > 0.0, "{k} = {x}");
    x
}

/// `v[k]` equals `num / den` (as printed, to 1e-9 relative).
fn ratio(v: &Value, k: &str, num: f64, den: f64) {
    let r = pos(v, k);
    let want = num / den;
    assert!(
        ((r - want) / want).abs() < 1e-9,
        "{k} = {r}, but {num} / {den} = {want}"
    );
}

#[test]
fn quick_json_report_has_every_figure() {
    let (code, out, err) = gostack(&["bench", "--quick", "--json"]);
    assert_eq!(code, 0, "stderr: {err}");
    let v: Value = serde_json::from_str(&out).expect("stdout is one JSON object");
    assert_eq!(v["quick"], Value::Bool(true));

    let m = &v["machine"];
    assert!(m["nproc"].as_u64().unwrap() >= 1);
    assert!(!m["cpu"].as_str().unwrap().is_empty());
    assert_eq!(m["loadavg"].as_array().unwrap().len(), 3);

    let a = &v["alloc"];
    let cache = pos(a, "p_cache_alloc_free_ns");
    let pool = pos(a, "pool_alloc_free_ns");
    let mmap = pos(a, "mmap_touch_munmap_ns");
    ratio(a, "mmap_over_p_cache", mmap, cache);
    ratio(a, "mmap_over_pool", mmap, pool);

    let c = &v["churn"];
    assert_eq!(c["burst_stacks"], 64);
    let two = pos(c, "two_threads_two_ps_ns_per_pair");
    let one = pos(c, "one_thread_one_p_ns_per_pair");
    let mm = pos(c, "mmap_two_threads_ns_per_pair");
    ratio(c, "two_threads_over_one_thread", two, one);
    ratio(c, "mmap_over_two_threads", mm, two);

    let go = &v["go"];
    let have_go = go["available"].as_bool().expect("go.available is a bool");
    if have_go {
        assert!(go["command"].as_str().unwrap().contains("-bench"));
    } else {
        assert!(go["install"].as_str().unwrap().contains("ci/install-go.sh"));
    }

    let shapes = v["go_shapes"].as_array().expect("go_shapes is an array");
    let names: Vec<&str> = shapes.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "BenchmarkStackCopy",
            "BenchmarkStackCopyPtr",
            "BenchmarkStackCopyWithStkobj",
            "BenchmarkStackGrowth"
        ]
    );
    let depths: Vec<u64> = shapes
        .iter()
        .map(|s| s["depth"].as_u64().unwrap())
        .collect();
    assert_eq!(depths, [1_000_000, 1_000_000, 100_000, 10]);
    for s in shapes {
        let name = s["name"].as_str().unwrap();
        let imp = pos(s, "impl_ns_per_op");
        let floor = pos(s, "floor_ns_per_op");
        assert_eq!(s["start_stack"], 2048, "{name}");
        assert!(s["harness_resync_ns_per_op_left_out"].as_f64().unwrap() >= 0.0);
        if name == "BenchmarkStackGrowth" {
            // One growth sequence (2 KiB to 16 KiB for 11 frames of 1048
            // bytes), spread over every operation.
            let g = s["growths_per_op"].as_f64().unwrap();
            assert!(g > 0.0 && g < 3.0, "{name}: {g} growths per op");
            assert!(s["impl_over_floor"].is_null(), "{name}");
        } else {
            // 2 KiB to 32 MiB: the deepest point uses 20 to 24 MB.
            assert_eq!(s["growths_per_op"].as_f64(), Some(14.0), "{name}");
            ratio(s, "impl_over_floor", imp, floor);
            let b = pos(s, "bytes_copied_per_op");
            assert!(b > 16e6 && b < 64e6, "{name}: {b} bytes copied");
        }
        match s["go_ns_per_op"].as_f64() {
            Some(g) => {
                assert!(have_go, "{name}: a Go figure without Go");
                ratio(s, "impl_over_go", imp, g);
                assert_eq!(s["met"], Value::Bool(imp / g <= 0.25), "{name}");
                assert!(go["ns_per_op"][name].is_number(), "{name}");
            }
            None => {
                assert!(!have_go, "{name}: Go ran but gave no figure");
                assert!(s["impl_over_go"].is_null() && s["met"].is_null());
            }
        }
    }

    let md = &v["metadata"];
    assert_eq!(md["live_stacks"], 100_000);
    assert_eq!(md["stack_bytes"], 100_000 * 2048);
    let meta = pos(md, "metadata_bytes");
    ratio(md, "percent", 100.0 * meta, 100_000.0 * 2048.0);
    ratio(md, "bytes_per_stack", meta, 100_000.0);
    assert_eq!(md["met"], Value::Bool(pos(md, "percent") < 1.0));
}

#[test]
fn bad_flags_are_refused() {
    let (code, _, err) = gostack(&["bench", "--fast"]);
    assert_eq!(code, 2);
    assert!(err.contains("--fast"), "{err}");
}
