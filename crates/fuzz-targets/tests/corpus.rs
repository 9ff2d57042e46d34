//! Replays every committed input — the named seeds (`fuzz/seeds/<target>/`: real content files,
//! real export lines, hand-made answers) and what the fuzzer kept (`fuzz/corpus/<target>/`,
//! minimised, inputs up to 1 KiB) — through its target, so they stay checked on every
//! `cargo test`, on stable Rust.

use std::path::PathBuf;

use kapstone_fuzz_targets::TARGETS;

fn dir(kind: &str, target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz").join(kind).join(target)
}

fn corpus_dir(target: &str) -> PathBuf {
    dir("seeds", target)
}

#[test]
fn the_committed_corpus_runs_without_a_panic() {
    for (name, run) in TARGETS {
        let mut files = [0usize; 2];
        for (k, kind) in ["seeds", "corpus"].into_iter().enumerate() {
            let dir = dir(kind, name);
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                // A panic names the input that caused it.
                let outcome = std::panic::catch_unwind(|| run(&data));
                assert!(outcome.is_ok(), "{name}: {} panicked", path.display());
                files[k] += 1;
            }
        }
        assert!(files[0] >= 3 && files[1] >= 10, "{name}: {files:?} seeds and corpus inputs; run scripts/fuzz.sh");
    }
}

#[test]
fn the_shipped_content_files_are_in_the_seed_corpus() {
    // The fuzzer starts from the real files, so it explores near valid content.
    let dir = corpus_dir("content_files");
    let seeds: Vec<Vec<u8>> =
        std::fs::read_dir(&dir).unwrap().map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect();
    let rules = include_bytes!("../../../content/eligibility/rules.json");
    assert!(seeds.iter().any(|s| s.first() == Some(&0) && &s[1..] == rules), "rules.json seed");
}

#[test]
fn targets_check_what_they_accept() {
    // A valid PHQ-9 passes the target's own checks (so the checks can run at all).
    let mut phq9 = vec![0u8];
    phq9.extend([1u8, 2, 3, 0, 1, 2, 3, 0, 1]);
    kapstone_fuzz_targets::questionnaire_answers(&phq9);
    // An empty object misses every column.
    let tables = &kapstone_store::transfer::TABLES;
    assert!(kapstone_store::transfer::parse_row(&tables[1], b"{}").is_err());
    // The `row-<table>` seeds are real lines of the demo clinic's export: each still parses as
    // the table its first byte picks, so the fuzzer starts from valid rows of every table.
    let mut real_rows = 0;
    for entry in std::fs::read_dir(corpus_dir("import_files")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(table_name) = name.strip_prefix("row-demo-") else { continue };
        let data = std::fs::read(&path).unwrap();
        let table = &tables[usize::from(data[0]) % tables.len()];
        assert_eq!(table.name, table_name, "{name} picks its own table");
        let values = kapstone_store::transfer::parse_row(table, &data[1..]);
        assert_eq!(values.map(|v| v.len()).map_err(|e| format!("{name}: {e}")), Ok(table.columns.len()));
        real_rows += 1;
    }
    assert!(real_rows >= 20, "{real_rows} demo rows in the seed corpus");
}
