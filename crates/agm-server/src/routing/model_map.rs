//! The model map in force: `[models.map]` as loaded, replaced while the server runs
//! when the console changes it (requests read it once each).

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use agm_translate::models::ModelMap;

pub struct LiveModelMap(RwLock<Arc<ModelMap>>);

impl LiveModelMap {
    pub fn new(map: ModelMap) -> LiveModelMap {
        LiveModelMap(RwLock::new(Arc::new(map)))
    }

    /// The map in force now.
    pub fn get(&self) -> Arc<ModelMap> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the user's `[models.map]` entries (deprecations kept).
    pub fn set_user_map(&self, overrides: &BTreeMap<String, String>) {
        let mut guard = self.0.write().unwrap_or_else(PoisonError::into_inner);
        *guard = Arc::new(guard.with_user_map(overrides));
    }

    /// Forwards upstream ids Google reports as deprecated to their replacements.
    pub fn set_deprecations(&self, deprecated: BTreeMap<String, String>) {
        let mut guard = self.0.write().unwrap_or_else(PoisonError::into_inner);
        *guard = Arc::new((**guard).clone().with_deprecations(deprecated));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_user_map_applies_at_once_and_keeps_deprecations() {
        let live = LiveModelMap::new(ModelMap::new(&BTreeMap::new()));
        live.set_deprecations(BTreeMap::from([(
            "gemini-old".to_owned(),
            "gemini-new".to_owned(),
        )]));
        let before = live.get();
        live.set_user_map(&BTreeMap::from([(
            "my-model".to_owned(),
            "gemini-old".to_owned(),
        )]));
        assert_eq!(live.get().configured("my-model"), Some("gemini-old"));
        assert_eq!(live.get().resolve("my-model"), "gemini-new");
        assert_eq!(
            before.configured("my-model"),
            None,
            "a request keeps its own"
        );
    }
}
