//! `agm doctor`: one line per check, each fine or saying what to do.

use std::path::Path;

use agm_server::ops::doctor::{Status, run_checks};
use anyhow::bail;

use super::load_config;
use crate::output;

pub async fn run(explicit: Option<&Path>) -> anyhow::Result<()> {
    let (loaded, env) = load_config(explicit)?;
    let data_dir = loaded.config.data_dir(&env);
    let mut checks = run_checks(&loaded, &data_dir, &env).await;
    checks.push(super::ide::doctor_check());
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in &checks {
        output::line(&format!(
            "{:<4}  {:<width$}  {}",
            c.status.label(),
            c.name,
            c.detail
        ));
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed > 0 {
        bail!("{failed} check(s) failed: see the FAIL lines above");
    }
    Ok(())
}
