//! The registry: each location's DEA registration and ledger settings, the products the clinic
//! stocks and their lots.

use kapstone_domain::FieldError;
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::ids::{CsProductId, LocationId};
use kapstone_domain::ledger::{
    CsProduct, DeaNumber, LedgerSettings, LocationRegistration, Lot, Ndc, ProductForm, RetentionPolicy, Substance,
};
use kapstone_store::ledger as store;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Registered, lot_of, place, places, product_of, registered};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// A location's registration as entered, with the settings that may differ per state.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationInput {
    pub dea_number: String,
    pub registrant: String,
    pub address: String,
    pub phone: String,
    pub contact: String,
    pub storage_note: String,
    /// CONFIG-DEFAULT on (KAP-SPEC 9.2).
    #[serde(default)]
    pub waste_witness_required: Option<bool>,
    /// At least 2 (21 CFR 1304.04(a)); longer where the state requires.
    #[serde(default)]
    pub retention_years: Option<u16>,
    /// Days the DEA field office is closed besides weekends (for the 1-business-day notice).
    #[serde(default)]
    pub holidays: Option<Vec<jiff::civil::Date>>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RegistrationView {
    pub location_id: Uuid,
    pub location_name: String,
    pub registration: LocationRegistration,
    pub settings: LedgerSettings,
    pub settings_version: i64,
    /// A DEA number whose layout or check digit looks wrong: a warning, never a refusal.
    pub dea_number_warning: Option<&'static str>,
}

fn view(location_name: String, r: Registered) -> RegistrationView {
    RegistrationView {
        location_id: r.registration.location.as_uuid(),
        location_name,
        dea_number_warning: r.registration.dea_number.shape_warning(),
        registration: r.registration,
        settings: r.settings,
        settings_version: r.version,
    }
}

/// Records or replaces a location's registration and settings (a new settings version).
pub async fn save_registration(
    state: &AppState,
    user: &CurrentUser,
    location: Uuid,
    input: RegistrationInput,
) -> Result<RegistrationView, AppError> {
    let place = place(state, user, location).await?;
    let registration = LocationRegistration {
        location: LocationId::from_uuid(location),
        dea_number: DeaNumber::parse("dea_number", &input.dea_number)?,
        registrant: input.registrant.trim().to_owned(),
        address: input.address.trim().to_owned(),
        phone: input.phone.trim().to_owned(),
        contact: input.contact.trim().to_owned(),
        storage_note: input.storage_note.trim().to_owned(),
    };
    registration.check()?;
    // What the request leaves out keeps its stored value (the page does not send the holidays).
    let mut settings = match store::registration(&state.db, user.clinic.as_uuid(), location).await? {
        Some(row) => super::registered(&row)?.settings,
        None => LedgerSettings::default(),
    };
    if let Some(w) = input.waste_witness_required {
        settings.waste_witness_required = w;
    }
    if let Some(y) = input.retention_years {
        settings.retention = RetentionPolicy::new(y)?;
    }
    if let Some(h) = input.holidays {
        if h.len() > 100 {
            return Err(FieldError::new("holidays", "at most 100 days").into());
        }
        settings.holidays = h.into_iter().collect();
    }
    let body = serde_json::to_string(&registration).map_err(|e| AppError::Internal(e.into()))?;
    let settings_json = serde_json::to_string(&settings).map_err(|e| AppError::Internal(e.into()))?;
    let now = kapstone_domain::UtcTs::now();
    let mut tx = state.db.begin().await?;
    let version = store::save_registration(
        &mut tx,
        user.clinic.as_uuid(),
        location,
        &body,
        &settings_json,
        user.id.as_uuid(),
        now,
    )
    .await?;
    let mut e = user.event(AuditAction::LedgerRegistryChanged, "cs_location", Outcome::Success);
    e.entity_id = Some(location.to_string());
    e.reason = Some(format!(
        "registration {}; settings v{version} (waste witness {}, retention {} y)",
        registration.dea_number,
        if settings.waste_witness_required { "required" } else { "not required" },
        settings.retention.years()
    ));
    kapstone_store::audit::append(&mut tx, &e).await?;
    let out = view(place.name, Registered { registration, settings, version, updated_at: now });
    tx.commit_answering(&out).await?;
    Ok(out)
}

