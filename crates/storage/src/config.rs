//! Reading typed settings from the environment (12-factor).
//!
//! A snapshot of the environment ([`Env`]) is taken once at startup, after the
//! optional `.env` file has been loaded; settings structs are parsed from it with the
//! helpers here, which turn a bad value into one [`ConfigError`] line naming the
//! variable and the expected form. The database settings live in
//! [`crate::db::DbSettings`]; the server's own in `agenda-api`'s `config` module.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A snapshot of environment variables.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Loads `.env` from the working directory (or a parent) when present, without
    /// overriding variables already set, then snapshots the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => {
                return Err(ConfigError::new(".env", format!("could not be read: {e}")));
            }
        }
        Ok(Self::from_process())
    }

    /// The current process environment, without reading `.env`.
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars().collect(),
        }
    }

    /// An environment made of the given pairs (for tests and tools).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Sets `name` to `value` (overriding the environment), or unsets it with
    /// `None`: for an explicit command-line argument that wins over a variable.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(value) => self.vars.insert(name.to_owned(), value.to_owned()),
            None => self.vars.remove(name),
        };
    }

    /// The raw value of `name`; empty values count as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// `name` parsed by `parse`, or `default` when unset. `expected` describes the
    /// accepted form for the error message.
    pub fn parsed<T>(
        &self,
        name: &'static str,
        default: T,
        expected: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => parse(raw.trim()).ok_or_else(|| ConfigError::invalid(name, raw, expected)),
        }
    }

    /// A whole number within `range`.
    pub fn number<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Copy + fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => match raw.trim().parse::<T>() {
                Ok(v) if range.contains(&v) => Ok(v),
                _ => Err(ConfigError::new(
                    name,
                    format!(
                        "is \"{}\"; expected a whole number from {} to {}",
                        raw.trim(),
                        range.start(),
                        range.end()
                    ),
                )),
            },
        }
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.parsed(name, default, "true or false", parse_bool)
    }

    /// A duration: whole seconds (`30`) or a number with a unit (`500ms`, `30s`, `5m`, `1h`).
    pub fn duration(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        self.parsed(
            name,
            default,
            "a duration such as 30 (seconds), 500ms, 30s, 5m or 1h",
            parse_duration,
        )
    }

    /// A string value or its default.
    pub fn string(&self, name: &'static str, default: &str) -> String {
        self.get(name)
            .map_or_else(|| default.to_owned(), |v| v.trim().to_owned())
    }
}

/// One bad setting: the variable and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(var: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            var,
            message: message.into(),
        }
    }

    fn invalid(var: &'static str, raw: &str, expected: &str) -> Self {
        Self::new(var, format!("is \"{}\"; expected {expected}", raw.trim()))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {} {}", self.var, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Parses `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (any case).
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Parses `30` (seconds), `500ms`, `30s`, `5m`, `1h`, `2d`.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: u64 = number.parse().ok()?;
    let duration = match unit.trim() {
        "" | "s" | "sec" | "secs" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" | "mins" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86_400)?),
        _ => return None,
    };
    Some(duration)
}

/// Formats a duration the way [`parse_duration`] reads it back (`30s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 || (d.as_secs() == 0 && !d.is_zero()) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "s", "-1", "1.5s", "10 parsecs", "ms5"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
    }

    #[test]
    fn errors_name_the_variable_and_the_form() {
        let env = Env::from_pairs([
            ("DB_POOL_SIZE", "abc"),
            ("DB_ECHO", "maybe"),
            ("DB_POOL_TIMEOUT", "soon"),
        ]);
        let e = env.number::<u32>("DB_POOL_SIZE", 5, 0..=1000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: DB_POOL_SIZE is \"abc\"; expected a whole number from 0 to 1000"
        );
        let e = env.flag("DB_ECHO", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: DB_ECHO is \"maybe\"; expected true or false"
        );
        assert!(
            env.duration("DB_POOL_TIMEOUT", Duration::from_secs(5))
                .unwrap_err()
                .to_string()
                .contains("500ms")
        );
        assert_eq!(env.number::<u32>("UNSET", 7, 0..=10).unwrap(), 7);
    }
}
