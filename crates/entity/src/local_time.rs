//! Local times of day in JSON as `HH:MM` (seconds accepted on input when zero-padded
//! `HH:MM:SS`, written only when not zero). They appear only in calendar rules, next
//! to the IANA time zone that gives them meaning.

use chrono::NaiveTime;
use serde::{Deserialize, Deserializer, Serializer};

fn parse(raw: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(raw, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(raw, "%H:%M:%S"))
        .ok()
}

fn format(time: &NaiveTime) -> String {
    if time.format("%S").to_string() == "00" {
        time.format("%H:%M").to_string()
    } else {
        time.format("%H:%M:%S").to_string()
    }
}

pub fn serialize<S: Serializer>(time: &NaiveTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(time))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<NaiveTime, D::Error> {
    let raw = String::deserialize(deserializer)?;
    parse(&raw).ok_or_else(|| {
        serde::de::Error::custom(format!("expected a local time as HH:MM, got \"{raw}\""))
    })
}

/// For `Option<NaiveTime>` fields.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(
        time: &Option<NaiveTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(t) => super::serialize(t, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<NaiveTime>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(deserialize_with = "super::deserialize")] NaiveTime);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(t)| t))
    }

    /// For `Option<Option<NaiveTime>>` update fields (see [`crate::patch`]).
    pub fn present<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<NaiveTime>>, D::Error> {
        deserialize(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hh_mm_round_trip() {
        let t = parse("09:30").unwrap();
        assert_eq!(format(&t), "09:30");
        assert_eq!(format(&parse("09:30:15").unwrap()), "09:30:15");
        assert!(parse("9h30").is_none() && parse("25:00").is_none());
    }
}
