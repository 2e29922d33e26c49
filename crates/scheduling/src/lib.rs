//! Agenda's scheduling core: pure functions over plain data.
//!
//! This crate decides *what* is bookable and *which* status changes are allowed; it
//! never touches a database, never awaits and does no I/O. `agenda-storage` loads the
//! rows (provider settings, availability, breaks, blocks, active appointments) into
//! the input types here, calls these functions inside its booking and reschedule
//! transactions, and writes the outcome. Keeping the rules here means the HTTP slot
//! listing and the booking check run the very same code, and the rules are tested
//! exhaustively without a database.
//!
//! - [`slots`]: free slots from weekly windows, date overrides, breaks, blocks and
//!   busy periods, in the provider's time zone with exact DST handling.
//! - [`status`]: the appointment state machine (who may move an appointment from
//!   which status to which) and the reschedule rule.

pub mod slots;
pub mod status;

pub use slots::{
    AvailabilityRule, Busy, BusyPeriod, DateOverride, ProviderRules, Slot, SlotRequest, TimeOff,
    TimeWindow, WeeklyWindow, free_slots, slot_at,
};
pub use status::{
    Actor, RescheduleError, TransitionError, allowed_targets, can_reschedule, reschedule,
    transition,
};
