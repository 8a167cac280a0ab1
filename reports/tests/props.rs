//! Property tests of the run-folder readers: a folder whose files were cut, corrupted or
//! edited by hand (a copy of a real run's, mutated) is read or refused with an error that
//! names the file — never a panic — and what reads renders. `PROPTEST_CASES` sets the cases
//! (`scripts/props.sh` runs a million).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use reports::files;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000)
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smoke")
}

/// The fixture's files, the large samples file cut to its first lines.
fn seed_files() -> Vec<(&'static str, Vec<u8>)> {
    [
        files::SUMMARY,
        files::INTERVALS,
        files::PHASES,
        files::HOSTS,
        files::GENERATOR,
        files::AGENT_SAMPLES,
    ]
    .into_iter()
    .map(|f| {
        let mut b = std::fs::read(fixture().join(f)).unwrap();
        if f == files::AGENT_SAMPLES {
            let cut = b
                .iter()
                .enumerate()
                .filter(|(_, c)| **c == b'\n')
                .nth(40)
                .map_or(b.len(), |(i, _)| i + 1);
            b.truncate(cut);
        }
        (f, b)
    })
    .collect()
}

fn mutate(mut b: Vec<u8>, edits: &[(prop::sample::Index, u8, u8)]) -> Vec<u8> {
    for (at, op, byte) in edits {
        if b.is_empty() {
            break;
        }
        let i = at.index(b.len());
        match op % 4 {
            0 => b[i] = *byte,
            1 => b.truncate(i),
            2 => b.insert(i, *byte),
            // A digit changed: numbers that overflow, lengths that lie.
            _ => b[i] = b'0' + byte % 10,
        }
    }
    b
}

/// A private folder per test thread.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "reports-props-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The error of a reader names the file it read.
fn names(e: &reports::Error, file: &str) {
    let text = e.to_string();
    assert!(text.contains(file), "`{text}` does not name {file}");
}

proptest! {
    // A case that runs past 10 s is a hang: the test runs in a child process that is killed then.
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, timeout: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn props_each_reader_reads_or_names_the_file(
        which in 0usize..6,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        let (name, bytes) = seed_files().swap_remove(which);
        let dir = scratch("one");
        let path = dir.join(name);
        std::fs::write(&path, mutate(bytes, &edits)).unwrap();
        let r = match name {
            files::SUMMARY => reports::summary::Summary::read(&dir).map(drop),
            files::INTERVALS | files::PHASES => reports::hlog::read(&path).map(drop),
            files::HOSTS => reports::samples::read_hosts(&path).map(drop),
            files::GENERATOR => reports::health::read(&path).map(drop),
            _ => reports::samples::read_agent_samples(&path).map(drop),
        };
        if let Err(e) = r {
            names(&e, name);
        }
    }
}

proptest! {
    // Rendering draws every chart (~0.1 s a case): one case in 500, at least 20.
    #![proptest_config(ProptestConfig { cases: (cases() / 500).max(20), failure_persistence: None, timeout: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn props_a_damaged_folder_loads_and_renders_or_is_refused(
        which in 1usize..6,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<u8>()), 1..4),
    ) {
        let dir = scratch("folder");
        for (i, (name, bytes)) in seed_files().into_iter().enumerate() {
            let b = if i == which { mutate(bytes, &edits) } else { bytes };
            std::fs::write(dir.join(name), b).unwrap();
        }
        if let Ok(run) = reports::rundata::RunData::load(&dir) {
            let page = reports::html::page(&run);
            prop_assert!(page.ends_with("</html>\n"));
        }
    }
}
