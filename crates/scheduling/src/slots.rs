//! Free slots: the start times a client may book with a provider.
//!
//! [`free_slots`] is a pure function of plain data: the provider's calendar rules
//! ([`ProviderRules`], built from `provider_settings`, `availability`,
//! `provider_breaks` and `blocked_time_slots`), the time already taken ([`Busy`],
//! built from the provider's active `appointments`) and the request ([`SlotRequest`]:
//! the local dates asked for, the service's duration and buffer, and "now").
//! The database loader gathers the rows; everything below is decided here, once.
//!
//! # Semantics
//!
//! **Local rules, absolute answers.** Weekly windows, date overrides and weekly breaks
//! and blocks are local dates and wall-clock times in the provider's time zone
//! ([`ProviderRules::time_zone`]). They are turned into UTC instants with the zone's
//! rules for that date; every comparison after that is between instants. Slots are
//! returned as UTC instants.
//!
//! **Turning a local time into an instant** (the same rule for windows, breaks and
//! blocks):
//! - a time that exists once maps to that instant;
//! - a time inside a spring-forward gap (it never happens on the wall clock) maps to
//!   the first instant after the gap, i.e. the moment of the change (America/New_York,
//!   2026-03-08: 02:00 to 02:59 all map to 03:00 EDT = 07:00 UTC). For an interval
//!   this applies to both ends, so a break lying wholly in the gap is empty;
//! - a time that happens twice (fall-back) maps to the *earlier* instant when it
//!   starts something (a window, break or block) and to the *later* instant when it
//!   ends something. So an interval touching the repeated hour covers both passes of
//!   it: on 2026-11-01 in New York a 00:00–04:00 window is 5 real hours long, a
//!   00:00–01:30 window ends at 01:30 EST (06:30 UTC) and a 01:00–02:00 break blocks
//!   05:00–07:00 UTC (both 01:xx hours).
//!
//! **Windows of a date.** A date's windows are its special hours if it has any
//! [`DateOverride::Hours`]; none at all if it has a [`DateOverride::DayOff`] (a day
//! off wins over special hours of the same date); otherwise the weekly windows of its
//! weekday (1 = Monday … 7 = Sunday). A window whose end is at or before its start
//! crosses midnight and ends on the next day (22:00–02:00); it belongs to the date it
//! starts on: that date's weekday, overrides and merging decide about all of it. A
//! window with end == start is invalid and ignored. The windows of one date are
//! converted to instants, sorted and merged when they overlap or touch (09:00–10:00
//! and 10:00–11:00 act as 09:00–11:00); a merged window steps by the smallest step of
//! its parts. Windows of *different* dates are never merged: a slot must fit inside
//! one merged window of one date.
//!
//! **Candidates.** In each merged window the candidate starts are `window start +
//! k × step` (k = 0, 1, …), counted in absolute time, so across a DST change the grid
//! keeps its real-time spacing (a 00:00 start with a 45-minute step on the New York
//! spring-forward day gives 00:00, 00:45, 01:30, 03:15 EDT, …). The step is the
//! window's own `step_minutes` if set, else [`ProviderRules::slot_step_minutes`].
//!
//! **A candidate `s` is a free slot when all hold** (`d` = service duration, `b` = the
//! service's buffer after):
//! - `[s, s + d)` lies inside the merged window (the buffer may run past the window's
//!   end: it is rest time, not service time);
//! - the occupied period `[s, s + d + b)` overlaps no busy period, break or block. All
//!   intervals are half-open, so back-to-back is allowed: a slot may start exactly when
//!   a busy period ends, and its occupied period may end exactly when one starts. A busy
//!   period is `[start_at, occupied_until)` and so already includes that appointment's
//!   own buffer;
//! - `s >= now + min_lead_minutes` and `s < now + max_horizon_days × 24 h`;
//! - `s` lies on one of the requested local dates, i.e. in `[from 00:00, (to + 1)
//!   00:00)` (each midnight converted as a start). A slot belongs to the date it starts
//!   on, so the 00:00 and 01:00 slots of a Monday 22:00–02:00 window are Tuesday's.
//!
//! Weekly breaks and blocks happen on their weekday between `starts_on` and `ends_on`
//! (inclusive, each optional), judged by the date they start on; an end at or before
//! the start crosses midnight like a window (the database forbids it, so this is only
//! defensive) and end == start is ignored. One-off breaks and blocks are used as the
//! instants they are.
//!
//! The result is sorted by start, without duplicates (overlapping windows of
//! consecutive dates can offer the same start twice), and every slot has
//! `end = start + d`. Bad input is not an error (the loader validated the rows
//! already): a zero duration or `from > to` gives no slots; a window or time off with
//! a weekday outside 1..=7, end == start or a zero step is ignored, as is an interval
//! that comes out empty after conversion (it lies in a spring-forward gap).
//!
//! # Cost
//!
//! For `D` dates in the request (clamped to the lead time and horizon), `W` window
//! occurrences, `B` blocking intervals (busy periods, one-off time off, and weekly time
//! off expanded to one interval per matching date) and `S` slots: the blocking
//! intervals are sorted and merged once (`O(B log B)`), the windows of each date are
//! sorted and merged (`O(W log W)`), and each merged window is swept left to right
//! against the sorted intervals, jumping straight past a conflicting interval instead
//! of testing every candidate against every interval: `O(D + W log B + B + S)` after
//! sorting. Nothing is allocated per candidate beyond the output. Converting a local
//! time costs one zone lookup, plus a bisection of about 18 lookups only for a time
//! inside a spring-forward gap.

use std::collections::BTreeMap;

use agenda_entity::enums::{AvailabilityKind, RecurrenceKind};
use agenda_entity::rules::Recurrence;
use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::Serialize;

/// A local time-of-day window, part of a weekly rule or of a date's special hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindow {
    /// Local start, in the provider's time zone.
    pub start: NaiveTime,
    /// Local end; at or before `start` means the window ends the next day.
    pub end: NaiveTime,
    /// This window's slot step; `None` uses [`ProviderRules::slot_step_minutes`].
    pub step_minutes: Option<u32>,
}

/// A weekly working window (`availability` row of kind `weekly`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyWindow {
    /// ISO weekday, 1 = Monday … 7 = Sunday; other values are ignored.
    pub weekday: u32,
    pub window: TimeWindow,
}

/// A rule for one local date (`availability` row of kind `date_override`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateOverride {
    /// The provider does not work that date: no weekly windows, no special hours.
    DayOff { date: NaiveDate },
    /// Special hours: the date's weekly windows are replaced by the special-hours
    /// windows of that date (several overrides of one date add up).
    Hours { date: NaiveDate, window: TimeWindow },
}

