//! Delivery counts of this process's worker, for `GET /metrics`
//! (`agenda_outbox_deliveries_total{outcome=…}`). The database's own counts per
//! status come from `OutboxRepo::counts`.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct DeliveryMetrics {
    sent: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
}

/// A snapshot of [`DeliveryMetrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deliveries {
    /// Accepted by the SMTP server.
    pub sent: u64,
    /// Failed for now, queued again with a delay.
    pub retried: u64,
    /// Failed for good.
    pub dead: u64,
}

impl DeliveryMetrics {
    pub(crate) fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dead(&self) {
        self.dead.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Deliveries {
        Deliveries {
            sent: self.sent.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
        }
    }
}
