//! The appointment state machine: which status changes exist and who may make them.
//!
//! | from | to | who |
//! |---|---|---|
//! | pending | confirmed | provider, admin |
//! | pending | canceled | client, provider, admin |
//! | confirmed | in_progress | provider, admin |
//! | confirmed | canceled | client, provider, admin |
//! | confirmed | no_show | provider, admin |
//! | in_progress | completed | provider, admin |
//!
//! Every other pair (including a status to itself) is illegal; completed, canceled and
//! no_show are final. Support staff and unrelated users change nothing. A reschedule
//! (new start, same appointment) is possible while pending or confirmed, by the same
//! people who may cancel.
//!
//! The storage layer calls [`transition`] inside the transaction that updates the row
//! and appends `appointment_status_history`; the API maps the error codes to 409
//! (`illegal_transition`, `not_reschedulable`) and 403 (`forbidden_transition`,
//! `forbidden_reschedule`).

use std::fmt;

use agenda_entity::enums::{AppointmentStatus, UserRole};

/// Who asks for a change, relative to the appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The appointment's client.
    Client,
    /// The appointment's provider.
    Provider,
    /// An admin of the organization.
    Admin,
    /// A support person of the organization (not the appointment's client or provider).
    Support,
    /// Any other user.
    Other,
}

impl Actor {
    /// Classifies a user for one appointment. An admin acts as [`Actor::Admin`]; anyone
    /// else by their part in the appointment (provider before client, for a provider
    /// who booked themself); then support, then other. Each step grants at least the
    /// rights of the later ones, so the most capable reading wins.
    pub fn of<Id: PartialEq>(user: &Id, role: UserRole, client: &Id, provider: &Id) -> Actor {
        if role == UserRole::Admin {
            Actor::Admin
        } else if user == provider {
            Actor::Provider
        } else if user == client {
            Actor::Client
        } else if role == UserRole::Support {
            Actor::Support
        } else {
            Actor::Other
        }
    }

    /// The stored and displayed form.
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Client => "client",
            Actor::Provider => "provider",
            Actor::Admin => "admin",
            Actor::Support => "support",
            Actor::Other => "other",
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every status, in the vocabulary's order.
pub const ALL_STATUSES: [AppointmentStatus; 6] = [
    AppointmentStatus::Pending,
    AppointmentStatus::Confirmed,
    AppointmentStatus::InProgress,
    AppointmentStatus::Completed,
    AppointmentStatus::Canceled,
    AppointmentStatus::NoShow,
];

/// Who may move an appointment from `from` to `to`; `None` when the change does not
/// exist. The one table every other function reads.
fn permitted(from: AppointmentStatus, to: AppointmentStatus) -> Option<&'static [Actor]> {
    use AppointmentStatus::*;
    const STAFF: &[Actor] = &[Actor::Provider, Actor::Admin];
    const PARTIES: &[Actor] = &[Actor::Client, Actor::Provider, Actor::Admin];
    match (from, to) {
        (Pending, Confirmed) => Some(STAFF),
        (Pending | Confirmed, Canceled) => Some(PARTIES),
        (Confirmed, InProgress | NoShow) => Some(STAFF),
        (InProgress, Completed) => Some(STAFF),
        _ => None,
    }
}

/// Why a status change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionError {
    /// No one may make this change.
    Illegal {
        from: AppointmentStatus,
        to: AppointmentStatus,
    },
    /// The change exists, but not for this actor.
    Forbidden {
        from: AppointmentStatus,
        to: AppointmentStatus,
        actor: Actor,
    },
}

impl TransitionError {
    /// Machine-readable code for API responses.
    pub fn code(&self) -> &'static str {
        match self {
            TransitionError::Illegal { .. } => "illegal_transition",
            TransitionError::Forbidden { .. } => "forbidden_transition",
        }
    }
}

impl fmt::Display for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionError::Illegal { from, to } if is_final(*from) => write!(
                f,
                "an appointment that is {from} cannot change status (to {to}): {from} is final"
            ),
            TransitionError::Illegal { from, to } => {
                write!(f, "an appointment cannot go from {from} to {to}")
            }
            TransitionError::Forbidden { from, to, actor } => write!(
                f,
                "{} may not move an appointment from {from} to {to}",
                match actor {
                    Actor::Client => "the client",
                    Actor::Provider => "the provider",
                    Actor::Admin => "an admin",
                    Actor::Support => "support",
                    Actor::Other => "a user who is not part of the appointment",
                }
            ),
        }
    }
}

impl std::error::Error for TransitionError {}