impl DateOverride {
    /// The local date the override applies to.
    pub fn date(&self) -> NaiveDate {
        match self {
            DateOverride::DayOff { date } | DateOverride::Hours { date, .. } => *date,
        }
    }
}

/// One `availability` row, as what it means for the calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AvailabilityRule {
    Weekly(WeeklyWindow),
    Override(DateOverride),
}

impl AvailabilityRule {
    /// The rule of an `availability` row, from its column values; `None` when the
    /// fields do not make a usable rule (the entity rules reject such rows anyway).
    /// A negative step is treated as unset.
    pub fn from_fields(
        kind: AvailabilityKind,
        weekday: Option<i32>,
        date: Option<NaiveDate>,
        start_time: Option<NaiveTime>,
        end_time: Option<NaiveTime>,
        is_available: bool,
        slot_step_minutes: Option<i32>,
    ) -> Option<Self> {
        let window = || {
            Some(TimeWindow {
                start: start_time?,
                end: end_time?,
                step_minutes: slot_step_minutes.and_then(|m| u32::try_from(m).ok()),
            })
        };
        match kind {
            AvailabilityKind::Weekly => Some(AvailabilityRule::Weekly(WeeklyWindow {
                weekday: iso_weekday(weekday?)?,
                window: window()?,
            })),
            AvailabilityKind::DateOverride if !is_available => {
                Some(AvailabilityRule::Override(DateOverride::DayOff {
                    date: date?,
                }))
            }
            AvailabilityKind::DateOverride => {
                Some(AvailabilityRule::Override(DateOverride::Hours {
                    date: date?,
                    window: window()?,
                }))
            }
        }
    }
}

/// A break or a blocked slot: time the provider cannot be booked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeOff {
    /// Every week on `weekday` (1 = Monday … 7 = Sunday) between local times, on the
    /// dates from `starts_on` to `ends_on` (inclusive; `None` is unbounded).
    Weekly {
        weekday: u32,
        start: NaiveTime,
        end: NaiveTime,
        starts_on: Option<NaiveDate>,
        ends_on: Option<NaiveDate>,
    },
    /// Once, between two instants (`[start_at, end_at)`).
    OneOff {
        start_at: DateTime<Utc>,
        end_at: DateTime<Utc>,
    },
}

impl TimeOff {
    /// The time off of a `provider_breaks` or `blocked_time_slots` row
    /// (`agenda_entity::recurrence_fields!(row)`); `None` when the fields the kind
    /// needs are missing.
    pub fn from_recurrence(r: &Recurrence) -> Option<Self> {
        match r.kind {
            RecurrenceKind::Weekly => Some(TimeOff::Weekly {
                weekday: iso_weekday(r.weekday?)?,
                start: r.start_time?,
                end: r.end_time?,
                starts_on: r.starts_on,
                ends_on: r.ends_on,
            }),
            RecurrenceKind::OneOff => Some(TimeOff::OneOff {
                start_at: r.start_at?,
                end_at: r.end_at?,
            }),
        }
    }
}

fn iso_weekday(weekday: i32) -> Option<u32> {
    u32::try_from(weekday).ok().filter(|d| (1..=7).contains(d))
}

/// A provider's calendar rules, everything but the bookings.
#[derive(Debug, Clone)]
pub struct ProviderRules {
    /// The zone of every local date and time below (`provider_settings.time_zone`,
    /// else the organization's).
    pub time_zone: Tz,
    pub weekly: Vec<WeeklyWindow>,
    pub overrides: Vec<DateOverride>,
    /// `provider_breaks`.
    pub breaks: Vec<TimeOff>,
    /// `blocked_time_slots`.
    pub blocks: Vec<TimeOff>,
    /// Default distance between candidate starts.
    pub slot_step_minutes: u32,
    /// Earliest bookable start: now + this.
    pub min_lead_minutes: u32,
    /// Starts must be before now + this many days (of 24 hours).
    pub max_horizon_days: u32,
}

impl ProviderRules {
    /// Adds an `availability` row's rule.
    pub fn add(&mut self, rule: AvailabilityRule) {
        match rule {
            AvailabilityRule::Weekly(window) => self.weekly.push(window),
            AvailabilityRule::Override(day) => self.overrides.push(day),
        }
    }
}

/// Time taken by an active appointment: `[start_at, occupied_until)`, where
/// `occupied_until` already includes that appointment's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPeriod {
    pub start_at: DateTime<Utc>,
    pub occupied_until: DateTime<Utc>,
}

/// The provider's taken time: the active appointments (pending, confirmed,
/// in progress, completed — see `AppointmentStatus::is_active`). When rescheduling,
/// the loader leaves out the appointment being moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Busy {
    pub periods: Vec<BusyPeriod>,
}

impl FromIterator<BusyPeriod> for Busy {
    fn from_iter<I: IntoIterator<Item = BusyPeriod>>(iter: I) -> Self {
        Busy {
            periods: iter.into_iter().collect(),
        }
    }
}

/// What the client asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRequest {
    /// First local date (provider's zone), inclusive.
    pub from: NaiveDate,
    /// Last local date, inclusive.
    pub to: NaiveDate,
    /// The current instant; lead time and horizon count from it.
    pub now: DateTime<Utc>,
    /// Duration of the service being booked.
    pub duration_minutes: u32,
    /// Minutes the provider keeps free after this service.
    pub buffer_after_minutes: u32,
}

/// A bookable start: the service runs `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Slot {
    pub start: DateTime<Utc>,
    /// `start` + the service's duration (the buffer is not included).
    pub end: DateTime<Utc>,
}

const MICROS_PER_MINUTE: i64 = 60_000_000;
const MICROS_PER_DAY: i64 = 24 * 60 * MICROS_PER_MINUTE;

/// A half-open interval of instants, in microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: i64,
    end: i64,
}

/// Whether a local time starts or ends an interval (decides the fall-back hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    Start,
    End,
}

