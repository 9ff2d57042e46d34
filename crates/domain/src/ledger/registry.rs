//! What a location's ledger is kept for: the DEA registration of the location, the products it
//! stocks and their lots (KAP-SPEC 9.1: records are kept per registered location; 9.2: the
//! content each record needs).

use std::fmt;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::quantity::ProductForm;
use super::text;
use crate::FieldError;
use crate::ids::{CsProductId, LocationId};

/// Ketamine and its isomers, esketamine included, are Schedule III with DEA controlled-substance
/// code 7285 [S58] (KAP-SPEC 8.4, 9).
pub const DEA_CODE_KETAMINE: &str = "7285";
pub const SCHEDULE: &str = "III";

/// A DEA registration number, as printed on a registration certificate or an invoice.
///
/// Parsing only normalises it (trimmed, upper case) and refuses what cannot be one (spaces,
/// punctuation, more than 20 characters): neither KAP-SPEC nor 21 CFR gives the number's layout or
/// a check digit, so no number is refused for its shape. [`DeaNumber::shape_warning`] compares it
/// with the layout secondary sources describe (two letters, seven digits, the last a check digit);
/// that is a warning to show, never a refusal, until the rule is confirmed from a primary source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct DeaNumber(String);

impl DeaNumber {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldError> {
        let s = raw.trim().to_ascii_uppercase();
        if s.is_empty() {
            return Err(FieldError::new(field, "enter the DEA registration number"));
        }
        if s.len() > 20 || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(FieldError::new(field, "a DEA registration number is letters and digits only, like AB1234563"));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A warning when the number does not have the commonly described layout: two letters, then
    /// seven digits whose last is the units digit of (d1 + d3 + d5) + 2 × (d2 + d4 + d6).
    /// UNVERIFIED: from secondary sources (pharmacy-calculation pages), not KAP-SPEC or 21 CFR;
    /// to be confirmed (see the ledger's report notes) before it may refuse anything.
    pub fn shape_warning(&self) -> Option<&'static str> {
        let b = self.0.as_bytes();
        let shaped =
            b.len() == 9 && b[..2].iter().all(u8::is_ascii_alphabetic) && b[2..].iter().all(u8::is_ascii_digit);
        if !shaped {
            return Some("this is not two letters and seven digits: check the number on the registration");
        }
        let d: Vec<u32> = b[2..].iter().map(|c| u32::from(c - b'0')).collect();
        let check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10;
        (check != d[6]).then_some("the last digit does not match the check digit: check the number for a typing error")
    }
}

impl TryFrom<String> for DeaNumber {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        Self::parse("dea_number", &s)
    }
}

impl From<DeaNumber> for String {
    fn from(d: DeaNumber) -> String {
        d.0
    }
}

