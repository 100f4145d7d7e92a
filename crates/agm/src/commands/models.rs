//! `agm models`: what the pool can serve, from each account's last model list (the
//! server refreshes them while it runs; `agm accounts quota` does it by hand), the
//! accounts offered each model, and the client names that resolve to it.

use std::collections::BTreeMap;
use std::path::Path;

use agm_server::routing::catalogue::{Listed, listing_of, load};
use agm_translate::models::ModelMap;
use clap::Args;
use serde::Serialize;

use crate::commands::{load_config, open_store};
use crate::output;

#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Print JSON, for scripts
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Model {
    id: String,
    display_name: Option<String>,
    /// Store ids of the accounts offered it.
    accounts: Vec<String>,
    /// Client names that resolve to it now.
    aliases: Vec<String>,
}

pub async fn run(explicit: Option<&Path>, args: ModelsArgs) -> anyhow::Result<()> {
    let (loaded, env) = load_config(explicit)?;
    let (_, store) = open_store(&loaded.config, &env).await?;
    let catalogue = load(&store, &agm_server::state::Shared::new(store.clone())).await?;
    let map = ModelMap::new(&loaded.config.models.map);
    let listed = listing_of(&map, &catalogue);
    let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut models: Vec<Model> = Vec::new();
    for Listed {
        id,
        display_name,
        accounts,
        resolves_to,
    } in listed
    {
        match resolves_to {
            Some(target) => aliases.entry(target).or_default().push(id),
            None => models.push(Model {
                id,
                display_name,
                accounts,
                aliases: Vec::new(),
            }),
        }
    }
    for model in &mut models {
        model.aliases = aliases.remove(&model.id).unwrap_or_default();
    }
    if args.json {
        return output::json(&models);
    }
    if catalogue.is_empty() {
        output::note(
            "no account's model list is known yet: `agm accounts quota` fetches them (a running `agm serve` does it by itself); until then, the built-in table's names:",
        );
    }
    let rows: Vec<Vec<String>> = models
        .into_iter()
        .map(|m| {
            vec![
                m.id,
                m.display_name.unwrap_or_default(),
                m.accounts.join(" "),
                m.aliases.join(" "),
            ]
        })
        .collect();
    output::table(&["MODEL", "NAME", "ACCOUNTS", "ALSO ANSWERS TO"], &rows);
    Ok(())
}