/// The free slots of `request`, sorted by start. See the module docs for the rules.
pub fn free_slots(rules: &ProviderRules, busy: &Busy, request: &SlotRequest) -> Vec<Slot> {
    let mut slots = Vec::new();
    if request.duration_minutes == 0 || request.from > request.to {
        return slots;
    }
    let tz = rules.time_zone;
    let duration = i64::from(request.duration_minutes) * MICROS_PER_MINUTE;
    let occupied = duration + i64::from(request.buffer_after_minutes) * MICROS_PER_MINUTE;
    let now = request.now.timestamp_micros();
    let earliest = now.saturating_add(i64::from(rules.min_lead_minutes) * MICROS_PER_MINUTE);
    let latest = now.saturating_add(i64::from(rules.max_horizon_days) * MICROS_PER_DAY);

    // Starts must lie in [lo, hi): the requested dates, the lead time and the horizon.
    let range_start = start_of_day(tz, request.from);
    let range_end = request
        .to
        .succ_opt()
        .map_or(i64::MAX, |d| start_of_day(tz, d));
    let lo = earliest.max(range_start);
    let hi = latest.min(range_end);
    if lo >= hi {
        return slots;
    }

    // Only dates whose windows can hold a start in [lo, hi) are looked at: the date
    // before `lo`'s (its overnight windows) through `hi`'s. A huge requested range
    // costs no more than the horizon.
    let first_day = add_days(local_date(tz, lo), -1);
    let last_day = local_date(tz, hi - 1);

    let blockers = blocking_spans(
        rules,
        busy,
        first_day,
        last_day,
        lo,
        hi + occupied,
        occupied,
    );
    let sweep = Sweep {
        blockers: &blockers,
        duration,
        occupied,
        lo,
        hi,
    };

    let mut weekly: [Vec<&TimeWindow>; 7] = Default::default();
    for w in &rules.weekly {
        if let Some(bucket) = weekday_index(w.weekday).map(|i| &mut weekly[i]) {
            bucket.push(&w.window);
        }
    }
    let overrides = day_plans(&rules.overrides, first_day, last_day);

    let mut day_windows: Vec<(Span, i64)> = Vec::new();
    let mut day = first_day;
    while day <= last_day {
        let windows: &[&TimeWindow] = match overrides.get(&day) {
            Some(DayPlan::Off) => &[],
            Some(DayPlan::Hours(windows)) => windows,
            None => &weekly[day.weekday().num_days_from_monday() as usize],
        };
        day_windows.clear();
        for w in windows {
            let step = i64::from(w.step_minutes.unwrap_or(rules.slot_step_minutes));
            if step == 0 {
                continue;
            }
            if let Some(span) = local_span(tz, day, w.start, w.end) {
                day_windows.push((span, step * MICROS_PER_MINUTE));
            }
        }
        day_windows.sort_unstable_by_key(|(span, _)| span.start);
        let mut merged: Option<(Span, i64)> = None;
        for &(span, step) in &day_windows {
            merged = match merged {
                Some((mut current, current_step)) if span.start <= current.end => {
                    current.end = current.end.max(span.end);
                    Some((current, current_step.min(step)))
                }
                Some((current, current_step)) => {
                    sweep.run(current, current_step, &mut slots);
                    Some((span, step))
                }
                None => Some((span, step)),
            };
        }
        if let Some((current, step)) = merged {
            sweep.run(current, step, &mut slots);
        }
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }

    // Windows of consecutive dates may overlap (an overnight window and the next
    // morning), so their slots can interleave or repeat.
    slots.sort_unstable();
    slots.dedup();
    slots
}

/// The free slot starting exactly at `start`, if there is one: what a booking or a
/// reschedule checks inside its transaction, with the same rules as [`free_slots`].
pub fn slot_at(
    rules: &ProviderRules,
    busy: &Busy,
    duration_minutes: u32,
    buffer_after_minutes: u32,
    now: DateTime<Utc>,
    start: DateTime<Utc>,
) -> Option<Slot> {
    // The dates around the start's local date, so that odd midnights (a fall-back
    // at 00:00) cannot hide it; only the exact start is looked for.
    let date = start.with_timezone(&rules.time_zone).date_naive();
    let request = SlotRequest {
        from: add_days(date, -1),
        to: add_days(date, 1),
        now,
        duration_minutes,
        buffer_after_minutes,
    };
    let slots = free_slots(rules, busy, &request);
    slots
        .binary_search_by_key(&start, |slot| slot.start)
        .ok()
        .map(|i| slots[i])
}

/// Candidate generation for one merged window against the sorted, merged blockers.
struct Sweep<'a> {
    blockers: &'a [Span],
    duration: i64,
    occupied: i64,
    lo: i64,
    hi: i64,
}

impl Sweep<'_> {
    fn run(&self, window: Span, step: i64, out: &mut Vec<Slot>) {
        // Last allowed start: the service must end inside the window, and the start
        // must be before `hi`.
        let last = (window.end - self.duration).min(self.hi - 1);
        let mut start = grid_at_or_after(window.start, step, self.lo.max(window.start));
        let mut next = self.blockers.partition_point(|b| b.end <= start);
        while start <= last {
            while self.blockers.get(next).is_some_and(|b| b.end <= start) {
                next += 1;
            }
            match self.blockers.get(next) {
                // Every grid start before this blocker's end collides with it: jump.
                Some(b) if b.start < start + self.occupied => {
                    start = grid_at_or_after(window.start, step, b.end);
                }
                _ => {
                    if let (Some(s), Some(e)) = (
                        DateTime::from_timestamp_micros(start),
                        DateTime::from_timestamp_micros(start + self.duration),
                    ) {
                        out.push(Slot { start: s, end: e });
                    }
                    start += step;
                }
            }
        }
    }
}

/// The first `origin + k × step` (k ≥ 0) at or after `at`; `at >= origin`.
fn grid_at_or_after(origin: i64, step: i64, at: i64) -> i64 {
    let offset = at - origin;
    origin + (offset + step - 1) / step * step
}

/// What the overrides say about one date.
enum DayPlan<'a> {
    Off,
    Hours(Vec<&'a TimeWindow>),
}

fn day_plans(
    overrides: &[DateOverride],
    first_day: NaiveDate,
    last_day: NaiveDate,
) -> BTreeMap<NaiveDate, DayPlan<'_>> {
    let mut plans = BTreeMap::new();
    for o in overrides {
        let date = o.date();
        if date < first_day || date > last_day {
            continue;
        }
        match o {
            DateOverride::DayOff { .. } => {
                plans.insert(date, DayPlan::Off);
            }
            DateOverride::Hours { window, .. } => {
                let plan = plans
                    .entry(date)
                    .or_insert_with(|| DayPlan::Hours(Vec::new()));
                if let DayPlan::Hours(windows) = plan {
                    windows.push(window);
                }
            }
        }
    }
    plans
}

