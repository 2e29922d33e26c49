//! Field validators shared by the input types (`#[validate(custom(function = ...))]`).
//!
//! Each returns a [`ValidationError`] whose `code` is machine-readable and whose
//! `message` is a sentence a person can act on; the API passes both through.

use std::borrow::Cow;
use std::str::FromStr;

use validator::ValidationError;

fn invalid(code: &'static str, message: &'static str) -> ValidationError {
    ValidationError::new(code).with_message(Cow::Borrowed(message))
}

/// A URL-safe identifier: 3 to 63 lowercase ASCII letters, digits and single
/// hyphens, starting and ending with a letter or digit (`acme-clinic`).
pub fn slug(value: &str) -> Result<(), ValidationError> {
    let well_formed = (3..=63).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
        && !value.contains("--");
    if well_formed {
        Ok(())
    } else {
        Err(invalid(
            "slug",
            "must be 3-63 lowercase letters, digits or single hyphens, not starting or ending with a hyphen",
        ))
    }
}

/// An IANA time zone name such as `America/Sao_Paulo` or `UTC`.
pub fn time_zone(value: &str) -> Result<(), ValidationError> {
    chrono_tz::Tz::from_str(value).map(|_| ()).map_err(|_| {
        invalid(
            "time_zone",
            "must be an IANA time zone name such as America/Sao_Paulo",
        )
    })
}

/// Active ISO 4217 currency codes. Amounts are stored in each currency's minor unit.
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
    "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// An active ISO 4217 currency code in upper case (`BRL`, `EUR`, `USD`).
pub fn currency(value: &str) -> Result<(), ValidationError> {
    if ISO_4217.binary_search(&value).is_ok() {
        Ok(())
    } else {
        Err(invalid(
            "currency",
            "must be an ISO 4217 currency code in upper case, such as BRL or EUR",
        ))
    }
}

/// An ISO 3166-1 alpha-2 country code in upper case (`BR`, `PT`, `US`).
pub fn country(value: &str) -> Result<(), ValidationError> {
    if value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(invalid(
            "country",
            "must be an ISO 3166-1 alpha-2 country code in upper case, such as BR",
        ))
    }
}

/// A colour as `#rrggbb`.
pub fn hex_color(value: &str) -> Result<(), ValidationError> {
    let ok = value.len() == 7
        && value.starts_with('#')
        && value[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(invalid("hex_color", "must be a colour written as #rrggbb"))
    }
}

/// A machine key: 2 to 100 lowercase letters, digits, `_`, `-` and `.` (`payments.stripe`).
pub fn key(value: &str) -> Result<(), ValidationError> {
    let ok = (2..=100).contains(&value.len())
        && value.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "key",
            "must be 2-100 lowercase letters, digits, '_', '-' or '.'",
        ))
    }
}

/// A reference to a secret kept outside the database: `env:NAME`, where `NAME` is an
/// environment variable name. Never the secret itself.
pub fn secret_ref(value: &str) -> Result<(), ValidationError> {
    let ok = value.strip_prefix("env:").is_some_and(|name| {
        !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "secret_ref",
            "must reference a secret as env:NAME (an upper-case environment variable), never contain the secret",
        ))
    }
}

/// The last four digits of a card.
pub fn last4(value: &str) -> Result<(), ValidationError> {
    if value.len() == 4 && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(invalid("last4", "must be exactly 4 digits"))
    }
}

/// A payment processor's token for a saved payment method (`pm_1Nv…`, `card_…`):
/// printable ASCII without spaces. Never card data: a value that is a plausible card
/// number (13 to 19 digits, with or without spaces or dashes, passing the Luhn check)
/// is refused, so a primary account number cannot be stored by mistake.
pub fn processor_token(value: &str) -> Result<(), ValidationError> {
    let digits: Vec<u32> = value
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .map(|c| c.to_digit(10))
        .collect::<Option<_>>()
        .unwrap_or_default();
    if (13..=19).contains(&digits.len()) && luhn(&digits) {
        return Err(invalid(
            "card_number",
            "looks like a card number; send the payment processor's token for the card, never the card itself",
        ));
    }
    if value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(invalid(
            "processor_token",
            "must be the processor's token: printable characters without spaces",
        ))
    }
}

/// The Luhn check digit test over `digits` (most significant first).
fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| match (i % 2, d * 2) {
            (1, doubled) if doubled > 9 => doubled - 9,
            (1, doubled) => doubled,
            _ => d,
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A coupon code: 3 to 40 upper-case letters, digits, `_` or `-`.
pub fn coupon_code(value: &str) -> Result<(), ValidationError> {
    let ok = (3..=40).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "coupon_code",
            "must be 3-40 upper-case letters, digits, '_' or '-'",
        ))
    }
}

