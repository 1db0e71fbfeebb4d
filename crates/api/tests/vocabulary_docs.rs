//! The vocabulary against what users read: the README's tables of reasons and conditions, and the names the Argo CD
//! health checks (`charts/crew-operator/health/*.lua`) compare with.

use crew_api::{ConditionType, Phase, Reason};
use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The rows of the table under the README heading `heading`, as cells (the name without its backticks first).
fn readme_table(heading: &str) -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(repository().join("README.md")).unwrap();
    let section = readme
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no {heading}"))
        .1;
    section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2) // header and separator
        .map(|line| {
            let mut cells: Vec<String> = line
                .trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_string())
                .collect();
            cells[0] = cells[0].trim_matches('`').to_string();
            cells
        })
        .collect()
}

#[test]
fn the_readme_lists_every_reason_with_its_event_type_and_meaning() {
    let rows = readme_table("#### Reasons");
    let listed: Vec<&str> = rows.iter().map(|row| row[0].as_str()).collect();
    let all: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        listed, all,
        "the README's reasons, in the order of Reason::ALL"
    );
    for row in &rows {
        let reason = Reason::parse(&row[0]).unwrap();
        assert_eq!(row[1], reason.event_type().as_str(), "{reason}");
        assert_eq!(row[2], reason.meaning(), "{reason}");
    }
}

#[test]
fn the_readme_lists_every_condition_type_with_its_meaning() {
    let rows = readme_table("#### Conditions");
    let listed: Vec<&str> = rows.iter().map(|row| row[0].as_str()).collect();
    let all: Vec<&str> = ConditionType::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        listed, all,
        "the README's conditions, in the order of ConditionType::ALL"
    );
    for row in &rows {
        let condition = ConditionType::parse(&row[0]).unwrap();
        let bad = if condition.abnormal_when_true() {
            "yes"
        } else {
            "no"
        };
        assert_eq!(row[1], bad, "{condition}");
        assert_eq!(row[2], condition.meaning(), "{condition}");
    }
}

/// `(file, key, name)` for every `key == "name"` or `key = "name"` in the Lua files of the health folder, for the
/// keys `phase`, `reason` and `type`.
fn lua_names() -> Vec<(String, String, String)> {
    let folder = repository().join("charts/crew-operator/health");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "lua") {
            continue;
        }
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        for key in ["phase", "reason", "type"] {
            for (at, _) in text.match_indices(key) {
                let before = text[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue; // part of a longer name
                }
                let rest = text[at + key.len()..].trim_start();
                let Some(rest) = rest
                    .strip_prefix("==")
                    .or_else(|| rest.strip_prefix('='))
                    .map(str::trim_start)
                    .and_then(|r| r.strip_prefix('"'))
                else {
                    continue;
                };
                if let Some((name, _)) = rest.split_once('"') {
                    found.push((file.clone(), key.to_string(), name.to_string()));
                }
            }
        }
    }
    found
}

#[test]
fn the_argo_cd_health_checks_use_the_vocabulary() {
    let names = lua_names();
    let checks = |file: &str| file != "test.lua";
    assert!(
        names
            .iter()
            .any(|(file, key, _)| checks(file) && key == "phase"),
        "the health checks compare phases: {names:?}"
    );
    assert!(
        names.iter().any(|(_, key, _)| key == "reason"),
        "their tests set reasons: {names:?}"
    );
    for (file, key, name) in &names {
        let known = match key.as_str() {
            "phase" => Phase::ALL.iter().any(|p| p.as_str() == name),
            "reason" => Reason::parse(name).is_some(),
            _ => ConditionType::parse(name).is_some(),
        };
        // The checks' own tests feed one made-up phase on purpose (the `Unknown` health).
        let made_up = file == "test.lua" && key == "phase" && name == "Exploded";
        assert!(
            known || made_up,
            "{file}: {key} {name:?} is not in the vocabulary"
        );
    }
}
