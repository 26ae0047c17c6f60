//! Shared helpers of the SDK's integration tests: where the Node side lives, and running it.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// tests/conformance, with its pinned npm packages. Panics (never skips) when they are missing.
pub fn conformance_dir() -> PathBuf {
    let dir = repo_root().join("tests").join("conformance");
    for package in ["pusher", "pusher-js", "tweetnacl"] {
        assert!(
            dir.join("node_modules").join(package).join("package.json").exists(),
            "tests/conformance/node_modules/{package} is missing: run `make npm-deps` (npm ci in tests/conformance). \
             The SDK cross-checks against the official Node SDK refuse to skip."
        );
    }
    dir
}

/// The `node` executable (NODE env var or `node` on PATH). Panics when it does not run.
pub fn node() -> String {
    let node = std::env::var("NODE").unwrap_or_else(|_| "node".to_owned());
    let ok = Command::new(&node)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{node} --version` failed: Node.js 20+ is required for the SDK cross-checks"
    );
    node
}

/// Runs `node script` in tests/conformance with `input` on stdin; returns stdout parsed as JSON.
pub fn run_node_json(script: &str, input: &serde_json::Value) -> serde_json::Value {
    let dir = conformance_dir();
    let mut child = Command::new(node())
        .arg(script)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write node stdin");
    let out = child.wait_with_output().expect("node output");
    assert!(
        out.status.success(),
        "node {script} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "node {script} printed no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