/// Text that is not empty once surrounding whitespace is removed.
pub fn not_blank(value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        Err(invalid("blank", "must not be blank"))
    } else {
        Ok(())
    }
}

/// A Brazilian tax id: a CPF (11 digits) or a CNPJ (14 digits), with or without the
/// usual punctuation, whose check digits are right.
pub fn tax_id(value: &str) -> Result<(), ValidationError> {
    let digits: Vec<u32> = value.chars().filter_map(|c| c.to_digit(10)).collect();
    let punctuation_only = value
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '/'));
    let ok = punctuation_only
        && match digits.len() {
            11 => cpf_is_valid(&digits),
            14 => cnpj_is_valid(&digits),
            _ => false,
        };
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "tax_id",
            "must be a valid CPF (11 digits) or CNPJ (14 digits)",
        ))
    }
}

fn all_same(digits: &[u32]) -> bool {
    digits.windows(2).all(|w| w[0] == w[1])
}

fn cpf_is_valid(d: &[u32]) -> bool {
    if all_same(d) {
        return false;
    }
    let check = |len: usize| {
        let sum: u32 = (0..len).map(|i| d[i] * (len as u32 + 1 - i as u32)).sum();
        let rest = (sum * 10) % 11;
        if rest == 10 { 0 } else { rest }
    };
    check(9) == d[9] && check(10) == d[10]
}

fn cnpj_is_valid(d: &[u32]) -> bool {
    if all_same(d) {
        return false;
    }
    const W1: [u32; 12] = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
    const W2: [u32; 13] = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
    let check = |weights: &[u32]| {
        let sum: u32 = weights.iter().zip(d).map(|(w, x)| w * x).sum();
        let rest = sum % 11;
        if rest < 2 { 0 } else { 11 - rest }
    };
    check(&W1) == d[12] && check(&W2) == d[13]
}

/// Keeps only the digits of a tax id, the form in which it is stored.
pub fn normalize_tax_id(value: &str) -> String {
    value.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_list_is_sorted_for_binary_search() {
        assert!(ISO_4217.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn slugs() {
        for ok in ["acme", "acme-clinic", "a1b", "x".repeat(63).as_str()] {
            assert!(slug(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Acme",
            "acme_clinic",
            "-acme",
            "acme-",
            "ac--me",
            "acmé",
            &"x".repeat(64),
        ] {
            assert!(slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_zones_and_currencies() {
        assert!(time_zone("America/Sao_Paulo").is_ok());
        assert!(time_zone("UTC").is_ok());
        assert!(time_zone("Mars/Olympus").is_err());
        assert!(time_zone("-03:00").is_err());
        assert!(currency("BRL").is_ok());
        assert!(currency("brl").is_err());
        assert!(currency("XXX").is_err());
    }

    #[test]
    fn small_formats() {
        assert!(country("BR").is_ok() && country("br").is_err() && country("BRA").is_err());
        assert!(
            hex_color("#1a2B3c").is_ok()
                && hex_color("1a2b3c").is_err()
                && hex_color("#12345g").is_err()
        );
        assert!(key("payments.stripe").is_ok() && key("Payments").is_err() && key("a").is_err());
        assert!(secret_ref("env:AGENDA_STRIPE_SECRET").is_ok());
        for token in ["pm_1NvQ2b2eZvKYlo2C", "card_123", "tok_visa", "1234"] {
            assert!(processor_token(token).is_ok(), "{token}");
        }
        for card in [
            "4242424242424242",
            "4242 4242 4242 4242",
            "5555-5555-5555-4444",
            "378282246310005",
        ] {
            assert_eq!(
                processor_token(card).unwrap_err().code,
                "card_number",
                "{card}"
            );
        }
        // Digits that fail the Luhn check are a token like any other.
        assert!(processor_token("4242424242424241").is_ok());
        assert!(processor_token("pm with spaces").is_err());
        for bad in ["sk_live_123", "env:", "env:lower", "vault:x"] {
            assert!(secret_ref(bad).is_err(), "{bad}");
        }
        assert!(last4("4242").is_ok() && last4("424").is_err() && last4("42a2").is_err());
        assert!(
            coupon_code("WELCOME-10").is_ok()
                && coupon_code("welcome").is_err()
                && coupon_code("AB").is_err()
        );
    }

    #[test]
    fn tax_ids() {
        assert!(tax_id("529.982.247-25").is_ok());
        assert!(tax_id("52998224725").is_ok());
        assert!(tax_id("529.982.247-24").is_err());
        assert!(tax_id("111.111.111-11").is_err());
        assert!(tax_id("11.222.333/0001-81").is_ok());
        assert!(tax_id("11.222.333/0001-80").is_err());
        assert!(tax_id("1234").is_err());
        assert!(tax_id("529 982 247 25").is_err());
        assert_eq!(normalize_tax_id("11.222.333/0001-81"), "11222333000181");
    }
}
