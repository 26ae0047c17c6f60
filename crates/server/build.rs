//! Embeds the git commit the binary is built from, for `ferrocast --version` and the
//! `ferrocast_build_info` metric: an operator looking at a misbehaving node must be able to tell
//! which code it runs.
//!
//! `FERROCAST_BUILD_COMMIT` wins when set (an image build has no `.git`: `docker build
//! --build-arg FERROCAST_BUILD_COMMIT=$(git rev-parse HEAD)`); otherwise `git rev-parse`, and
//! `unknown` when neither answers (a source tarball).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Watch `path` only if it exists: cargo treats a missing watched file as always changed.
fn watch(path: Option<String>) {
    if let Some(path) = path.filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=FERROCAST_BUILD_COMMIT");
    let commit = std::env::var("FERROCAST_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .map(|c| c.trim().to_owned())
        .or_else(|| {
            // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it points at (a
            // commit). Paths from git, so worktrees and packed refs work too.
            let git_path = |name: &str| git(&["rev-parse", "--path-format=absolute", "--git-path", name]);
            watch(git_path("HEAD"));
            watch(git(&["symbolic-ref", "-q", "HEAD"]).and_then(|branch| git_path(&branch)));
            watch(git_path("packed-refs"));
            git(&["rev-parse", "--short=12", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=FERROCAST_COMMIT={commit}");
}
