//! The README's walkthrough, run verbatim: every `sh` block between the `walkthrough:begin` and
//! `walkthrough:end` markers of `README.md` is executed with bash (`set -euo pipefail`) and the real kubectl
//! against a real `ironnet up` process, so the documentation cannot drift from what the binary does.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{ironnet_up, repo_root};

const BEGIN: &str = "<!-- walkthrough:begin -->";
const END: &str = "<!-- walkthrough:end -->";

/// The shell script formed by the `sh` code blocks between the walkthrough markers, in order.
fn walkthrough_script(readme: &str) -> String {
    script_between(readme, BEGIN, END)
}

/// The shell script formed by the `sh` code blocks between the markers `begin` and `end`, in order.
pub fn script_between(readme: &str, begin: &str, end: &str) -> String {
    let start = readme
        .find(begin)
        .unwrap_or_else(|| panic!("README has the {begin} marker"))
        + begin.len();
    let end = readme[start..]
        .find(end)
        .unwrap_or_else(|| panic!("README has the {end} marker"))
        + start;
    let mut script = String::new();
    let mut in_block = false;
    for line in readme[start..end].lines() {
        match (in_block, line.trim_end()) {
            (false, "```sh") => in_block = true,
            (true, "```") => {
                in_block = false;
                script.push('\n');
            }
            (true, l) => {
                script.push_str(l);
                script.push('\n');
            }
            _ => {}
        }
    }
    assert!(!in_block, "unterminated code block in the walkthrough");
    script
}

#[test]
fn script_extraction_keeps_only_sh_blocks_between_the_markers() {
    let readme = "```sh\nnot this\n```\n<!-- walkthrough:begin -->\ntext\n```sh\na\nb\n```\n```yaml\nno\n```\n\
                  ```sh\nc\n```\n<!-- walkthrough:end -->\n```sh\nnor this\n```\n";
    assert_eq!(walkthrough_script(readme), "a\nb\n\nc\n\n");
}

fn run_script(script: &str, kubeconfig: &Path, home: &Path) -> std::process::Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\nset -x\n{script}"))
        .current_dir(repo_root())
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .output()
        .expect("bash runs")
}

#[test]
fn readme_walkthrough_runs_against_ironnet_up() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let script = walkthrough_script(&readme);
    assert!(script.contains("kubectl"), "the walkthrough drives kubectl");
    let up = ironnet_up();
    let home: PathBuf = up.dir().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = run_script(&script, &up.kubeconfig(), &home);
    assert!(
        out.status.success(),
        "walkthrough failed ({}):\n--- stdout\n{}\n--- stderr\n{}\n--- ironnet up log\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        up.log()
    );
}
