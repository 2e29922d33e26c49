//! Provider search: the marketplace's "find a provider" list.
//!
//! A provider is listed when its `provider_settings` row says it accepts bookings,
//! its user is active, and it has at least one active offering (an active own
//! `services` row, or an active `provider_services` row of an active template) that
//! passes the filters. Results are ordered by rating (best first, unrated last), then
//! provider id, and keyset-paginated with a hard page cap.
//!
//! **Two statements per call**, whatever the page size: the page of providers (all
//! filters as `EXISTS` over the offerings), then the matching offerings of those
//! providers grouped by name (skipped when the page is empty). Both filter on
//! `organization_id = <scope>` in every table they read.

use sea_orm::ConnectionTrait;
use serde::Serialize;
use uuid::Uuid;

use crate::error::StorageError;
use crate::repo::analytics::{Params, Rating, get};
use crate::repo::resource::{Page, page_size};
use crate::tenant::TenantScope;

/// The shortest search text (after trimming), in characters.
pub const MIN_TEXT_CHARS: usize = 2;
/// The longest search text, in characters.
pub const MAX_TEXT_CHARS: usize = 100;

/// What a search asks for. Every filter is optional; all given filters must hold.
#[derive(Debug, Clone, Default)]
pub struct ProviderQuery {
    /// Offerings whose category belongs to this niche.
    pub niche_id: Option<Uuid>,
    /// Offerings in this category or in a direct subcategory of it.
    pub category_id: Option<Uuid>,
    /// Case-insensitive substring of an offering's name (the template's name for a
    /// provider service) or of the business name. Trimmed; blank means no filter;
    /// otherwise at least [`MIN_TEXT_CHARS`] characters. `%` and `_` match literally.
    pub text: Option<String>,
    /// The provider's city, case-insensitive, exact after trimming.
    pub city: Option<String>,
    /// Minimum average rating (1..=5) of approved reviews; unrated providers fail it.
    pub min_rating: Option<u8>,
    /// Page size, clamped to `1..=MAX_PAGE_SIZE` (default
    /// [`DEFAULT_PAGE_SIZE`](super::resource::DEFAULT_PAGE_SIZE)).
    pub limit: Option<u64>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

/// An offering name of a provider that matches the search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceMatch {
    pub name: String,
    /// The lowest price among the provider's matching offerings of that name, in the
    /// organization's currency.
    pub min_price_cents: i64,
}

/// One provider found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderHit {
    pub provider_id: Uuid,
    pub business_name: String,
    pub city: Option<String>,
    /// From `provider_settings.rating_total / rating_count` (approved reviews).
    pub rating: Rating,
    /// The matching offerings, by name. When the text matched the business name,
    /// every offering passing the category and niche filters.
    pub services: Vec<ServiceMatch>,
}

pub struct ProviderSearch;

/// The ranking key: the average rating × 10 000, truncated (integer arithmetic, the
/// same on both engines), or −1 for a provider without ratings.
const SCORE: &str = "CASE WHEN ps.rating_count > 0 \
     THEN ps.rating_total * 10000 / ps.rating_count ELSE -1 END";

impl ProviderSearch {
    /// One page of providers; see the module docs.
    pub async fn search(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        query: &ProviderQuery,
    ) -> Result<Page<ProviderHit>, StorageError> {
        let limit = page_size(query.limit);
        let pattern = text_pattern(query.text.as_deref())?;
        let city = query
            .city
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_lowercase);
        if let Some(r) = query.min_rating
            && !(1..=5).contains(&r)
        {
            return Err(StorageError::Validation {
                field: "min_rating",
                message: "must be between 1 and 5".into(),
            });
        }
        let after = query.after.as_deref().map(parse_cursor).transpose()?;

