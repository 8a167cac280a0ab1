//! Property tests of what a user types: scenario files and `--set` overrides, valid ones
//! mutated and arbitrary ones, load or fail with an error that names a file — never a panic.
//! `PROPTEST_CASES` sets the cases (`scripts/props.sh` runs a million).

use std::path::{Path, PathBuf};

use harness::scenario::{ScenarioErrors, load_text};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000)
}

fn bundled() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut out: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let t = std::fs::read_to_string(&p).unwrap();
            (p, t)
        })
        .collect();
    out.sort();
    out
}

/// Every error names where it is (the file, or `--set` for an override), and says something.
fn check(path: &Path, r: Result<harness::scenario::Loaded, ScenarioErrors>) {
    if let Err(ScenarioErrors(errors)) = r {
        assert!(!errors.is_empty());
        for e in errors {
            assert!(e.file == path.display().to_string() || e.file == "--set", "{e:?}");
            assert!(!e.message.is_empty(), "{e:?}");
        }
    }
}

/// Characters that make up TOML, so that mutations reach past the tokenizer.
fn toml_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            '=', '[', ']', '{', '}', '"', ',', '.', '\n', ' ', '#', '-', '0', '9', 'e', '_'
        ]),
        any::<char>(),
    ]
}

proptest! {
    // A case that runs past 10 s is a hang: the test runs in a child process that is killed then.
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, timeout: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn props_mutated_scenarios_load_or_name_their_error(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..4, toml_char()), 1..6),
    ) {
        let all = bundled();
        let (path, text) = &all[which.index(all.len())];
        let mut chars: Vec<char> = text.chars().collect();
        for (at, op, c) in &edits {
            if chars.is_empty() {
                break;
            }
            let i = at.index(chars.len());
            match op {
                0 => chars[i] = *c,
                1 => { chars.remove(i); }
                2 => chars.insert(i, *c),
                // A whole line gone.
                _ => {
                    let start = chars[..i].iter().rposition(|c| *c == '\n').map_or(0, |p| p + 1);
                    let end = chars[i..].iter().position(|c| *c == '\n').map_or(chars.len(), |p| i + p);
                    chars.drain(start..end);
                }
            }
        }
        let text: String = chars.into_iter().collect();
        check(path, load_text(path, text, &[]));
    }

    #[test]
    fn props_any_overrides_apply_or_name_their_error(
        which in any::<prop::sample::Index>(),
        keys in prop::collection::vec("[a-z_]{1,12}(\\.[a-z_]{1,12}|\\[[0-9]{1,2}\\]){0,3}", 1..3),
        values in prop::collection::vec(prop_oneof![
            "[0-9]{1,6}", "-?[0-9]{1,3}\\.[0-9]{1,3}", "\"[a-z ]{0,8}\"", "[a-z]{1,8}",
            "\\[[0-9, ]{0,8}\\]", "\\{ [a-z]{1,5} = [0-9]{1,3} \\}", ".{0,12}",
        ], 1..3),
    ) {
        let all = bundled();
        let (path, text) = &all[which.index(all.len())];
        let sets: Vec<String> = keys.iter().zip(values.iter().cycle()).map(|(k, v)| format!("{k}={v}")).collect();
        check(path, load_text(path, text.clone(), &sets));
    }

    #[test]
    fn props_arbitrary_text_loads_or_names_its_error(text in ".{0,400}") {
        let path = Path::new("fuzz.toml");
        check(path, load_text(path, text, &[]));
    }
}

#[test]
fn every_bundled_scenario_loads_through_load_text() {
    for (path, text) in bundled() {
        if let Err(e) = load_text(&path, text, &[]) {
            panic!("{}: {e}", path.display());
        }
    }
}
