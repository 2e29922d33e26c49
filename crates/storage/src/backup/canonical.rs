//! The engine-neutral form of a row: one JSON object per line, columns in the
//! entity's declaration order, each value in exactly one spelling.
//!
//! Values are decoded by the driver into Rust types chosen from the column's declared
//! type (so a SQLite BLOB and a PostgreSQL `uuid` both become a [`Uuid`]), then
//! written here; restore parses them back into typed [`sea_orm::Value`]s, so the
//! target's driver stores them exactly as the application itself would.

use std::fmt::Write as _;

use agenda_entity::catalog::TableInfo;
use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Timelike, Utc};
use sea_orm::sea_query::ColumnType;
use sea_orm::{QueryResult, Value};
use uuid::Uuid;

use super::BackupError;

/// How a column is read, written and restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Canonical hyphenated lower-case string.
    Uuid,
    /// `String`, `Text`, `Char` and the vocabularies (stored as short strings).
    Text,
    Bool,
    I16,
    I32,
    I64,
    /// A finite double, in the shortest form that reads back to the same value.
    F64,
    /// `YYYY-MM-DD`.
    Date,
    /// `HH:MM:SS`, with `.ffffff` only when there are fractional seconds.
    Time,
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`: UTC, always six fractional digits.
    Instant,
    /// The JSON value itself, object keys sorted, no insignificant whitespace.
    Json,
}

/// One column of a table as the backup handles it.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    pub kind: Kind,
}

/// The kind of a declared column type; `None` for types no entity uses yet (the
/// backup refuses to run rather than guess).
pub(crate) fn kind_of(ty: &ColumnType) -> Option<Kind> {
    Some(match ty {
        ColumnType::Uuid => Kind::Uuid,
        ColumnType::String(_) | ColumnType::Text | ColumnType::Char(_) => Kind::Text,
        ColumnType::Boolean => Kind::Bool,
        ColumnType::TinyInteger | ColumnType::SmallInteger => Kind::I16,
        ColumnType::Integer => Kind::I32,
        ColumnType::BigInteger => Kind::I64,
        ColumnType::Double => Kind::F64,
        ColumnType::Date => Kind::Date,
        ColumnType::Time => Kind::Time,
        ColumnType::TimestampWithTimeZone => Kind::Instant,
        ColumnType::Json | ColumnType::JsonBinary => Kind::Json,
        _ => return None,
    })
}

/// The columns of `table` with their kinds.
pub(crate) fn columns_of(table: &TableInfo) -> Result<Vec<Column>, BackupError> {
    table
        .columns
        .iter()
        .map(|c| match kind_of(&c.column_type) {
            Some(kind) => Ok(Column {
                name: c.name.clone(),
                kind,
            }),
            None => Err(BackupError::Refused(format!(
                "{}.{}: the column type {:?} has no backup form yet",
                table.name, c.name, c.column_type
            ))),
        })
        .collect()
}

/// An instant in the archive's form.
pub(crate) fn format_instant(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Appends `row` as one JSON object (without the newline) to `out`.
pub(crate) fn encode_row(
    row: &QueryResult,
    columns: &[Column],
    table: &str,
    out: &mut String,
) -> Result<(), BackupError> {
    out.push('{');
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_string(out, &column.name);
        out.push(':');
        encode_value(row, column, out).map_err(|e| {
            let mut err = BackupError::from(e);
            if let BackupError::Database { detail, .. } = &mut err {
                *detail = format!("reading {table}.{}: {detail}", column.name);
            }
            err
        })?;
    }
    out.push('}');
    Ok(())
}

fn encode_value(
    row: &QueryResult,
    column: &Column,
    out: &mut String,
) -> Result<(), sea_orm::DbErr> {
    let name = column.name.as_str();
    macro_rules! get {
        ($ty:ty) => {
            match row.try_get::<Option<$ty>>("", name)? {
                None => {
                    out.push_str("null");
                    return Ok(());
                }
                Some(v) => v,
            }
        };
    }
    match column.kind {
        Kind::Uuid => {
            let v = get!(Uuid);
            out.push('"');
            out.push_str(v.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
            out.push('"');
        }
        Kind::Text => push_string(out, &get!(String)),
        Kind::Bool => out.push_str(if get!(bool) { "true" } else { "false" }),
        Kind::I16 => write_display(out, get!(i16)),
        Kind::I32 => write_display(out, get!(i32)),
        Kind::I64 => write_display(out, get!(i64)),
        Kind::F64 => {
            let v = get!(f64);
            if !v.is_finite() {
                return Err(sea_orm::DbErr::Type(format!(
                    "{name}: {v} has no JSON form"
                )));
            }
            push_json(out, &serde_json::Value::from(v));
        }
        Kind::Date => out.push_str(&format_date(&get!(NaiveDate))),
        Kind::Time => out.push_str(&format_time(&get!(NaiveTime))),
        Kind::Instant => {
            let v = get!(DateTime<Utc>);
            out.push('"');
            out.push_str(&format_instant(&v));
            out.push('"');
        }
        Kind::Json => push_json(out, &get!(serde_json::Value)),
    }
    Ok(())
}

fn write_display(out: &mut String, v: impl std::fmt::Display) {
    let _ = write!(out, "{v}");
}

fn format_date(d: &NaiveDate) -> String {
    format!("\"{}\"", d.format("%Y-%m-%d"))
}

fn format_time(t: &NaiveTime) -> String {
    if t.nanosecond() == 0 {
        format!("\"{}\"", t.format("%H:%M:%S"))
    } else {
        format!("\"{}\"", t.format("%H:%M:%S%.6f"))
    }
}

/// A JSON string literal.
fn push_string(out: &mut String, s: &str) {
    // Serialising a &str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// A JSON value in canonical form: object keys sorted by their bytes, whatever the
/// engine's storage order (`jsonb` reorders keys, SQLite keeps the text as written),
/// and numbers as `serde_json` prints them.
fn push_json(out: &mut String, value: &serde_json::Value) {
    use serde_json::Value as J;
    match value {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => write_display(out, n),
        J::String(s) => push_string(out, s),
        J::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json(out, item);
            }
            out.push(']');
        }
        J::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_string(out, key);
                out.push(':');
                push_json(out, item);
            }
            out.push('}');
        }
    }
}

/// The typed value to bind for a canonical JSON value of `kind`.
pub(crate) fn decode_value(kind: Kind, value: &serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    if value.is_null() {
        return Ok(match kind {
            Kind::Uuid => Value::Uuid(None),
            Kind::Text => Value::String(None),
            Kind::Bool => Value::Bool(None),
            Kind::I16 => Value::SmallInt(None),
            Kind::I32 => Value::Int(None),
            Kind::I64 => Value::BigInt(None),
            Kind::F64 => Value::Double(None),
            Kind::Date => Value::ChronoDate(None),
            Kind::Time => Value::ChronoTime(None),
            Kind::Instant => Value::ChronoDateTimeUtc(None),
            Kind::Json => Value::Json(None),
        });
    }
    let text = || {
        value
            .as_str()
            .ok_or_else(|| format!("expected a string, got {value}"))
    };
    let integer = || {
        value
            .as_i64()
            .ok_or_else(|| format!("expected an integer, got {value}"))
    };
    Ok(match kind {
        Kind::Uuid => Value::Uuid(Some(
            Uuid::parse_str(text()?).map_err(|e| format!("bad UUID: {e}"))?,
        )),
        Kind::Text => Value::String(Some(text()?.to_owned())),
        Kind::Bool => match value {
            J::Bool(b) => Value::Bool(Some(*b)),
            _ => return Err(format!("expected true or false, got {value}")),
        },
        Kind::I16 => Value::SmallInt(Some(
            i16::try_from(integer()?).map_err(|_| format!("{value} is out of range"))?,
        )),
        Kind::I32 => Value::Int(Some(
            i32::try_from(integer()?).map_err(|_| format!("{value} is out of range"))?,
        )),
        Kind::I64 => Value::BigInt(Some(integer()?)),
        Kind::F64 => Value::Double(Some(
            value
                .as_f64()
                .ok_or_else(|| format!("expected a number, got {value}"))?,
        )),
        Kind::Date => Value::ChronoDate(Some(
            NaiveDate::parse_from_str(text()?, "%Y-%m-%d").map_err(|e| format!("bad date: {e}"))?,
        )),
        Kind::Time => Value::ChronoTime(Some(
            NaiveTime::parse_from_str(text()?, "%H:%M:%S%.f")
                .map_err(|e| format!("bad time: {e}"))?,
        )),
        Kind::Instant => Value::ChronoDateTimeUtc(Some(
            DateTime::parse_from_rfc3339(text()?)
                .map_err(|e| format!("bad instant: {e}"))?
                .with_timezone(&Utc),
        )),
        Kind::Json => Value::Json(Some(Box::new(value.clone()))),
    })
}

/// `created_at` in the manifest, in the archive's instant form.
pub(crate) mod instant_serde {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_instant(at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agenda_entity::catalog;

    #[test]
    fn every_catalog_column_has_a_backup_form() {
        for table in catalog::tables() {
            columns_of(&table).unwrap();
        }
    }

    #[test]
    fn json_is_canonical_whatever_the_key_order() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":[true,null,"x"],"c":{"z":1.5,"y":"é"}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{ "c" : {"y":"é", "z":1.5}, "a":[true, null, "x"], "b":1 }"#)
                .unwrap();
        let (mut x, mut y) = (String::new(), String::new());
        push_json(&mut x, &a);
        push_json(&mut y, &b);
        assert_eq!(x, r#"{"a":[true,null,"x"],"b":1,"c":{"y":"é","z":1.5}}"#);
        assert_eq!(x, y);
    }

    #[test]
    fn scalar_forms_round_trip() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T10:00:00.5+02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_instant(&at), "2026-11-23T08:00:00.500000Z");
        let t = NaiveTime::from_hms_opt(9, 30, 0).unwrap();
        assert_eq!(format_time(&t), "\"09:30:00\"");
        let d = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        assert_eq!(format_date(&d), "\"2026-03-08\"");

        let cases = [
            (
                Kind::Instant,
                serde_json::json!("2026-11-23T08:00:00.500000Z"),
                Value::ChronoDateTimeUtc(Some(at)),
            ),
            (
                Kind::Time,
                serde_json::json!("09:30:00"),
                Value::ChronoTime(Some(t)),
            ),
            (
                Kind::Date,
                serde_json::json!("2026-03-08"),
                Value::ChronoDate(Some(d)),
            ),
            (Kind::I32, serde_json::json!(-7), Value::Int(Some(-7))),
            (
                Kind::F64,
                serde_json::json!(-23.5505),
                Value::Double(Some(-23.5505)),
            ),
            (
                Kind::Bool,
                serde_json::json!(false),
                Value::Bool(Some(false)),
            ),
            (Kind::Uuid, serde_json::Value::Null, Value::Uuid(None)),
        ];
        for (kind, json, expected) in cases {
            assert_eq!(decode_value(kind, &json).unwrap(), expected, "{kind:?}");
        }
        // Doubles come back with the same bits (serde_json's `float_roundtrip`).
        let mut line = String::new();
        push_json(&mut line, &serde_json::Value::from(-23.554000000000002_f64));
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            decode_value(Kind::F64, &parsed).unwrap(),
            Value::Double(Some(-23.554000000000002))
        );
        assert!(decode_value(Kind::I16, &serde_json::json!(70000)).is_err());
        assert!(decode_value(Kind::Bool, &serde_json::json!(1)).is_err());
    }
}
