#![allow(dead_code)]
//! What the CLI's tests share: how the real `agm` runs in a test (a clean environment,
//! a home of its own, never the OS keychain, every Google address at the simulated
//! Google), and reading its output.

use std::path::Path;
use std::process::{Output, Stdio};

use tokio::process::Command;

/// `bin` (the agm under test) with nothing of the caller's environment: `home`, its
/// `data_dir`, `PATH`, `RUST_LOG=warn`, and the seal key in a file, never an OS keychain.
/// Output is captured; the process dies with its handle.
pub fn isolated(bin: &Path, home: &Path, data_dir: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("AGM_STORAGE__KEY_STORE", "file")
        .env("AGM_DATA_DIR", data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Points every Google address agm calls (Code Assist, OAuth, userinfo, the official
/// Gemini API) at the simulated Google at `base`.
pub fn at_sim(cmd: &mut Command, base: &str) {
    cmd.env("AGM_GOOGLE__CODE_ASSIST_ENDPOINTS", format!("[\"{base}\"]"))
        .env("AGM_GOOGLE__CODE_ASSIST_POOL_ENDPOINT", base)
        .env(
            "AGM_GOOGLE__OAUTH_AUTH_URL",
            format!("{base}/o/oauth2/v2/auth"),
        )
        .env("AGM_GOOGLE__OAUTH_TOKEN_URL", format!("{base}/token"))
        .env(
            "AGM_GOOGLE__USERINFO_URL",
            format!("{base}/oauth2/v2/userinfo"),
        )
        .env("AGM_GOOGLE__GEMINI_API_BASE", base);
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
