//! The README's configuration table is `Config::VARIABLES`, row for row: a variable added in
//! code but not documented (or documented but gone) fails here with the table to paste.

use phoenix_common::config::Config;

fn rendered() -> String {
    Config::VARIABLES
        .iter()
        .map(|(var, default, meaning)| {
            let default = if default.starts_with('(') { (*default).to_owned() } else { format!("`{default}`") };
            format!("| `{var}` | {default} | {meaning} |")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_readme_configuration_table_lists_every_variable() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let header = "| variable | default | meaning |\n|---|---|---|\n";
    let start = readme.find(header).expect("the README has the configuration table") + header.len();
    let table: Vec<&str> = readme[start..].lines().take_while(|l| l.starts_with('|')).collect();
    let expected = rendered();
    assert_eq!(table.join("\n"), expected, "README.md's configuration table is stale; replace it with:\n{expected}\n");
}
