//! The bodies of Kapstone's fuzz targets (issue 9): questionnaire answers, clinical content files
//! and import files. Each takes arbitrary bytes and must never panic; where the code accepts the
//! input, the result is checked against what the domain promises (a PHQ-9 total is at most 27...).
//!
//! They live in the workspace, not in `fuzz/`, so that `cargo test` replays the committed corpus
//! (`tests/corpus.rs`) on stable Rust, and `cargo fuzz run <target>` (see `scripts/fuzz.sh`)
//! explores from the same corpus.

use kapstone_domain::eligibility::RuleSet;
use kapstone_domain::instruments::{cssrs, gad7, pcl5, phq9};
use kapstone_domain::journal::PromptSet;
use kapstone_domain::protocol::Protocol;
use kapstone_domain::rems_form::FormDefinition;
use kapstone_store::transfer;

/// A target's body: arbitrary bytes in, a panic if the code under test misbehaves.
pub type Target = fn(&[u8]);

/// The targets, by the name of their corpus folder.
pub const TARGETS: [(&str, Target); 3] = [
    ("questionnaire_answers", questionnaire_answers),
    ("content_files", content_files),
    ("import_files", import_files),
];

/// Answers as a scorer receives them after the API has read the JSON: the first byte picks the
/// instrument and the width of a value; each following byte (or 8 bytes) is one item, `0xFF`
/// (or `i64::MIN`) an unanswered one.
pub fn questionnaire_answers(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let ints: Vec<Option<i64>> = if pick & 0x80 == 0 {
        rest.iter().map(|&b| (b != 0xFF).then_some(i64::from(b as i8))).collect()
    } else {
        rest.chunks_exact(8)
            .map(|c| {
                let v = i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                (v != i64::MIN).then_some(v)
            })
            .collect()
    };
    match pick & 0x03 {
        0 => {
            if let Ok(s) = phq9::score(&ints) {
                assert_eq!(s.items.len(), 9);
                assert!(s.items.iter().all(|&i| i <= 3));
                assert!(s.total <= 27 && u32::from(s.total) == s.items.iter().map(|&i| u32::from(i)).sum::<u32>());
            }
        }
        1 => {
            if let Ok(s) = gad7::score(&ints) {
                assert_eq!(s.items.len(), 7);
                assert!(s.total <= 21 && u32::from(s.total) == s.items.iter().map(|&i| u32::from(i)).sum::<u32>());
            }
        }
        2 => {
            let cutoff = rest.first().copied().unwrap_or(33);
            if let Ok(s) = pcl5::score(&ints, cutoff) {
                assert_eq!(s.items.len(), 20);
                assert!(s.total <= 80 && u32::from(s.total) == s.items.iter().map(|&i| u32::from(i)).sum::<u32>());
            }
        }
        _ => {
            let answers: Vec<Option<bool>> = rest.iter().map(|&b| (b != 0xFF).then_some(b & 1 == 1)).collect();
            let _ = cssrs::score(&answers);
        }
    }
}

/// A clinical content file as an admin could upload or a release could ship it: the first byte
/// picks the kind (eligibility rules, protocol, journal prompts, REMS form), the rest is its text.
/// A file that parses must also pass (or be refused by) the kind's own check without a panic.
pub fn content_files(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    match pick % 4 {
        0 => {
            if let Ok(set) = serde_json::from_str::<RuleSet>(text) {
                let _ = set.check();
            }
        }
        1 => {
            let _ = Protocol::parse(text);
        }
        2 => {
            let _ = PromptSet::parse(text);
        }
        _ => {
            if let Ok(def) = serde_json::from_str::<FormDefinition>(text) {
                let _ = def.check();
            }
        }
    }
}

/// An export directory's files as `kapstone import` reads them: the first byte 0 means the rest
/// is a manifest; otherwise it picks a table and the rest is one line of that table's file. A row
/// that parses has one value per column.
pub fn import_files(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    if pick == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            let _ = transfer::parse_manifest(text, std::path::Path::new("manifest.json"));
        }
        return;
    }
    let table = &transfer::TABLES[usize::from(pick) % transfer::TABLES.len()];
    if let Ok(values) = transfer::parse_row(table, rest) {
        assert_eq!(values.len(), table.columns.len());
    }
}