        // Statement 1: the page of providers.
        let mut p = Params::new(db.get_database_backend());
        let org = p.bind(scope.organization_id());
        let offerings = offerings_sql(&org);
        let matches = offering_predicate(&mut p, &org, query, pattern.as_deref());
        let mut sql = format!(
            "SELECT ps.provider_id, ps.business_name, ps.city, \
                    CAST(ps.rating_count AS BIGINT), CAST(ps.rating_total AS BIGINT), \
                    CAST({SCORE} AS BIGINT) \
             FROM provider_settings ps \
             JOIN users u ON u.id = ps.provider_id AND u.organization_id = ps.organization_id \
             WHERE ps.organization_id = {org} AND ps.is_accepting_bookings = TRUE \
               AND u.is_active = TRUE \
               AND EXISTS (SELECT 1 FROM ({offerings}) o {matches})"
        );
        if let Some(city) = city {
            sql.push_str(&format!(" AND LOWER(ps.city) = {}", p.bind(city)));
        }
        if let Some(min) = query.min_rating {
            sql.push_str(&format!(
                " AND ps.rating_count > 0 AND ps.rating_total >= {} * ps.rating_count",
                p.bind(i64::from(min))
            ));
        }
        if let Some((score, id)) = after {
            let (score, id) = (p.bind(score), p.bind(id));
            sql.push_str(&format!(
                " AND ({SCORE} < {score} OR ({SCORE} = {score} AND ps.provider_id > {id}))"
            ));
        }
        sql.push_str(&format!(
            " ORDER BY 6 DESC, ps.provider_id LIMIT {}",
            limit + 1
        ));
        let rows = db.query_all_raw(p.statement(sql)).await?;
        let mut page = Vec::with_capacity(rows.len());
        for row in &rows {
            let score: i64 = get(row, 5)?;
            page.push((
                score,
                ProviderHit {
                    provider_id: get(row, 0)?,
                    business_name: get(row, 1)?,
                    city: get(row, 2)?,
                    rating: Rating::new(get(row, 3)?, get(row, 4)?),
                    services: Vec::new(),
                },
            ));
        }
        let next = if page.len() as u64 > limit {
            page.truncate(limit as usize);
            page.last()
                .map(|(score, hit)| format!("{score}/{}", hit.provider_id))
        } else {
            None
        };
        if page.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                next,
            });
        }

        // Statement 2: the matching offerings of the providers on the page.
        let mut p = Params::new(db.get_database_backend());
        let org = p.bind(scope.organization_id());
        let offerings = offerings_sql(&org);
        let matches = offering_predicate(&mut p, &org, query, pattern.as_deref());
        let ids = page
            .iter()
            .map(|(_, hit)| p.bind(hit.provider_id))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT o.provider_id, o.name, CAST(MIN(o.price_cents) AS BIGINT) \
             FROM provider_settings ps \
             JOIN ({offerings}) o ON o.provider_id = ps.provider_id \
             {join} \
             WHERE ps.organization_id = {org} AND ps.provider_id IN ({ids}) {conditions} \
             GROUP BY o.provider_id, o.name",
            join = matches.join,
            conditions = matches.conditions
        );
        for row in db.query_all_raw(p.statement(sql)).await? {
            let provider: Uuid = get(&row, 0)?;
            if let Some((_, hit)) = page.iter_mut().find(|(_, h)| h.provider_id == provider) {
                hit.services.push(ServiceMatch {
                    name: get(&row, 1)?,
                    min_price_cents: get(&row, 2)?,
                });
            }
        }
        let items = page
            .into_iter()
            .map(|(_, mut hit)| {
                // Byte order, the same on both engines (collations differ).
                hit.services.sort_by(|a, b| a.name.cmp(&b.name));
                hit
            })
            .collect();
        Ok(Page { items, next })
    }
}

