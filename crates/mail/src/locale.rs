//! Instants as people read them in each [`Locale`]: the local date and time in the
//! provider's time zone, with the zone named so that nobody has to guess.
//!
//! Two locales need twelve month and seven weekday names each; a locale-data crate
//! (hundreds of locales) would cost more build time than these tables.

use agenda_entity::enums::Locale;
use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;

const EN_WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const EN_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const PT_WEEKDAYS: [&str; 7] = [
    "segunda-feira",
    "terça-feira",
    "quarta-feira",
    "quinta-feira",
    "sexta-feira",
    "sábado",
    "domingo",
];
const PT_MONTHS: [&str; 12] = [
    "janeiro",
    "fevereiro",
    "março",
    "abril",
    "maio",
    "junho",
    "julho",
    "agosto",
    "setembro",
    "outubro",
    "novembro",
    "dezembro",
];

/// `Wednesday, December 2, 2026 at 10:00 (America/Sao_Paulo)` or
/// `quarta-feira, 2 de dezembro de 2026 às 10:00 (America/Sao_Paulo)`.
pub fn format_instant(at: DateTime<Utc>, zone: Tz, locale: Locale) -> String {
    let local = at.with_timezone(&zone);
    let weekday = local.weekday().num_days_from_monday() as usize;
    let month = local.month0() as usize;
    let (day, year) = (local.day(), local.year());
    let time = format!("{:02}:{:02}", local.hour(), local.minute());
    match locale {
        Locale::En => format!(
            "{}, {} {day}, {year} at {time} ({zone})",
            EN_WEEKDAYS[weekday], EN_MONTHS[month]
        ),
        Locale::PtBr => format!(
            "{}, {day} de {} de {year} às {time} ({zone})",
            PT_WEEKDAYS[weekday], PT_MONTHS[month]
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_in_each_locale() {
        let at: DateTime<Utc> = "2026-12-02T13:00:00Z".parse().unwrap();
        let zone: Tz = "America/Sao_Paulo".parse().unwrap();
        assert_eq!(
            format_instant(at, zone, Locale::En),
            "Wednesday, December 2, 2026 at 10:00 (America/Sao_Paulo)"
        );
        assert_eq!(
            format_instant(at, zone, Locale::PtBr),
            "quarta-feira, 2 de dezembro de 2026 às 10:00 (America/Sao_Paulo)"
        );
    }
}
