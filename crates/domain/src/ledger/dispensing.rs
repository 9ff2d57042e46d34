//! How a dosing session's administration becomes ledger entries.
//!
//! The session records `SessionEvent::AdministrationStarted(Administration { product, ndc, lot,
//! expiry, dose_mg, route_snomed })`. Alongside it the use case records a **draw** from the lot the
//! clinician chose: [`draw_for_administration`] checks that the lot, NDC and expiry are the ones
//! the administration record names, that the lot has not expired, and that at least the ordered
//! dose is drawn (the balance check is the bucket's). When the administration ends — at once for
//! an IM injection, at `AdministrationEnded` for an infusion or lozenge, at the last device (or an
//! early end) for SPRAVATO — [`administered_amount`] reads what was actually given from the
//! session (the dose, or the devices given × 28 mg), and [`settle_draw`] turns the draw into an
//! **administration** entry and, for what is left, a witnessed **waste** entry (TV-DEA-6:
//! drew 50 mg, gave 40 mg → administration 40 mg + waste 10 mg, not a Form 41 event).
//!
//! Until it is settled a draw is "in use" ([`super::Bucket::open_draws`]); a page can list
//! unsettled draws, and KAP-SPEC 2.1's stage 6 exit ("controlled-substance administration + waste
//! recorded") can be checked against them.

use jiff::civil::Date;

use super::entry::{AdministrationEntry, Draw, PatientOnRecord, Person, Waste, Witness};
use super::quantity::{Measure, Micrograms, Microlitres, ProductForm};
use super::registry::{CsProduct, Lot};
use super::{Refusal, text};
use crate::FieldError;
use crate::ids::{DosingSessionId, LedgerEntryId};
use crate::protocol::{DoseRule, Protocol};
use crate::session::{Administration, Session};

/// The draw for a session's administration record.
pub fn draw_for_administration(
    administration: &Administration,
    session: DosingSessionId,
    product: &CsProduct,
    lot: &Lot,
    drawn: Measure,
    today: Date,
) -> Result<Draw, Refusal> {
    let dose = Micrograms::from_mg_f64("dose_mg", administration.dose_mg)?;
    if administration.lot.trim() != lot.number.as_str() {
        return Err(Refusal::new(
            "invalid",
            "lot",
            format!("the administration record names lot {}", administration.lot.trim()),
        ));
    }
    if let Some(ndc) = administration.ndc.as_deref().map(str::trim).filter(|n| !n.is_empty())
        && ndc != product.ndc.as_str()
    {
        return Err(Refusal::new(
            "invalid",
            "ndc",
            format!("the administration record names NDC {ndc}, not {}", product.ndc),
        ));
    }
    if administration.expiry != lot.expiry {
        return Err(Refusal::new(
            "invalid",
            "expiry",
            format!("lot {} expires on {}, not {}", lot.number, lot.expiry, administration.expiry),
        ));
    }
    if lot.is_expired_on(today) {
        return Err(Refusal::new(
            "expired_lot",
            "lot",
            format!("lot {} expired on {}: do not use it", lot.number, lot.expiry),
        ));
    }
    let amount = drawn.amount("drawn", &product.form)?;
    if amount < dose {
        return Err(Refusal::new("invalid", "drawn", format!("draw at least the dose of {dose}; {amount} is drawn")));
    }
    Ok(Draw { session, measure: drawn, amount })
}

/// What the session actually gave, once its administration has ended (`None` before): the devices
/// or applications given for SPRAVATO and the compounded nasal spray (so a dose ended early
/// counts only what was given), else the recorded dose.
pub fn administered_amount(session: &Session, protocol: &Protocol) -> Result<Option<Micrograms>, FieldError> {
    let Some(a) = session.administration() else { return Ok(None) };
    if a.ended_at.is_none() {
        return Ok(None);
    }
    let given = u32::try_from(session.devices().len()).unwrap_or(u32::MAX);
    let amount = match &protocol.dose {
        DoseRule::Devices(r) => Micrograms::from_mg(i64::from(r.mg_per_device))
            .checked_mul(given)
            .ok_or_else(|| FieldError::new("devices", "too many devices"))?,
        DoseRule::Applications(r) => Micrograms::from_mg_f64("mg_per_application", r.mg_per_application)?
            .checked_mul(given)
            .ok_or_else(|| FieldError::new("devices", "too many applications"))?,
        DoseRule::MgPerKg(_) | DoseRule::FixedMgRange(_) => Micrograms::from_mg_f64("dose_mg", a.details.dose_mg)?,
    };
    Ok(Some(amount))
}

