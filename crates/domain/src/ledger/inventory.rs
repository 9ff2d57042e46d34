//! Inventories: the initial and biennial inventories of a location and any other count, what a
//! count line must hold, and when the next inventory is due (KAP-SPEC 9.2, 9.4; [S54]).

use std::collections::{BTreeMap, BTreeSet};

use jiff::ToSpan;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::Refusal;
use super::balance::{Bucket, StockKey};
use super::entry::{InventoryCount, InventoryKind, OpenedContainer, TakenAt};
use super::quantity::{Micrograms, ProductForm};
use super::registry::{CsProduct, LotNumber};
use crate::ids::{CsProductId, InventoryId, LocationId};

/// An opened container may be counted by an estimate, unless it holds more than 1,000 tablets or
/// capsules: then it is counted exactly ([S54], KAP-SPEC 9.2 inventory content).
pub const EXACT_COUNT_ABOVE_UNITS: u32 = 1000;

/// The biennial inventory is taken at least every 2 years after the previous inventory ([S54],
/// KAP-SPEC 9.2; TV-DEA-3).
pub const BIENNIAL_YEARS: i64 = 2;

/// The reminder comes at 23 months (KAP-SPEC 9.4 "biennial inventory reminder at 23 months").
pub const REMINDER_MONTHS: i64 = 23;

/// The content checks of one count line: opened containers hold no more than a full one, an
/// estimate only where the rule allows it, and `counted` is the sum of what was counted.
pub(crate) fn check_count(c: &InventoryCount, form: &ProductForm) -> Result<(), Refusal> {
    let counted = counted_amount(c.full_containers, &c.opened, form)?;
    if c.counted != counted {
        return Err(Refusal::new("invalid", "counted", format!("the count adds up to {counted}, not {}", c.counted)));
    }
    if c.expected.ug() < 0 {
        return Err(Refusal::new("invalid", "expected", "the ledger never expects less than nothing"));
    }
    Ok(())
}

/// Full containers plus the contents of the opened ones.
pub fn counted_amount(
    full_containers: u32,
    opened: &[OpenedContainer],
    form: &ProductForm,
) -> Result<Micrograms, Refusal> {
    let per_container = form.per_container().ok_or_else(|| Refusal::new("invalid", "product", "unknown size"))?;
    let mut total = per_container
        .checked_mul(full_containers)
        .ok_or_else(|| Refusal::new("invalid", "full_containers", "this quantity is too large"))?;
    for o in opened {
        let amount = o.measure.amount("opened", form)?;
        if amount > per_container {
            return Err(Refusal::new(
                "invalid",
                "opened",
                format!("an opened container holds at most {per_container}"),
            ));
        }
        if let ProductForm::Tablets { tablets_per_container, .. } = form
            && o.estimated
            && *tablets_per_container > EXACT_COUNT_ABOVE_UNITS
        {
            return Err(Refusal::new(
                "exact_count",
                "opened",
                format!(
                    "a container of more than {EXACT_COUNT_ABOVE_UNITS} tablets is counted exactly, not estimated (21 CFR 1304.11)"
                ),
            ));
        }
        total = total.checked_add(amount).ok_or_else(|| Refusal::new("invalid", "opened", "too large"))?;
    }
    Ok(total)
}

/// One lot as counted, as the person taking the inventory enters it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CountLine {
    pub product: CsProductId,
    pub lot: LotNumber,
    pub full_containers: u32,
    #[serde(default)]
    pub opened: Vec<OpenedContainer>,
}

/// The count entry for one line, against the lot's bucket as it stands: `expected` is the ledger's
/// balance now, so a change to the lot meanwhile makes the entry stale and it is refused.
pub fn count_detail(
    inventory: InventoryId,
    kind: InventoryKind,
    taken_at: TakenAt,
    line: &CountLine,
    product: &CsProduct,
    bucket: &Bucket,
) -> Result<InventoryCount, Refusal> {
    let counted = counted_amount(line.full_containers, &line.opened, &product.form)?;
    Ok(InventoryCount {
        inventory,
        kind,
        taken_at,
        full_containers: line.full_containers,
        opened: line.opened.clone(),
        counted,
        expected: bucket.balance(),
    })
}