impl fmt::Display for DeaNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A package NDC in one of the hyphenated 10-digit layouts 4-4-2, 5-3-2 or 5-4-1 (the same check as
/// the protocols' and the administration record's, [`crate::protocol`]). The package code matters:
/// SPRAVATO's kit of 2 devices (50458-028-02) and of 3 (50458-028-03) are different products
/// [S49] (KAP-SPEC 8.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Ndc(String);

impl Ndc {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldError> {
        let s = raw.trim();
        if crate::protocol::ndc_ok(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(FieldError::new(field, "write a package NDC as 4-4-2, 5-3-2 or 5-4-1 digits, e.g. 50458-028-02"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Ndc {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        Self::parse("ndc", &s)
    }
}

impl From<Ndc> for String {
    fn from(n: Ndc) -> String {
        n.0
    }
}

impl fmt::Display for Ndc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A lot (batch) number as printed on the container: 1 to 40 characters, no spaces — the same
/// rule as the dosing session's administration record, so the two always match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct LotNumber(String);

impl LotNumber {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldError> {
        let s = text(field, raw, 40)?;
        if s.chars().any(char::is_whitespace) {
            return Err(FieldError::new(field, "a lot number has no spaces"));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LotNumber {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        Self::parse("lot", &s)
    }
}

impl From<LotNumber> for String {
    fn from(l: LotNumber) -> String {
        l.0
    }
}

impl fmt::Display for LotNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Another registrant: the supplier of a receipt, or the receiver of a return or transfer. KAP-SPEC
/// 9.2 (21 CFR 1304.21(d), 1304.22): name, address and DEA registration number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Registrant {
    pub name: String,
    pub address: String,
    pub dea_number: DeaNumber,
}

impl Registrant {
    /// `fields` names the inputs where the registrant is used (`supplier.address`), so a refusal
    /// points at the right one.
    pub fn check(&self, fields: RegistrantFields) -> Result<(), FieldError> {
        text(fields.name, &self.name, 200)?;
        text(fields.address, &self.address, 500)?;
        Ok(())
    }
}

/// The field names of a [`Registrant`] where it is used, so a refusal names `supplier.address`.
#[derive(Debug, Clone, Copy)]
pub struct RegistrantFields {
    pub name: &'static str,
    pub address: &'static str,
}

pub const SUPPLIER_FIELDS: RegistrantFields = RegistrantFields { name: "supplier.name", address: "supplier.address" };
pub const RECIPIENT_FIELDS: RegistrantFields =
    RegistrantFields { name: "recipient.name", address: "recipient.address" };

/// A location's DEA registration: records are kept per registered location (KAP-SPEC 9.1,
/// 21 CFR 1304.21(b)); Form 41 needs the registrant's name, DEA number, address, phone and
/// contact [S56]. The storage note records where the stock is locked up: Schedule II–V stock at a
/// practitioner's office must be in a securely locked, substantially constructed cabinet [S58].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationRegistration {
    pub location: LocationId,
    pub dea_number: DeaNumber,
    /// The registrant (the practitioner or the clinic) as on the registration.
    pub registrant: String,
    pub address: String,
    pub phone: String,
    /// Form 41's contact person.
    pub contact: String,
    pub storage_note: String,
}

impl LocationRegistration {
    pub fn check(&self) -> Result<(), FieldError> {
        text("registrant", &self.registrant, 200)?;
        text("address", &self.address, 500)?;
        text("phone", &self.phone, 40)?;
        text("contact", &self.contact, 200)?;
        text("storage_note", &self.storage_note, 1000)?;
        Ok(())
    }
}

/// Which Schedule III substance a product holds; both are DEA code 7285 [S58].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Substance {
    /// Racemic ketamine HCl (injection, compounded tablets or nasal solution).
    Ketamine,
    /// SPRAVATO.
    Esketamine,
}

impl Substance {
    pub const fn name(self) -> &'static str {
        match self {
            Substance::Ketamine => "ketamine",
            Substance::Esketamine => "esketamine",
        }
    }
}

/// A product the location stocks: the name of the substance, its finished form and what one
/// commercial container holds (KAP-SPEC 9.2 receipt and inventory content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsProduct {
    pub id: CsProductId,
    pub name: String,
    pub substance: Substance,
    pub ndc: Ndc,
    pub form: ProductForm,
}

impl CsProduct {
    pub fn check(&self) -> Result<(), FieldError> {
        text("name", &self.name, 200)?;
        self.form.check()
    }
}

/// A lot of a product with the expiry printed on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lot {
    pub product: CsProductId,
    pub number: LotNumber,
    pub expiry: Date,
}

impl Lot {
    /// Past its expiry on `date` (the location's calendar date). The product may be used on its
    /// expiry date, as the dosing session's administration record allows.
    pub fn is_expired_on(&self, date: Date) -> bool {
        self.expiry < date
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dea_numbers_are_normalised_and_junk_refused() {
        assert_eq!(DeaNumber::parse("dea_number", " ap5836727 ").map(|d| d.to_string()), Ok("AP5836727".into()));
        for bad in ["", "AP 5836727", "AP-5836727", "ÄP5836727", "A234567890123456789012"] {
            assert_eq!(DeaNumber::parse("dea_number", bad).map_err(|e| e.field), Err("dea_number"), "{bad:?}");
        }
    }

    #[test]
    fn dea_number_layout_is_only_a_warning() {
        // 5+3+7 + 2×(8+6+2) = 47 → check digit 7.
        let ok = DeaNumber::parse("dea_number", "AP5836727").unwrap();
        assert_eq!(ok.shape_warning(), None);
        let typo = DeaNumber::parse("dea_number", "AP5836728").unwrap();
        assert!(typo.shape_warning().is_some());
        let odd = DeaNumber::parse("dea_number", "X12").unwrap();
        assert!(odd.shape_warning().is_some());
    }

    #[test]
    fn ndcs_and_lots_parse() {
        assert!(Ndc::parse("ndc", "50458-028-02").is_ok());
        assert_eq!(Ndc::parse("ndc", "50458-028").map_err(|e| e.field), Err("ndc"));
        assert_eq!(LotNumber::parse("lot", " KX2231 ").map(|l| l.to_string()), Ok("KX2231".into()));
        assert_eq!(LotNumber::parse("lot", "KX 2231").map_err(|e| e.field), Err("lot"));
        assert_eq!(LotNumber::parse("lot", "").map_err(|e| e.field), Err("lot"));
    }

    #[test]
    fn stored_json_with_a_bad_value_does_not_load() {
        assert!(serde_json::from_str::<Ndc>(r#""50458-028-02""#).is_ok());
        assert!(serde_json::from_str::<Ndc>(r#""nonsense""#).is_err());
        assert!(serde_json::from_str::<LotNumber>(r#""has space""#).is_err());
    }
}