/// A product as entered.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub name: String,
    pub substance: Substance,
    pub ndc: String,
    pub form: ProductForm,
}

pub async fn add_product(state: &AppState, user: &CurrentUser, input: ProductInput) -> Result<CsProduct, AppError> {
    let product = CsProduct {
        id: CsProductId::new(),
        name: input.name.trim().to_owned(),
        substance: input.substance,
        ndc: Ndc::parse("ndc", &input.ndc)?,
        form: input.form,
    };
    product.check()?;
    let body = serde_json::to_string(&product).map_err(|e| AppError::Internal(e.into()))?;
    let mut tx = state.db.begin().await?;
    store::insert_product(
        &mut tx,
        user.clinic.as_uuid(),
        product.id.as_uuid(),
        product.ndc.as_str(),
        &product.name,
        &body,
    )
    .await?;
    let mut e = user.event(AuditAction::LedgerRegistryChanged, "cs_product", Outcome::Success);
    e.entity_id = Some(product.id.to_string());
    e.reason = Some(format!("product NDC {} added", product.ndc));
    kapstone_store::audit::append(&mut tx, &e).await?;
    tx.commit_answering(&product).await?;
    Ok(product)
}

/// A lot as entered: stock already on the shelf is registered before the initial inventory
/// counts it (a lot that arrives later is registered by its receipt).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LotInput {
    pub product: Uuid,
    pub lot: String,
    pub expiry: jiff::civil::Date,
}

pub async fn add_lot(state: &AppState, user: &CurrentUser, input: LotInput) -> Result<Lot, AppError> {
    let number = kapstone_domain::ledger::LotNumber::parse("lot", &input.lot)?;
    let mut tx = state.db.begin().await?;
    if store::product_in(&mut tx, user.clinic.as_uuid(), input.product).await?.is_none() {
        return Err(FieldError::new("product", "no such product in this clinic").into());
    }
    store::ensure_lot(&mut tx, input.product, number.as_str(), &input.expiry.to_string()).await.map_err(
        |e| match e {
            kapstone_store::StoreError::Conflict(_) => {
                AppError::Invalid(FieldError::new("expiry", format!("lot {number} is recorded with another expiry")))
            }
            other => other.into(),
        },
    )?;
    let mut e = user.event(AuditAction::LedgerRegistryChanged, "cs_product", Outcome::Success);
    e.entity_id = Some(input.product.to_string());
    e.reason = Some(format!("lot {number} (expires {})", input.expiry));
    kapstone_store::audit::append(&mut tx, &e).await?;
    let out = Lot { product: CsProductId::from_uuid(input.product), number, expiry: input.expiry };
    tx.commit_answering(&out).await?;
    Ok(out)
}

/// Everything the registry holds for the clinic.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Registry {
    pub locations: Vec<LocationEntry>,
    pub products: Vec<CsProduct>,
    pub lots: Vec<Lot>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LocationEntry {
    pub location_id: Uuid,
    pub name: String,
    pub registration: Option<RegistrationView>,
}

/// The registry (a read of the ledger's reference data: not patient data, but audited with the
/// rest of the ledger's reads by the caller when shown).
pub async fn registry(state: &AppState, user: &CurrentUser) -> Result<Registry, AppError> {
    let clinic = user.clinic.as_uuid();
    let regs = store::registrations(&state.db, clinic).await?;
    let mut locations = Vec::new();
    for p in places(&state.db, user).await? {
        let registration = match regs.iter().find(|r| r.location_id == p.id) {
            Some(r) => Some(view(p.name.clone(), registered(r)?)),
            None => None,
        };
        locations.push(LocationEntry { location_id: p.id, name: p.name, registration });
    }
    let products = store::products(&state.db, clinic).await?.iter().map(product_of).collect::<Result<_, _>>()?;
    let lots = store::lots(&state.db, clinic).await?.iter().map(lot_of).collect::<Result<_, _>>()?;
    Ok(Registry { locations, products, lots })
}