/// Checks a status change by `actor`. An illegal change is reported as such whoever
/// asks; only a legal change can be forbidden.
pub fn transition(
    from: AppointmentStatus,
    to: AppointmentStatus,
    actor: Actor,
) -> Result<(), TransitionError> {
    match permitted(from, to) {
        None => Err(TransitionError::Illegal { from, to }),
        Some(actors) if actors.contains(&actor) => Ok(()),
        Some(_) => Err(TransitionError::Forbidden { from, to, actor }),
    }
}

/// The statuses `actor` may move an appointment in `from` to, in vocabulary order
/// (what a client app shows as buttons).
pub fn allowed_targets(from: AppointmentStatus, actor: Actor) -> Vec<AppointmentStatus> {
    ALL_STATUSES
        .into_iter()
        .filter(|&to| transition(from, to, actor).is_ok())
        .collect()
}

/// Whether no change leads out of `status`.
pub fn is_final(status: AppointmentStatus) -> bool {
    ALL_STATUSES
        .into_iter()
        .all(|to| permitted(status, to).is_none())
}

/// The status a new booking starts in (`provider_settings.auto_confirm`).
pub fn initial_status(auto_confirm: bool) -> AppointmentStatus {
    if auto_confirm {
        AppointmentStatus::Confirmed
    } else {
        AppointmentStatus::Pending
    }
}

/// Whether an appointment in `status` may be moved to another time.
pub fn can_reschedule(status: AppointmentStatus) -> bool {
    matches!(
        status,
        AppointmentStatus::Pending | AppointmentStatus::Confirmed
    )
}

/// Why a reschedule was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescheduleError {
    /// The appointment is past the point where its time can change.
    NotReschedulable { status: AppointmentStatus },
    /// The actor may not move this appointment.
    Forbidden { actor: Actor },
}

impl RescheduleError {
    /// Machine-readable code for API responses.
    pub fn code(&self) -> &'static str {
        match self {
            RescheduleError::NotReschedulable { .. } => "not_reschedulable",
            RescheduleError::Forbidden { .. } => "forbidden_reschedule",
        }
    }
}

impl fmt::Display for RescheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RescheduleError::NotReschedulable { status } => write!(
                f,
                "an appointment that is {status} cannot be rescheduled (only pending or confirmed)"
            ),
            RescheduleError::Forbidden { actor } => {
                write!(f, "{actor} may not reschedule this appointment")
            }
        }
    }
}

impl std::error::Error for RescheduleError {}