/// The checks of a whole inventory before its lines are recorded: the initial inventory comes
/// once and first; a biennial inventory follows one; an initial or biennial inventory is a
/// complete record of everything on hand ([S54]), so every lot of the location with stock needs
/// a line (a zero line or none at all when nothing is on hand: a zero inventory).
pub fn check_inventory(
    location: LocationId,
    kind: InventoryKind,
    lines: &[CountLine],
    on_hand: &BTreeMap<StockKey, Micrograms>,
    last_full_inventory: Option<Date>,
) -> Result<(), Refusal> {
    match (kind, last_full_inventory) {
        (InventoryKind::Initial, Some(d)) => {
            return Err(Refusal::new(
                "count",
                "kind",
                format!("this location's initial inventory was taken on {d}: take a biennial inventory or a count"),
            ));
        }
        (InventoryKind::Biennial, None) => {
            return Err(Refusal::new("count", "kind", "take the location's initial inventory first"));
        }
        _ => {}
    }
    let mut seen = BTreeSet::new();
    for l in lines {
        if !seen.insert((l.product, l.lot.clone())) {
            return Err(Refusal::new("invalid", "lines", format!("lot {} is counted twice", l.lot)));
        }
    }
    if kind.is_full_inventory()
        && let Some(missing) = on_hand
            .iter()
            .filter(|(k, v)| k.location == location && v.ug() != 0)
            .find(|(k, _)| !seen.contains(&(k.product, k.lot.clone())))
    {
        return Err(Refusal::new(
            "count",
            "lines",
            format!("an inventory records everything on hand: lot {} ({}) is missing", missing.0.lot, missing.1),
        ));
    }
    Ok(())
}

/// Where a location stands with its inventories on a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum InventoryStatus {
    /// No inventory yet: the initial inventory is taken on the day the location first dispenses
    /// or administers ([S54]).
    InitialNeeded,
    Current {
        due_by: Date,
        remind_from: Date,
    },
    /// From 23 months after the last inventory (KAP-SPEC 9.4).
    DueSoon {
        due_by: Date,
    },
    /// Beyond 2 years (KAP-SPEC 9.4: "block 'inventory overdue' beyond 24 months").
    Overdue {
        due_by: Date,
    },
}

/// The last day the next biennial inventory may be taken (TV-DEA-3: 2024-03-15 → 2026-03-15).
pub fn next_biennial_due(last_full_inventory: Date) -> Date {
    last_full_inventory.checked_add(BIENNIAL_YEARS.years()).unwrap_or(Date::MAX)
}

/// The first day of the reminder.
pub fn reminder_from(last_full_inventory: Date) -> Date {
    last_full_inventory.checked_add(REMINDER_MONTHS.months()).unwrap_or(Date::MAX)
}

/// The location's inventory status on `today`, from its last initial or biennial inventory.
pub fn inventory_status(last_full_inventory: Option<Date>, today: Date) -> InventoryStatus {
    let Some(last) = last_full_inventory else { return InventoryStatus::InitialNeeded };
    let due_by = next_biennial_due(last);
    let remind_from = reminder_from(last);
    if today > due_by {
        InventoryStatus::Overdue { due_by }
    } else if today >= remind_from {
        InventoryStatus::DueSoon { due_by }
    } else {
        InventoryStatus::Current { due_by, remind_from }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::quantity::Measure;
    use jiff::civil::date;

    #[test]
    fn the_reminder_comes_at_23_months_and_overdue_after_24() {
        let last = date(2024, 3, 15);
        assert_eq!(reminder_from(last), date(2026, 2, 15));
        assert_eq!(
            inventory_status(Some(last), date(2026, 2, 14)),
            InventoryStatus::Current { due_by: date(2026, 3, 15), remind_from: date(2026, 2, 15) }
        );
        assert_eq!(
            inventory_status(Some(last), date(2026, 2, 15)),
            InventoryStatus::DueSoon { due_by: date(2026, 3, 15) }
        );
        assert_eq!(
            inventory_status(Some(last), date(2026, 3, 15)),
            InventoryStatus::DueSoon { due_by: date(2026, 3, 15) }
        );
        assert_eq!(
            inventory_status(Some(last), date(2026, 3, 16)),
            InventoryStatus::Overdue { due_by: date(2026, 3, 15) }
        );
        assert_eq!(inventory_status(None, date(2026, 3, 16)), InventoryStatus::InitialNeeded);
    }

    #[test]
    fn a_big_bottle_is_counted_exactly_but_a_small_one_may_be_estimated() {
        let big = ProductForm::Tablets { tablets_per_container: 1001, ug_per_tablet: Micrograms::from_mg(50) };
        let small = ProductForm::Tablets { tablets_per_container: 1000, ug_per_tablet: Micrograms::from_mg(50) };
        let estimate = [OpenedContainer { measure: Measure::Tablets(400), estimated: true }];
        let exact = [OpenedContainer { measure: Measure::Tablets(400), estimated: false }];
        assert_eq!(counted_amount(0, &estimate, &big).map_err(|e| e.field), Err("opened"));
        assert_eq!(counted_amount(0, &exact, &big), Ok(Micrograms::from_mg(20_000)));
        assert_eq!(counted_amount(1, &estimate, &small), Ok(Micrograms::from_mg(70_000)));
    }

    #[test]
    fn an_opened_container_holds_no_more_than_a_full_one() {
        let vial = ProductForm::Solution {
            strength_ug_per_ml: Micrograms::from_mg(50),
            ml_per_container: crate::ledger::Microlitres::from_ml(10),
        };
        let too_much =
            [OpenedContainer { measure: Measure::Volume(crate::ledger::Microlitres::from_ml(11)), estimated: true }];
        assert_eq!(counted_amount(0, &too_much, &vial).map_err(|e| e.field), Err("opened"));
    }
}
