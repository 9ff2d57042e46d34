//! The clinics' settings as parsed, by version. A saved version is never changed (a change is a
//! new version, `kapstone_store::clinics::save_settings`), so a page that has read the number of
//! the version in force with its other facts can take that version's settings from here instead
//! of reading and parsing its five JSON columns again. The number comes from the database on every
//! request, so a change saved through another server process is seen at once; the cache only
//! saves the parse.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kapstone_domain::ClinicId;
use kapstone_store::clinics::{self, ClinicSettings};
use kapstone_store::{Db, StoreError};

/// The newest parsed settings of each clinic seen by this process.
#[derive(Clone, Default)]
pub struct SettingsCache(Arc<Mutex<HashMap<ClinicId, Arc<ClinicSettings>>>>);

impl SettingsCache {
    /// The clinic's settings at `version` (`None`: none saved, the defaults, version 0), read from
    /// the database only when this process has not parsed that version yet.
    pub async fn at(&self, db: &Db, clinic: ClinicId, version: Option<i64>) -> Result<Arc<ClinicSettings>, StoreError> {
        let version = version.unwrap_or(0);
        if let Some(kept) = self.inner().get(&clinic).filter(|s| s.version == version) {
            return Ok(Arc::clone(kept));
        }
        // What is in force now: `version`, or a newer one saved since it was read.
        let read = Arc::new(clinics::current_settings(db, clinic).await?);
        let mut inner = self.inner();
        let newer = inner.get(&clinic).is_none_or(|kept| kept.version < read.version);
        if newer {
            inner.insert(clinic, Arc::clone(&read));
        }
        Ok(read)
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, HashMap<ClinicId, Arc<ClinicSettings>>> {
        // A panic while the map was held leaves it whole (each change is one insert).
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