/// Checks a reschedule by `actor`: the status must allow it ([`can_reschedule`]) and
/// the actor must be one who may cancel (client, provider, admin). The status is
/// checked first, like [`transition`] checks legality first.
pub fn reschedule(status: AppointmentStatus, actor: Actor) -> Result<(), RescheduleError> {
    if !can_reschedule(status) {
        return Err(RescheduleError::NotReschedulable { status });
    }
    match permitted(status, AppointmentStatus::Canceled) {
        Some(actors) if actors.contains(&actor) => Ok(()),
        _ => Err(RescheduleError::Forbidden { actor }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AppointmentStatus::*;

    const ACTORS: [Actor; 5] = [
        Actor::Client,
        Actor::Provider,
        Actor::Admin,
        Actor::Support,
        Actor::Other,
    ];

    /// The table of the module docs, written out independently of `permitted`.
    struct Allowed {
        from: AppointmentStatus,
        to: AppointmentStatus,
        actors: &'static [Actor],
    }

    const TABLE: &[Allowed] = &[
        Allowed {
            from: Pending,
            to: Confirmed,
            actors: &[Actor::Provider, Actor::Admin],
        },
        Allowed {
            from: Pending,
            to: Canceled,
            actors: &[Actor::Client, Actor::Provider, Actor::Admin],
        },
        Allowed {
            from: Confirmed,
            to: InProgress,
            actors: &[Actor::Provider, Actor::Admin],
        },
        Allowed {
            from: Confirmed,
            to: Canceled,
            actors: &[Actor::Client, Actor::Provider, Actor::Admin],
        },
        Allowed {
            from: Confirmed,
            to: NoShow,
            actors: &[Actor::Provider, Actor::Admin],
        },
        Allowed {
            from: InProgress,
            to: Completed,
            actors: &[Actor::Provider, Actor::Admin],
        },
    ];

    /// Fails to compile when a status is added, so `ALL_STATUSES` is revisited.
    fn index(status: AppointmentStatus) -> usize {
        match status {
            Pending => 0,
            Confirmed => 1,
            InProgress => 2,
            Completed => 3,
            Canceled => 4,
            NoShow => 5,
        }
    }

    #[test]
    fn all_statuses_is_complete_and_ordered() {
        for (i, status) in ALL_STATUSES.into_iter().enumerate() {
            assert_eq!(index(status), i, "{status}");
        }
    }

    #[test]
    fn every_pair_and_actor_matches_the_table() {
        let mut checked = 0;
        for from in ALL_STATUSES {
            for to in ALL_STATUSES {
                let row = TABLE.iter().find(|r| r.from == from && r.to == to);
                for actor in ACTORS {
                    let got = transition(from, to, actor);
                    let expected = match row {
                        None => Err(TransitionError::Illegal { from, to }),
                        Some(r) if r.actors.contains(&actor) => Ok(()),
                        Some(_) => Err(TransitionError::Forbidden { from, to, actor }),
                    };
                    assert_eq!(got, expected, "{from} -> {to} by {actor}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 6 * 6 * 5);
    }

    #[test]
    fn allowed_targets_follow_the_table() {
        for from in ALL_STATUSES {
            for actor in ACTORS {
                let expected: Vec<AppointmentStatus> = ALL_STATUSES
                    .into_iter()
                    .filter(|&to| {
                        TABLE
                            .iter()
                            .any(|r| r.from == from && r.to == to && r.actors.contains(&actor))
                    })
                    .collect();
                assert_eq!(allowed_targets(from, actor), expected, "{from} by {actor}");
            }
        }
        assert_eq!(
            allowed_targets(Confirmed, Actor::Provider),
            vec![InProgress, Canceled, NoShow]
        );
        assert_eq!(allowed_targets(Confirmed, Actor::Client), vec![Canceled]);
        assert!(allowed_targets(Pending, Actor::Support).is_empty());
    }

    #[test]
    fn final_statuses() {
        let finals: Vec<_> = ALL_STATUSES.into_iter().filter(|&s| is_final(s)).collect();
        assert_eq!(finals, vec![Completed, Canceled, NoShow]);
    }

    #[test]
    fn errors_have_codes_and_messages() {
        let illegal = transition(Completed, Canceled, Actor::Admin).unwrap_err();
        assert_eq!(illegal.code(), "illegal_transition");
        assert_eq!(
            illegal.to_string(),
            "an appointment that is completed cannot change status (to canceled): completed is final"
        );
        let skip = transition(Pending, Completed, Actor::Provider).unwrap_err();
        assert_eq!(
            skip.to_string(),
            "an appointment cannot go from pending to completed"
        );
        let forbidden = transition(Pending, Confirmed, Actor::Client).unwrap_err();
        assert_eq!(forbidden.code(), "forbidden_transition");
        assert_eq!(
            forbidden.to_string(),
            "the client may not move an appointment from pending to confirmed"
        );
        // Legality is decided before the actor: an outsider asking for an illegal
        // change learns it is illegal, not that they lack rights.
        assert_eq!(
            transition(Canceled, Confirmed, Actor::Other)
                .unwrap_err()
                .code(),
            "illegal_transition"
        );
    }

    #[test]
    fn actor_classification() {
        let (client, provider, someone) = (1, 2, 3);
        let of = |user, role| Actor::of(&user, role, &client, &provider);
        assert_eq!(of(client, UserRole::Client), Actor::Client);
        assert_eq!(of(provider, UserRole::Provider), Actor::Provider);
        assert_eq!(of(someone, UserRole::Admin), Actor::Admin);
        assert_eq!(of(provider, UserRole::Admin), Actor::Admin);
        assert_eq!(of(someone, UserRole::Support), Actor::Support);
        assert_eq!(of(client, UserRole::Support), Actor::Client);
        assert_eq!(of(someone, UserRole::Client), Actor::Other);
        assert_eq!(of(someone, UserRole::Provider), Actor::Other);
    }

    #[test]
    fn reschedule_rules() {
        for status in ALL_STATUSES {
            assert_eq!(
                can_reschedule(status),
                matches!(status, Pending | Confirmed),
                "{status}"
            );
            for actor in ACTORS {
                let got = reschedule(status, actor);
                let expected = if !matches!(status, Pending | Confirmed) {
                    Err(RescheduleError::NotReschedulable { status })
                } else if matches!(actor, Actor::Client | Actor::Provider | Actor::Admin) {
                    Ok(())
                } else {
                    Err(RescheduleError::Forbidden { actor })
                };
                assert_eq!(got, expected, "{status} by {actor}");
            }
        }
        assert_eq!(
            reschedule(Completed, Actor::Admin).unwrap_err().code(),
            "not_reschedulable"
        );
        assert_eq!(
            reschedule(Pending, Actor::Support).unwrap_err().code(),
            "forbidden_reschedule"
        );
        assert_eq!(initial_status(true), Confirmed);
        assert_eq!(initial_status(false), Pending);
    }
}
