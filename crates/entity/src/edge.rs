//! Edge types: values as the API accepts them, limited to what every supported
//! database can store and what date arithmetic can handle.
//!
//! chrono parses years from -262143 to 262142, PostgreSQL stores none before 4713 BC,
//! and adding a day to chrono's last instant overflows. So instants and dates taken
//! from a request are limited to the years [`MIN_YEAR`]`..=`[`MAX_YEAR`] (RFC 3339's
//! four-digit years, without year 0): [`Timestamp`] for instants, [`CalendarDate`] for
//! local dates. A value outside the range fails deserialisation with a message that
//! starts with [`OUT_OF_RANGE`], which the API reports as `422 out_of_range` on the
//! field.
//!
//! Strings with NUL characters (`\u0000`, which PostgreSQL text cannot hold) are
//! rejected for every field at once by the API's extractors; see [`has_nul`].

use std::fmt;
use std::ops::Deref;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// The first supported year (1 AD).
pub const MIN_YEAR: i32 = 1;
/// The last supported year.
pub const MAX_YEAR: i32 = 9999;
/// The start of every deserialisation error for a value outside the supported range.
pub const OUT_OF_RANGE: &str = "out of range: ";

/// The supported range in words, for messages and the API document.
pub const INSTANT_RANGE: &str =
    "an RFC 3339 instant from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z";
pub const DATE_RANGE: &str = "a date YYYY-MM-DD from 0001-01-01 to 9999-12-31";