/// The tenant's active offerings as rows `(provider_id, name, price_cents,
/// category_id)`: own services (category from the service, else its template) and
/// provider services of active templates (name and category from the template).
fn offerings_sql(org: &str) -> String {
    format!(
        "SELECT s.provider_id AS provider_id, s.name AS name, s.price_cents AS price_cents, \
                COALESCE(s.category_id, t.category_id) AS category_id \
         FROM services s \
         LEFT JOIN service_templates t \
                ON t.id = s.template_id AND t.organization_id = s.organization_id \
         WHERE s.organization_id = {org} AND s.is_active = TRUE \
         UNION ALL \
         SELECT v.provider_id, t.name, v.price_cents, t.category_id \
         FROM provider_services v \
         JOIN service_templates t \
                ON t.id = v.template_id AND t.organization_id = v.organization_id \
         WHERE v.organization_id = {org} AND v.is_active = TRUE AND t.is_active = TRUE"
    )
}

/// The join to categories and the conditions an offering `o` of provider `ps` must
/// meet. `Display` gives the text after `FROM (…) o` in the `EXISTS`.
struct OfferingPredicate {
    join: String,
    conditions: String,
}

impl std::fmt::Display for OfferingPredicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} WHERE o.provider_id = ps.provider_id {}",
            self.join, self.conditions
        )
    }
}

fn offering_predicate(
    p: &mut Params,
    org: &str,
    query: &ProviderQuery,
    pattern: Option<&str>,
) -> OfferingPredicate {
    let join =
        format!("LEFT JOIN categories c ON c.id = o.category_id AND c.organization_id = {org}");
    let mut conditions = String::new();
    if let Some(niche) = query.niche_id {
        conditions.push_str(&format!(" AND c.niche_id = {}", p.bind(niche)));
    }
    if let Some(category) = query.category_id {
        let category = p.bind(category);
        conditions.push_str(&format!(
            " AND (c.id = {category} OR c.parent_id = {category})"
        ));
    }
    if let Some(pattern) = pattern {
        let pattern = p.bind(pattern.to_owned());
        conditions.push_str(&format!(
            " AND (LOWER(o.name) LIKE {pattern} ESCAPE '\\' \
               OR LOWER(ps.business_name) LIKE {pattern} ESCAPE '\\')"
        ));
    }
    OfferingPredicate { join, conditions }
}

/// The `LIKE` pattern of the search text: trimmed, lower-cased, `\`, `%` and `_`
/// escaped, wrapped in `%…%`. `None` for no text.
fn text_pattern(text: Option<&str>) -> Result<Option<String>, StorageError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let chars = text.chars().count();
    if !(MIN_TEXT_CHARS..=MAX_TEXT_CHARS).contains(&chars) {
        return Err(StorageError::Validation {
            field: "text",
            message: format!(
                "must be {MIN_TEXT_CHARS} to {MAX_TEXT_CHARS} characters after trimming"
            ),
        });
    }
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    Ok(Some(pattern))
}

/// `<score>/<provider id>` of the last hit of the previous page.
fn parse_cursor(cursor: &str) -> Result<(i64, Uuid), StorageError> {
    let bad = || StorageError::Validation {
        field: "after",
        message: "is not a cursor this search returned".into(),
    };
    let (score, id) = cursor.split_once('/').ok_or_else(bad)?;
    Ok((
        score.parse().map_err(|_| bad())?,
        Uuid::parse_str(id).map_err(|_| bad())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_is_escaped_and_bounded() {
        assert_eq!(text_pattern(None).unwrap(), None);
        assert_eq!(text_pattern(Some("   ")).unwrap(), None);
        assert_eq!(
            text_pattern(Some("  50%_Off\\ ")).unwrap().as_deref(),
            Some("%50\\%\\_off\\\\%")
        );
        assert!(text_pattern(Some(" a ")).is_err());
        assert!(text_pattern(Some(&"x".repeat(101))).is_err());
    }

    #[test]
    fn cursors_round_trip() {
        let id = Uuid::now_v7();
        assert_eq!(parse_cursor(&format!("-1/{id}")).unwrap(), (-1, id));
        assert!(parse_cursor("x").is_err());
    }
}