/// Every interval that forbids an occupied period, sorted and merged (overlapping or
/// touching intervals become one). Weekly rules are expanded on the dates from
/// `first_day` to `last_day` plus enough days to cover an occupied period starting on
/// `last_day`; instants outside `[lo, hi)` are dropped early.
fn blocking_spans(
    rules: &ProviderRules,
    busy: &Busy,
    first_day: NaiveDate,
    last_day: NaiveDate,
    lo: i64,
    hi: i64,
    occupied: i64,
) -> Vec<Span> {
    let tz = rules.time_zone;
    let mut spans = Vec::new();
    let mut keep = |span: Span| {
        if span.start < span.end && span.end > lo && span.start < hi {
            spans.push(span);
        }
    };
    for p in &busy.periods {
        keep(Span {
            start: p.start_at.timestamp_micros(),
            end: p.occupied_until.timestamp_micros(),
        });
    }

    let mut weekly: [Vec<&TimeOff>; 7] = Default::default();
    for off in rules.breaks.iter().chain(&rules.blocks) {
        match off {
            TimeOff::OneOff { start_at, end_at } => keep(Span {
                start: start_at.timestamp_micros(),
                end: end_at.timestamp_micros(),
            }),
            TimeOff::Weekly { weekday, .. } => {
                if let Some(i) = weekday_index(*weekday) {
                    weekly[i].push(off);
                }
            }
        }
    }
    let extra_days = occupied / MICROS_PER_DAY + 1;
    let until = add_days(last_day, extra_days);
    let mut day = first_day;
    while day <= until {
        for off in &weekly[day.weekday().num_days_from_monday() as usize] {
            if let TimeOff::Weekly {
                start,
                end,
                starts_on,
                ends_on,
                ..
            } = off
                && starts_on.is_none_or(|from| from <= day)
                && ends_on.is_none_or(|until| day <= until)
                && let Some(span) = local_span(tz, day, *start, *end)
            {
                keep(span);
            }
        }
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }

    merge_spans(spans)
}

