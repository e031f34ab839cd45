//! Every Go throw the spec raises ([`GoThrow::ALL`]) has Go's exact text:
//! each message must appear as a string literal passed to `throw` (or
//! `fatal`) in the runtime sources of both installed releases (Go 1.19 and
//! Go 1.23, `src/runtime/*.go`). A typo, a paraphrase or a message from
//! the wrong release fails here, without needing a crash to compare with.

mod common;

use gostack_spec::GoThrow;

/// The runtime's Go sources of a release, concatenated (tests excluded).
fn runtime_sources(release: &str) -> String {
    let dir = common::goroot(release).join("src/runtime");
    let mut all = String::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".go") && !name.ends_with("_test.go") {
            all += &std::fs::read_to_string(&path).unwrap();
        }
    }
    all
}

#[test]
fn every_throw_text_is_in_both_releases_runtime_sources() {
    for release in ["1.19", "1.23"] {
        let src = runtime_sources(release);
        let missing: Vec<&str> = GoThrow::ALL
            .iter()
            .map(|t| t.message())
            .filter(|m| {
                !src.contains(&format!("throw(\"{m}\")"))
                    && !src.contains(&format!("fatal(\"{m}\")"))
            })
            .collect();
        assert!(
            missing.is_empty(),
            "Go {release}'s runtime never throws these texts: {missing:#?}"
        );
    }
}

/// The check has teeth: a text Go does not throw is not found.
#[test]
fn a_paraphrase_is_not_found() {
    let src = runtime_sources("1.23");
    assert!(src.contains("throw(\"stack overflow\")"));
    assert!(!src.contains("throw(\"stack overflowed\")"));
}