/// An instant as every response writes it, the API's one instant format: RFC 3339 in
/// UTC with `Z`, no fraction when it is whole seconds, else milli-, micro- or
/// nanoseconds as needed (`2026-12-01T09:00:00Z`, `2026-12-01T09:00:00.123456Z`).
/// It is chrono's serde output for `DateTime<Utc>`, so typed views and generic rows
/// agree; an API test checks every instant of the document's examples and of the
/// responses of a journey over the routes against it.
pub fn instant(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Whether a string holds a NUL character, which PostgreSQL text cannot store.
pub fn has_nul(value: &str) -> bool {
    value.contains('\0')
}

fn year_supported(year: i32) -> bool {
    (MIN_YEAR..=MAX_YEAR).contains(&year)
}

/// An instant (UTC) within the supported range.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The instant if its year is supported.
    pub fn new(value: DateTime<Utc>) -> Option<Self> {
        year_supported(value.year()).then_some(Timestamp(value))
    }

    pub fn get(self) -> DateTime<Utc> {
        self.0
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Deref for Timestamp {
    type Target = DateTime<Utc>;

    fn deref(&self) -> &DateTime<Utc> {
        &self.0
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(value: Timestamp) -> Self {
        value.0
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = DateTime::<Utc>::deserialize(deserializer)?;
        Timestamp::new(value).ok_or_else(|| {
            serde::de::Error::custom(format_args!("{OUT_OF_RANGE}must be {INSTANT_RANGE}"))
        })
    }
}

/// A calendar date within the supported range.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct CalendarDate(NaiveDate);

impl CalendarDate {
    /// The date if its year is supported.
    pub fn new(value: NaiveDate) -> Option<Self> {
        year_supported(value.year()).then_some(CalendarDate(value))
    }

    pub fn get(self) -> NaiveDate {
        self.0
    }
}

impl fmt::Debug for CalendarDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Deref for CalendarDate {
    type Target = NaiveDate;

    fn deref(&self) -> &NaiveDate {
        &self.0
    }
}

impl From<CalendarDate> for NaiveDate {
    fn from(value: CalendarDate) -> Self {
        value.0
    }
}

impl<'de> Deserialize<'de> for CalendarDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = NaiveDate::deserialize(deserializer)?;
        CalendarDate::new(value).ok_or_else(|| {
            serde::de::Error::custom(format_args!("{OUT_OF_RANGE}must be {DATE_RANGE}"))
        })
    }
}

#[cfg(feature = "openapi")]
mod openapi {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    use utoipa::openapi::{RefOr, Schema};

    use super::*;

    fn string(format: KnownFormat, description: &str, example: &str) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(format)))
            .description(Some(description))
            .examples([serde_json::Value::from(example)])
            .into()
    }

    impl utoipa::PartialSchema for Timestamp {
        fn schema() -> RefOr<Schema> {
            string(
                KnownFormat::DateTime,
                &format!("{INSTANT_RANGE}; other values are 422 `out_of_range`"),
                "2026-12-02T13:00:00Z",
            )
        }
    }

    impl utoipa::ToSchema for Timestamp {}

    impl utoipa::PartialSchema for CalendarDate {
        fn schema() -> RefOr<Schema> {
            string(
                KnownFormat::Date,
                &format!("{DATE_RANGE}; other values are 422 `out_of_range`"),
                "2026-12-02",
            )
        }
    }

    impl utoipa::ToSchema for CalendarDate {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn instant(raw: &str) -> Result<Timestamp, String> {
        serde_json::from_value(serde_json::Value::from(raw)).map_err(|e| e.to_string())
    }

    fn date(raw: &str) -> Result<CalendarDate, String> {
        serde_json::from_value(serde_json::Value::from(raw)).map_err(|e| e.to_string())
    }

    #[test]
    fn the_range_ends_are_inclusive() {
        assert!(instant("0001-01-01T00:00:00Z").is_ok());
        assert!(instant("9999-12-31T23:59:59.999999Z").is_ok());
        assert!(date("0001-01-01").is_ok() && date("9999-12-31").is_ok());
        for raw in [
            "0000-12-31T23:59:59Z",
            "-5000-01-01T00:00:00Z",
            "-262143-01-01T00:00:00Z",
            "+10000-01-01T00:00:00Z",
            "9999-12-31T23:59:59-01:00",
        ] {
            let err = instant(raw).unwrap_err();
            assert!(err.starts_with(OUT_OF_RANGE), "{raw}: {err}");
        }
        for raw in ["0000-01-01", "-262143-01-01", "+10000-01-01"] {
            let err = date(raw).unwrap_err();
            assert!(err.starts_with(OUT_OF_RANGE), "{raw}: {err}");
        }
        assert!(!instant("not a time").unwrap_err().starts_with(OUT_OF_RANGE));
    }

    proptest! {
        /// Every instant chrono can represent either is accepted with its year in
        /// range (and then survives a few days of arithmetic either way), or is
        /// refused as out of range; nothing panics.
        #[test]
        fn instants_in_range_or_refused(secs in DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp()) {
            let value = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
            let raw = serde_json::to_value(value).unwrap();
            match serde_json::from_value::<Timestamp>(raw) {
                Ok(t) => {
                    prop_assert!(year_supported(t.year()));
                    prop_assert!(t.checked_sub_signed(chrono::Duration::days(3)).is_some());
                    prop_assert!(t.checked_add_signed(chrono::Duration::days(3)).is_some());
                }
                Err(e) => {
                    prop_assert!(!year_supported(value.year()));
                    prop_assert!(e.to_string().starts_with(OUT_OF_RANGE));
                }
            }
        }

        #[test]
        fn dates_in_range_or_refused(days in NaiveDate::MIN.num_days_from_ce()..=NaiveDate::MAX.num_days_from_ce()) {
            let value = NaiveDate::from_num_days_from_ce_opt(days).unwrap();
            let raw = serde_json::to_value(value).unwrap();
            match serde_json::from_value::<CalendarDate>(raw) {
                Ok(d) => prop_assert!(year_supported(d.year())),
                Err(e) => {
                    prop_assert!(!year_supported(value.year()));
                    prop_assert!(e.to_string().starts_with(OUT_OF_RANGE));
                }
            }
        }

        #[test]
        fn nul_is_found_anywhere(prefix in any::<String>(), suffix in any::<String>()) {
            let with = format!("{prefix}\0{suffix}");
            prop_assert!(has_nul(&with));
            prop_assert_eq!(has_nul(&format!("{prefix}{suffix}")), prefix.contains('\0') || suffix.contains('\0'));
        }
    }
}