/// Sorts spans and merges those that overlap or touch. For half-open intervals this
/// changes nothing about what overlaps them, and leaves the sweep one interval to
/// jump over instead of several.
fn merge_spans(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_unstable_by_key(|s| s.start);
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

fn weekday_index(weekday: u32) -> Option<usize> {
    (1..=7).contains(&weekday).then(|| weekday as usize - 1)
}

/// The instants of a local `start..end` on `date`; an end at or before the start is on
/// the next day. `None` for end == start or when the result is empty (a span lying in
/// a spring-forward gap).
fn local_span(tz: Tz, date: NaiveDate, start: NaiveTime, end: NaiveTime) -> Option<Span> {
    if start == end {
        return None;
    }
    let end_date = if end < start {
        date.checked_add_days(Days::new(1))?
    } else {
        date
    };
    let span = Span {
        start: instant(tz, date.and_time(start), Edge::Start),
        end: instant(tz, end_date.and_time(end), Edge::End),
    };
    (span.start < span.end).then_some(span)
}

/// The instant a local wall-clock time stands for (see the module docs).
fn instant(tz: Tz, at: NaiveDateTime, edge: Edge) -> i64 {
    match tz.from_local_datetime(&at) {
        LocalResult::Single(t) => t.timestamp_micros(),
        LocalResult::Ambiguous(earlier, later) => match edge {
            Edge::Start => earlier.timestamp_micros(),
            Edge::End => later.timestamp_micros(),
        },
        LocalResult::None => first_instant_after_gap(tz, at),
    }
}

/// For a local time that does not exist: the first instant whose wall-clock reading is
/// later than it, i.e. the moment the clocks jumped. Found by bisection, to the second,
/// within a day either side (no UTC offset reaches a day).
fn first_instant_after_gap(tz: Tz, at: NaiveDateTime) -> i64 {
    let guess = at.and_utc().timestamp();
    let after = |secs: i64| {
        DateTime::from_timestamp(secs, 0).is_some_and(|t| t.with_timezone(&tz).naive_local() > at)
    };
    let (mut before_gap, mut past_gap) = (guess - 86_400, guess + 86_400);
    while past_gap - before_gap > 1 {
        let mid = before_gap + (past_gap - before_gap) / 2;
        if after(mid) {
            past_gap = mid;
        } else {
            before_gap = mid;
        }
    }
    past_gap * 1_000_000
}

/// The instant local midnight of `date` starts at.
fn start_of_day(tz: Tz, date: NaiveDate) -> i64 {
    instant(tz, date.and_time(NaiveTime::MIN), Edge::Start)
}

fn local_date(tz: Tz, micros: i64) -> NaiveDate {
    DateTime::from_timestamp_micros(micros)
        .map(|t| t.with_timezone(&tz).date_naive())
        .unwrap_or(if micros < 0 {
            NaiveDate::MIN
        } else {
            NaiveDate::MAX
        })
}

/// `date` moved by `days`, saturating at the ends of the calendar.
fn add_days(date: NaiveDate, days: i64) -> NaiveDate {
    let moved = if days >= 0 {
        date.checked_add_days(Days::new(days.unsigned_abs()))
    } else {
        date.checked_sub_days(Days::new(days.unsigned_abs()))
    };
    moved.unwrap_or(if days < 0 {
        NaiveDate::MIN
    } else {
        NaiveDate::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::{New_York, Sao_Paulo};
    use chrono_tz::Europe::Berlin;

    fn t(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn window(start: &str, end: &str) -> TimeWindow {
        TimeWindow {
            start: t(start),
            end: t(end),
            step_minutes: None,
        }
    }

    fn weekly(weekday: u32, start: &str, end: &str) -> WeeklyWindow {
        WeeklyWindow {
            weekday,
            window: window(start, end),
        }
    }

    fn weekly_off(weekday: u32, start: &str, end: &str) -> TimeOff {
        TimeOff::Weekly {
            weekday,
            start: t(start),
            end: t(end),
            starts_on: None,
            ends_on: None,
        }
    }

    fn hours(day: &str, start: &str, end: &str) -> DateOverride {
        DateOverride::Hours {
            date: date(day),
            window: window(start, end),
        }
    }

    /// Everything `free_slots` reads.
    struct Scenario {
        rules: ProviderRules,
        busy: Busy,
        request: SlotRequest,
    }

    impl Scenario {
        /// São Paulo (UTC-3 all year), Monday to Friday 09:00–12:00, 60-minute service
        /// every 30 minutes, no lead time, a year of horizon, asking for Monday
        /// 2026-03-02.
        fn base() -> Self {
            Scenario {
                rules: ProviderRules {
                    time_zone: Sao_Paulo,
                    weekly: (1..=5).map(|d| weekly(d, "09:00", "12:00")).collect(),
                    overrides: Vec::new(),
                    breaks: Vec::new(),
                    blocks: Vec::new(),
                    slot_step_minutes: 30,
                    min_lead_minutes: 0,
                    max_horizon_days: 365,
                },
                busy: Busy::default(),
                request: SlotRequest {
                    from: date("2026-03-02"),
                    to: date("2026-03-02"),
                    now: utc("2026-01-01T00:00:00Z"),
                    duration_minutes: 60,
                    buffer_after_minutes: 0,
                },
            }
        }

        /// A test instant: RFC 3339, or local "YYYY-MM-DD HH:MM" in the provider's
        /// zone (which must exist exactly once; use RFC 3339 for the fall-back hour).
        fn at(&self, s: &str) -> DateTime<Utc> {
            if s.contains('T') {
                return utc(s);
            }
            let local = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
            match self.rules.time_zone.from_local_datetime(&local) {
                LocalResult::Single(t) => t.to_utc(),
                other => panic!("{s} is not a single local time: {other:?}"),
            }
        }

        fn busy(&mut self, start: &str, occupied_until: &str) {
            let period = BusyPeriod {
                start_at: self.at(start),
                occupied_until: self.at(occupied_until),
            };
            self.busy.periods.push(period);
        }

        fn dates(&mut self, from: &str, to: &str) {
            self.request.from = date(from);
            self.request.to = date(to);
        }

        /// Replaces the weekly windows.
        fn weekly(&mut self, windows: Vec<WeeklyWindow>) {
            self.rules.weekly = windows;
        }
    }

    struct Case {
        name: &'static str,
        edit: fn(&mut Scenario),
        /// Slot starts: local "YYYY-MM-DD HH:MM" in the provider's zone, or RFC 3339.
        expected: Vec<&'static str>,
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "plain day",
                edit: |_| {},
                expected: vec![
                    "2026-03-02 09:00",
                    "2026-03-02 09:30",
                    "2026-03-02 10:00",
                    "2026-03-02 10:30",
                    "2026-03-02 11:00",
                ],
            },
            Case {
                name: "step smaller than the duration",
                edit: |s| {
                    s.weekly(vec![weekly(1, "09:00", "11:00")]);
                    s.rules.slot_step_minutes = 15;
                },
                expected: vec![
                    "2026-03-02 09:00",
                    "2026-03-02 09:15",
                    "2026-03-02 09:30",
                    "2026-03-02 09:45",
                    "2026-03-02 10:00",
                ],
            },
            Case {
                name: "a window's own step wins over the provider's",
                edit: |s| {
                    s.weekly(vec![WeeklyWindow {
                        weekday: 1,
                        window: TimeWindow {
                            step_minutes: Some(60),
                            ..window("09:00", "12:00")
                        },
                    }]);
                },
                expected: vec!["2026-03-02 09:00", "2026-03-02 10:00", "2026-03-02 11:00"],
            },
            Case {
                name: "window shorter than the service: no slots",
                edit: |s| s.weekly(vec![weekly(1, "09:00", "09:45")]),
                expected: vec![],
            },
            Case {
                name: "a window with end == start is ignored",
                edit: |s| {
                    s.weekly(vec![
                        weekly(1, "09:00", "09:00"),
                        weekly(1, "10:00", "11:00"),
                    ]);
                },
                expected: vec!["2026-03-02 10:00"],
            },
            Case {
                name: "touching windows are merged",
                edit: |s| {
                    s.weekly(vec![
                        weekly(1, "10:00", "11:00"),
                        weekly(1, "09:00", "10:00"),
                    ]);
                },
                expected: vec!["2026-03-02 09:00", "2026-03-02 09:30", "2026-03-02 10:00"],
            },
            Case {
                name: "back to back: free right at a busy end and ending right at a busy start",
                edit: |s| {
                    s.weekly(vec![weekly(1, "09:00", "13:00")]);
                    s.busy("2026-03-02 10:00", "2026-03-02 11:00");
                },
                expected: vec![
                    "2026-03-02 09:00",
                    "2026-03-02 11:00",
                    "2026-03-02 11:30",
                    "2026-03-02 12:00",
                ],
            },
            Case {
                name: "the service's buffer blocks a candidate that would otherwise fit",
                edit: |s| {
                    s.weekly(vec![weekly(1, "09:00", "13:00")]);
                    s.request.buffer_after_minutes = 30;
                    s.busy("2026-03-02 10:30", "2026-03-02 11:30");
                },
                // 09:30 would end at 10:30, but its buffer runs to 11:00. The last slot's
                // buffer may run past the window.
                expected: vec!["2026-03-02 09:00", "2026-03-02 11:30", "2026-03-02 12:00"],
            },
            Case {
                name: "a booking's own buffer (occupied_until) is respected",
                edit: |s| {
                    s.weekly(vec![weekly(1, "09:00", "13:00")]);
                    s.busy("2026-03-02 10:00", "2026-03-02 11:15");
                },
                expected: vec!["2026-03-02 09:00", "2026-03-02 11:30", "2026-03-02 12:00"],
            },
            Case {
                name: "weekly break",
                edit: |s| {
                    s.request.duration_minutes = 30;
                    s.rules.breaks.push(weekly_off(1, "10:00", "10:30"));
                },
                expected: vec![
                    "2026-03-02 09:00",
                    "2026-03-02 09:30",
                    "2026-03-02 10:30",
                    "2026-03-02 11:00",
                    "2026-03-02 11:30",
                ],
            },
            Case {
                name: "one-off break",
                edit: |s| {
                    s.request.duration_minutes = 30;
                    s.rules.breaks.push(TimeOff::OneOff {
                        start_at: utc("2026-03-02T13:00:00Z"),
                        end_at: utc("2026-03-02T14:00:00Z"),
                    });
                },
                expected: vec![
                    "2026-03-02 09:00",
                    "2026-03-02 09:30",
                    "2026-03-02 11:00",
                    "2026-03-02 11:30",
                ],
            },
            Case {
                name: "weekly block applies only between starts_on and ends_on",
                edit: |s| {
                    s.weekly(vec![weekly(1, "09:00", "11:00")]);
                    s.rules.slot_step_minutes = 60;
                    s.rules.blocks.push(TimeOff::Weekly {
                        weekday: 1,
                        start: t("09:00"),
                        end: t("10:00"),
                        starts_on: Some(date("2026-03-09")),
                        ends_on: Some(date("2026-03-16")),
                    });
                    s.dates("2026-03-02", "2026-03-23");
                },
                expected: vec![
                    "2026-03-02 09:00",
                    "2026-03-02 10:00",
                    "2026-03-09 10:00",
                    "2026-03-16 10:00",
                    "2026-03-23 09:00",
                    "2026-03-23 10:00",
                ],
            },
            Case {
                name: "one-off block",
                edit: |s| {
                    s.rules.blocks.push(TimeOff::OneOff {
                        start_at: utc("2026-03-02T12:30:00Z"),
                        end_at: utc("2026-03-02T13:30:00Z"),
                    });
                },
                expected: vec!["2026-03-02 10:30", "2026-03-02 11:00"],
            },
            Case {
                name: "date override: day off",
                edit: |s| {
                    s.rules.overrides.push(DateOverride::DayOff {
                        date: date("2026-03-02"),
                    });
                    s.rules
                        .overrides
                        .push(hours("2026-03-02", "14:00", "16:00"));
                    s.dates("2026-03-02", "2026-03-03");
                },
                expected: vec![
                    "2026-03-03 09:00",
                    "2026-03-03 09:30",
                    "2026-03-03 10:00",
                    "2026-03-03 10:30",
                    "2026-03-03 11:00",
                ],
            },
            Case {
                name: "date override: special hours replace the weekly windows",
                edit: |s| {
                    s.rules
                        .overrides
                        .push(hours("2026-03-02", "14:00", "16:00"));
                },
                expected: vec!["2026-03-02 14:00", "2026-03-02 14:30", "2026-03-02 15:00"],
            },
            Case {
                name: "date override: touching special hours merge, on a date with no weekly window",
                edit: |s| {
                    s.rules
                        .overrides
                        .push(hours("2026-03-01", "15:00", "16:00"));
                    s.rules
                        .overrides
                        .push(hours("2026-03-01", "14:00", "15:00"));
                    s.dates("2026-03-01", "2026-03-01");
                },
                expected: vec!["2026-03-01 14:00", "2026-03-01 14:30", "2026-03-01 15:00"],
            },
            Case {
                name: "overnight window 22:00-02:00, both dates asked",
                edit: |s| {
                    s.weekly(vec![weekly(1, "22:00", "02:00")]);
                    s.dates("2026-03-02", "2026-03-03");
                },
                expected: vec![
                    "2026-03-02 22:00",
                    "2026-03-02 22:30",
                    "2026-03-02 23:00",
                    "2026-03-02 23:30",
                    "2026-03-03 00:00",
                    "2026-03-03 00:30",
                    "2026-03-03 01:00",
                ],
            },
            Case {
                name: "overnight window: the after-midnight slots are the next date's",
                edit: |s| {
                    s.weekly(vec![weekly(1, "22:00", "02:00")]);
                    s.dates("2026-03-03", "2026-03-03");
                },
                expected: vec!["2026-03-03 00:00", "2026-03-03 00:30", "2026-03-03 01:00"],
            },
            Case {
                name: "overnight window belongs to its start date: next date's day off keeps it",
                edit: |s| {
                    s.weekly(vec![weekly(1, "22:00", "02:00")]);
                    s.rules.slot_step_minutes = 60;
                    s.rules.overrides.push(DateOverride::DayOff {
                        date: date("2026-03-03"),
                    });
                    s.dates("2026-03-02", "2026-03-03");
                },
                expected: vec![
                    "2026-03-02 22:00",
                    "2026-03-02 23:00",
                    "2026-03-03 00:00",
                    "2026-03-03 01:00",
                ],
            },
            Case {
                name: "overnight window belongs to its start date: its day off removes all of it",
                edit: |s| {
                    s.weekly(vec![weekly(1, "22:00", "02:00")]);
                    s.rules.overrides.push(DateOverride::DayOff {
                        date: date("2026-03-02"),
                    });
                    s.dates("2026-03-02", "2026-03-03");
                },
                expected: vec![],
            },
            Case {
                name: "overlapping windows of consecutive dates give no duplicates",
                edit: |s| {
                    s.weekly(vec![
                        weekly(1, "22:00", "02:00"),
                        weekly(2, "00:00", "02:00"),
                    ]);
                    s.rules.slot_step_minutes = 60;
                    s.dates("2026-03-02", "2026-03-03");
                },
                expected: vec![
                    "2026-03-02 22:00",
                    "2026-03-02 23:00",
                    "2026-03-03 00:00",
                    "2026-03-03 01:00",
                ],
            },
            Case {
                name: "min lead time",
                edit: |s| {
                    s.request.now = utc("2026-03-02T12:10:00Z"); // 09:10 local
                    s.rules.min_lead_minutes = 60;
                },
                expected: vec!["2026-03-02 10:30", "2026-03-02 11:00"],
            },
            Case {
                name: "max horizon (exclusive)",
                edit: |s| {
                    s.request.now = utc("2026-02-28T12:30:00Z");
                    s.rules.max_horizon_days = 2; // until 2026-03-02 09:30 local
                },
                expected: vec!["2026-03-02 09:00"],
            },
            Case {
                name: "multi-day range over a weekend",
                edit: |s| s.dates("2026-03-06", "2026-03-09"),
                expected: vec![
                    "2026-03-06 09:00",
                    "2026-03-06 09:30",
                    "2026-03-06 10:00",
                    "2026-03-06 10:30",
                    "2026-03-06 11:00",
                    "2026-03-09 09:00",
                    "2026-03-09 09:30",
                    "2026-03-09 10:00",
                    "2026-03-09 10:30",
                    "2026-03-09 11:00",
                ],
            },
            Case {
                name: "New York spring forward: the 02:00 hour does not exist",
                edit: |s| {
                    s.rules.time_zone = New_York;
                    s.rules.slot_step_minutes = 60;
                    s.rules
                        .overrides
                        .push(hours("2026-03-08", "00:00", "05:00"));
                    s.dates("2026-03-08", "2026-03-08");
                },
                // 00:00 EST .. 05:00 EDT is 4 real hours.
                expected: vec![
                    "2026-03-08T05:00:00Z",
                    "2026-03-08T06:00:00Z",
                    "2026-03-08T07:00:00Z", // 03:00 EDT
                    "2026-03-08T08:00:00Z",
                ],
            },
            Case {
                name: "New York spring forward: the step counts real minutes",
                edit: |s| {
                    s.rules.time_zone = New_York;
                    s.rules.slot_step_minutes = 45;
                    s.request.duration_minutes = 45;
                    s.rules
                        .overrides
                        .push(hours("2026-03-08", "00:00", "05:00"));
                    s.dates("2026-03-08", "2026-03-08");
                },
                expected: vec![
                    "2026-03-08 00:00",
                    "2026-03-08 00:45",
                    "2026-03-08 01:30",
                    "2026-03-08 03:15",
                    "2026-03-08 04:00",
                ],
            },
            Case {
                name: "New York spring forward: a window starting in the gap starts after it",
                edit: |s| {
                    s.rules.time_zone = New_York;
                    s.rules.slot_step_minutes = 60;
                    s.rules
                        .overrides
                        .push(hours("2026-03-08", "02:30", "05:00"));
                    s.dates("2026-03-08", "2026-03-08");
                },
                expected: vec!["2026-03-08 03:00", "2026-03-08 04:00"],
            },
            Case {
                name: "New York spring forward: a break across the gap, a break inside it",
                edit: |s| {
                    s.rules.time_zone = New_York;
                    s.rules.slot_step_minutes = 60;
                    s.rules
                        .overrides
                        .push(hours("2026-03-08", "00:00", "05:00"));
                    // 01:30 EST .. 03:30 EDT: one real hour, 06:30Z..07:30Z.
                    s.rules.breaks.push(weekly_off(7, "01:30", "03:30"));
                    // Wholly in the gap: empty.
                    s.rules.blocks.push(weekly_off(7, "02:00", "02:45"));
                    s.dates("2026-03-08", "2026-03-08");
                },
                expected: vec!["2026-03-08T05:00:00Z", "2026-03-08T08:00:00Z"],
            },
            Case {
                name: "New York fall back: 00:00-04:00 is 5 real hours, 01:00 twice",
                edit: |s| {
                    s.rules.time_zone = New_York;
                    s.rules.slot_step_minutes = 60;
                    s.rules
                        .overrides
                        .push(hours("2026-11-01", "00:00", "04:00"));
                    s.dates("2026-11-01", "2026-11-01");
                },
                expected: vec![
                    "2026-11-01T04:00:00Z", // 00:00 EDT
                    "2026-11-01T05:00:00Z", // 01:00 EDT
                    "2026-11-01T06:00:00Z", // 01:00 EST
                    "2026-11-01T07:00:00Z", // 02:00 EST
                    "2026-11-01T08:00:00Z", // 03:00 EST
                ],
            },
            Case {
                name: "New York fall back: an end in the repeated hour is its later pass",
                edit: |s| {
                    s.rules.time_zone = New_York;
                    s.rules
                        .overrides
                        .push(hours("2026-11-01", "00:00", "01:30"));
                    s.dates("2026-11-01", "2026-11-01");
                },
                // Ends at 01:30 EST = 06:30Z.
                expected: vec![
                    "2026-11-01T04:00:00Z",
                    "2026-11-01T04:30:00Z",
                    "2026-11-01T05:00:00Z",
                    "2026-11-01T05:30:00Z",
                ],
            },
            Case {
                name: "New York fall back: a start in the repeated hour is its earlier pass",
                edit: |s| {
                    s.rules.time_zone = New_York;
                    s.rules
                        .overrides
                        .push(hours("2026-11-01", "01:30", "03:00"));
                    s.dates("2026-11-01", "2026-11-01");
                },
                // Starts at 01:30 EDT = 05:30Z, ends at 03:00 EST = 08:00Z.
                expected: vec![
                    "2026-11-01T05:30:00Z",
                    "2026-11-01T06:00:00Z",
                    "2026-11-01T06:30:00Z",
                    "2026-11-01T07:00:00Z",
                ],
            },
            Case {
                name: "New York fall back: a 01:00-02:00 break blocks both passes of 01:00",
                edit: |s| {
                    s.rules.time_zone = New_York;
                    s.rules.slot_step_minutes = 60;
                    s.rules
                        .overrides
                        .push(hours("2026-11-01", "00:00", "04:00"));
                    s.rules.breaks.push(weekly_off(7, "01:00", "02:00"));
                    s.dates("2026-11-01", "2026-11-01");
                },
                expected: vec![
                    "2026-11-01T04:00:00Z",
                    "2026-11-01T07:00:00Z",
                    "2026-11-01T08:00:00Z",
                ],
            },
            Case {
                name: "Berlin spring forward (2026-03-29 02:00 CET -> 03:00 CEST)",
                edit: |s| {
                    s.rules.time_zone = Berlin;
                    s.rules
                        .overrides
                        .push(hours("2026-03-29", "01:00", "04:00"));
                    s.dates("2026-03-29", "2026-03-29");
                },
                expected: vec!["2026-03-29 01:00", "2026-03-29 01:30", "2026-03-29 03:00"],
            },
            Case {
                name: "Berlin fall back (2026-10-25 03:00 CEST -> 02:00 CET)",
                edit: |s| {
                    s.rules.time_zone = Berlin;
                    s.rules.slot_step_minutes = 60;
                    s.rules
                        .overrides
                        .push(hours("2026-10-25", "01:00", "04:00"));
                    s.dates("2026-10-25", "2026-10-25");
                },
                expected: vec![
                    "2026-10-24T23:00:00Z", // 01:00 CEST
                    "2026-10-25T00:00:00Z", // 02:00 CEST
                    "2026-10-25T01:00:00Z", // 02:00 CET
                    "2026-10-25T02:00:00Z", // 03:00 CET
                ],
            },
            Case {
                name: "Sao Paulo has no DST: UTC-3 in January and on the US change day",
                edit: |s| {
                    s.weekly(vec![]);
                    s.rules.slot_step_minutes = 60;
                    s.rules
                        .overrides
                        .push(hours("2026-01-18", "09:00", "10:00"));
                    s.rules
                        .overrides
                        .push(hours("2026-11-01", "09:00", "11:00"));
                    s.dates("2026-01-18", "2026-11-01");
                },
                expected: vec![
                    "2026-01-18T12:00:00Z",
                    "2026-11-01T12:00:00Z",
                    "2026-11-01T13:00:00Z",
                ],
            },
        ]
    }

    #[test]
    fn free_slots_table() {
        let mut failures = Vec::new();
        for case in cases() {
            let mut s = Scenario::base();
            (case.edit)(&mut s);
            let slots = free_slots(&s.rules, &s.busy, &s.request);
            let got: Vec<DateTime<Utc>> = slots.iter().map(|slot| slot.start).collect();
            let expected: Vec<DateTime<Utc>> = case.expected.iter().map(|e| s.at(e)).collect();
            let duration = chrono::Duration::minutes(i64::from(s.request.duration_minutes));
            assert!(
                slots.iter().all(|slot| slot.end == slot.start + duration),
                "{}: end = start + duration",
                case.name
            );
            assert!(
                slots.windows(2).all(|w| w[0].start < w[1].start),
                "{}: sorted, no duplicates",
                case.name
            );
            if got != expected {
                let show = |v: &[DateTime<Utc>]| -> Vec<String> {
                    v.iter()
                        .map(|t| {
                            t.with_timezone(&s.rules.time_zone)
                                .format("%Y-%m-%d %H:%M %Z")
                                .to_string()
                        })
                        .collect()
                };
                failures.push(format!(
                    "{}:\n  expected {:?}\n  got      {:?}",
                    case.name,
                    show(&expected),
                    show(&got)
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}

#[cfg(test)]
mod more_tests {
    //! Checks outside the table: the booking check, row conversions, and the sweep
    //! against a brute-force reference on pseudo-random inputs.
    use super::*;
    use chrono_tz::America::Sao_Paulo;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn rules() -> ProviderRules {
        ProviderRules {
            time_zone: Sao_Paulo,
            weekly: vec![WeeklyWindow {
                weekday: 1,
                window: TimeWindow {
                    start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
                    end: NaiveTime::from_hms_opt(12, 0, 0).unwrap(),
                    step_minutes: None,
                },
            }],
            overrides: Vec::new(),
            breaks: Vec::new(),
            blocks: Vec::new(),
            slot_step_minutes: 30,
            min_lead_minutes: 0,
            max_horizon_days: 365,
        }
    }

    #[test]
    fn slot_at_checks_one_start() {
        let rules = rules();
        let now = utc("2026-01-01T00:00:00Z");
        let busy: Busy = [BusyPeriod {
            start_at: utc("2026-03-02T13:00:00Z"), // 10:00 local
            occupied_until: utc("2026-03-02T14:00:00Z"),
        }]
        .into_iter()
        .collect();
        let at = |s: &str| slot_at(&rules, &busy, 60, 0, now, utc(s));
        assert_eq!(
            at("2026-03-02T12:00:00Z"),
            Some(Slot {
                start: utc("2026-03-02T12:00:00Z"),
                end: utc("2026-03-02T13:00:00Z"),
            })
        );
        assert_eq!(at("2026-03-02T12:30:00Z"), None, "overlaps the booking");
        assert_eq!(at("2026-03-02T14:15:00Z"), None, "off the grid");
        assert!(
            at("2026-03-02T14:00:00Z").is_some(),
            "right after the booking"
        );
        assert_eq!(at("2026-03-03T12:00:00Z"), None, "Tuesday has no window");
    }

    #[test]
    fn huge_range_is_bounded_by_the_horizon() {
        let mut rules = rules();
        rules.max_horizon_days = 14;
        let request = SlotRequest {
            from: NaiveDate::MIN,
            to: NaiveDate::MAX,
            now: utc("2026-03-01T00:00:00Z"),
            duration_minutes: 60,
            buffer_after_minutes: 0,
        };
        // Mondays 2026-03-02 and 2026-03-09, five slots each.
        assert_eq!(free_slots(&rules, &Busy::default(), &request).len(), 10);
        let empty = SlotRequest {
            from: NaiveDate::from_ymd_opt(2026, 3, 3).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            ..request
        };
        assert!(free_slots(&rules, &Busy::default(), &empty).is_empty());
    }

    #[test]
    fn rules_from_rows() {
        let nine = NaiveTime::from_hms_opt(9, 0, 0);
        let noon = NaiveTime::from_hms_opt(12, 0, 0);
        let day = NaiveDate::from_ymd_opt(2026, 12, 24);
        use AvailabilityKind::*;
        assert_eq!(
            AvailabilityRule::from_fields(Weekly, Some(3), None, nine, noon, true, Some(15)),
            Some(AvailabilityRule::Weekly(WeeklyWindow {
                weekday: 3,
                window: TimeWindow {
                    start: nine.unwrap(),
                    end: noon.unwrap(),
                    step_minutes: Some(15),
                },
            }))
        );
        assert_eq!(
            AvailabilityRule::from_fields(Weekly, Some(8), None, nine, noon, true, None),
            None
        );
        assert_eq!(
            AvailabilityRule::from_fields(DateOverride, None, day, None, None, false, None),
            Some(AvailabilityRule::Override(super::DateOverride::DayOff {
                date: day.unwrap()
            }))
        );
        assert!(matches!(
            AvailabilityRule::from_fields(DateOverride, None, day, nine, noon, true, None),
            Some(AvailabilityRule::Override(
                super::DateOverride::Hours { .. }
            ))
        ));
        assert_eq!(
            AvailabilityRule::from_fields(DateOverride, None, day, None, None, true, None),
            None
        );

        let at = utc("2026-12-01T15:00:00Z");
        let one_off = Recurrence {
            kind: RecurrenceKind::OneOff,
            weekday: None,
            start_time: None,
            end_time: None,
            starts_on: None,
            ends_on: None,
            start_at: Some(at),
            end_at: Some(at + chrono::Duration::hours(1)),
        };
        assert!(matches!(
            TimeOff::from_recurrence(&one_off),
            Some(TimeOff::OneOff { .. })
        ));
        let weekly = Recurrence {
            kind: RecurrenceKind::Weekly,
            weekday: Some(1),
            start_time: nine,
            end_time: noon,
            starts_on: day,
            ends_on: None,
            start_at: None,
            end_at: None,
        };
        assert_eq!(
            TimeOff::from_recurrence(&weekly),
            Some(TimeOff::Weekly {
                weekday: 1,
                start: nine.unwrap(),
                end: noon.unwrap(),
                starts_on: day,
                ends_on: None,
            })
        );
        assert_eq!(
            TimeOff::from_recurrence(&Recurrence {
                weekday: None,
                ..weekly
            }),
            None
        );
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: i64) -> i64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as i64
        }
    }

    /// Every grid start of the window, tested against every raw interval.
    fn brute_force(
        window: Span,
        step: i64,
        raw: &[Span],
        duration: i64,
        occupied: i64,
        lo: i64,
        hi: i64,
    ) -> Vec<i64> {
        let mut out = Vec::new();
        let mut start = window.start;
        while start + duration <= window.end {
            let free = raw
                .iter()
                .all(|b| !(b.start < start + occupied && start < b.end));
            if start >= lo && start < hi && free {
                out.push(start);
            }
            start += step;
        }
        out
    }

    #[test]
    fn sweep_matches_brute_force() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..2000 {
            // Small integer "minutes" keep collisions, touches and edges frequent.
            let window = {
                let start = rng.below(100);
                Span {
                    start,
                    end: start + 1 + rng.below(120),
                }
            };
            let step = 1 + rng.below(20);
            let duration = 1 + rng.below(30);
            let occupied = duration + rng.below(15);
            let raw: Vec<Span> = (0..rng.below(8))
                .map(|_| {
                    let start = rng.below(240) - 20;
                    Span {
                        start,
                        end: start + 1 + rng.below(40),
                    }
                })
                .collect();
            let lo = rng.below(150) - 10;
            let hi = lo + 1 + rng.below(200);
            let blockers: Vec<Span> = merge_spans(raw.clone())
                .iter()
                .map(|b| Span {
                    start: b.start * MICROS_PER_MINUTE,
                    end: b.end * MICROS_PER_MINUTE,
                })
                .collect();
            let sweep = Sweep {
                blockers: &blockers,
                duration: duration * MICROS_PER_MINUTE,
                occupied: occupied * MICROS_PER_MINUTE,
                lo: lo * MICROS_PER_MINUTE,
                hi: hi * MICROS_PER_MINUTE,
            };
            let mut out = Vec::new();
            sweep.run(
                Span {
                    start: window.start * MICROS_PER_MINUTE,
                    end: window.end * MICROS_PER_MINUTE,
                },
                step * MICROS_PER_MINUTE,
                &mut out,
            );
            let got: Vec<i64> = out
                .iter()
                .map(|s| s.start.timestamp_micros() / MICROS_PER_MINUTE)
                .collect();
            let expected = brute_force(window, step, &raw, duration, occupied, lo, hi);
            assert_eq!(
                got, expected,
                "round {round}: window {window:?} step {step} duration {duration} \
                 occupied {occupied} blockers {raw:?} lo {lo} hi {hi}"
            );
        }
    }
}