/// How the remainder of a draw was disposed of, and who saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasteAtAdministration {
    pub method: String,
    pub witness: Option<Witness>,
}

/// The entries that settle a draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub administration: AdministrationEntry,
    pub waste: Option<Waste>,
}

/// Everything [`settle_draw`] needs besides the draw.
#[derive(Debug, Clone)]
pub struct Given {
    pub session: DosingSessionId,
    pub patient: PatientOnRecord,
    pub administered_by: Person,
    pub amount: Micrograms,
    pub route_snomed: String,
}

/// The administration entry and, for any remainder, the waste entry. The witness rules (required,
/// licensed, not the person who gave the dose) are checked when the entries are appended
/// ([`super::Bucket::check`]).
pub fn settle_draw(
    draw_id: LedgerEntryId,
    draw: &Draw,
    product: &CsProduct,
    given: Given,
    waste: Option<WasteAtAdministration>,
) -> Result<Settlement, Refusal> {
    if given.session != draw.session {
        return Err(Refusal::new("invalid", "session", "this draw was for another dosing session"));
    }
    let administered = given.amount.positive("administered")?;
    let Some(remainder) = draw.amount.checked_sub(administered).filter(|r| r.ug() >= 0) else {
        return Err(Refusal::new(
            "exceeds_draw",
            "administered",
            format!("{administered} is more than the {} drawn", draw.amount),
        ));
    };
    let administration = AdministrationEntry {
        draw: draw_id,
        session: given.session,
        patient: given.patient,
        administered_by: given.administered_by,
        amount: administered,
        route_snomed: given.route_snomed,
    };
    if remainder == Micrograms::ZERO {
        return Ok(Settlement { administration, waste: None });
    }
    let Some(w) = waste else {
        return Err(Refusal::new(
            "invalid",
            "waste.method",
            format!("{remainder} is left of the draw: record how it was wasted, with a witness"),
        ));
    };
    let method = text("waste.method", &w.method, 500)?;
    Ok(Settlement {
        administration,
        waste: Some(Waste {
            draw: draw_id,
            measure: measure_for(remainder, &product.form),
            amount: remainder,
            method,
            witness: w.witness,
        }),
    })
}

/// The measure a person would use for `amount` of this form — mL of a solution, whole devices or
/// tablets — when it is exact; otherwise the amount in mg.
pub fn measure_for(amount: Micrograms, form: &ProductForm) -> Measure {
    let exact_div = |num: i128, den: i64| (den > 0 && num % i128::from(den) == 0).then(|| num / i128::from(den));
    let ug = i128::from(amount.ug());
    match *form {
        ProductForm::Solution { strength_ug_per_ml, .. } => exact_div(ug * 1000, strength_ug_per_ml.ug())
            .and_then(|ul| i64::try_from(ul).ok())
            .map_or(Measure::Amount(amount), |ul| Measure::Volume(Microlitres::from_ul(ul))),
        ProductForm::DeviceKit { ug_per_device, .. } => exact_div(ug, ug_per_device.ug())
            .and_then(|n| u32::try_from(n).ok())
            .map_or(Measure::Amount(amount), Measure::Devices),
        ProductForm::Tablets { ug_per_tablet, .. } => exact_div(ug, ug_per_tablet.ug())
            .and_then(|n| u32::try_from(n).ok())
            .map_or(Measure::Amount(amount), Measure::Tablets),
    }
}
