//! The delivery worker: a task in the server process that claims due outbox
//! messages, sends each over SMTP, and records the outcome.
//!
//! - **Claim** a batch across tenants (`OutboxRepo::claim`: `FOR UPDATE SKIP
//!   LOCKED` on PostgreSQL), each message leased to this worker for `MAIL_LEASE`
//!   and its attempt counted.
//! - **Send** each one outside any transaction (no connection is held while the SMTP
//!   server thinks), bounded by `MAIL_SEND_TIMEOUT`.
//! - **Record** in the message's own tenant: `sent`; or `queued` again after a
//!   backoff (`MAIL_RETRY_BASE` doubling up to `MAIL_RETRY_MAX`, with jitter) for a
//!   transient failure; or `dead` for a permanent one or after `MAIL_MAX_ATTEMPTS`.
//! - **Idle**: when nothing is due it sleeps `MAIL_POLL_INTERVAL` (or until told to
//!   stop).
//!
//! **Guarantee.** At least once; exactly once unless the process dies (or loses the
//! database for good) between the SMTP server's `250 OK` and the `sent` update: then
//! the lease runs out and another worker sends the message again, with the same
//! `Message-ID`, which lets the receiving side drop the duplicate.
//!
//! **Stopping** ([`WorkerHandle::stop`]): the worker finishes the message it is
//! sending, hands the rest of its batch back to the queue, and ends; if that takes
//! longer than the bound, the task is aborted and its leases expire.

use std::sync::Arc;
use std::time::Duration;

use agenda_storage::Db;
use agenda_storage::repo::outbox::{Claimed, OutboxRepo, Outcome};
use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::outbox::Outbox;
use crate::smtp::{SendError, Smtp};

/// A running worker.
pub struct WorkerHandle {
    stop: StopSignal,
    task: JoinHandle<()>,
    id: String,
}

/// Tells a worker to stop (finish the message in hand, hand back the rest), without
/// waiting for it: the server sends it when shutdown begins.
#[derive(Clone)]
pub struct StopSignal(Arc<watch::Sender<bool>>);

impl StopSignal {
    pub fn send(&self) {
        let _ = self.0.send(true);
    }
}

/// Starts the worker when `SMTP_URL` is set; `None` (messages stay queued) when it
/// is not.
pub fn start(db: Db, outbox: Outbox) -> Result<Option<WorkerHandle>, String> {
    let settings = outbox.settings();
    let Some(url) = settings.smtp.clone() else {
        tracing::info!("SMTP_URL is not set: e-mail stays queued (see `agenda mail list`)");
        return Ok(None);
    };
    let smtp = Smtp::new(&url, settings)?;
    let id = worker_id();
    let (stop, stopping) = watch::channel(false);
    tracing::info!(worker = %id, smtp = %url, "e-mail delivery worker started");
    let worker = Worker {
        db,
        outbox,
        smtp,
        id: id.clone(),
        stopping,
    };
    let task = tokio::spawn(worker.run());
    Ok(Some(WorkerHandle {
        stop: StopSignal(Arc::new(stop)),
        task,
        id,
    }))
}

impl WorkerHandle {
    /// This worker's name in `claimed_by`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A handle that asks the worker to stop.
    pub fn stop_signal(&self) -> StopSignal {
        self.stop.clone()
    }

    /// Asks the worker to stop and waits for it, at most `within`.
    pub async fn stop(self, within: Duration) {
        self.stop.send();
        let mut task = self.task;
        if tokio::time::timeout(within, &mut task).await.is_err() {
            tracing::warn!(
                worker = %self.id,
                "e-mail worker still busy at the shutdown bound; aborted (its claims expire \
                 after MAIL_LEASE and are retried)"
            );
            task.abort();
        }
    }
}

/// `host-pid-random`: unique per process start, readable in `claimed_by`.
fn worker_id() -> String {
    let host = hostname();
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "agenda".to_owned())
}

struct Worker {
    db: Db,
    outbox: Outbox,
    smtp: Smtp,
    id: String,
    stopping: watch::Receiver<bool>,
}

impl Worker {
    async fn run(mut self) {
        let poll = self.outbox.settings().poll_interval;
        while !*self.stopping.borrow() {
            let claimed = self.claim().await;
            if claimed.is_empty() {
                self.pause(poll).await;
                continue;
            }
            let mut queue = claimed.into_iter();
            for message in queue.by_ref() {
                self.deliver(message).await;
                if *self.stopping.borrow() {
                    break;
                }
            }
            // Stopping: hand back what was claimed and not tried.
            for message in queue {
                self.record(message, Outcome::Released).await;
            }
        }
        tracing::info!(worker = %self.id, "e-mail delivery worker stopped");
    }

    /// Sleeps `duration` or until asked to stop.
    async fn pause(&mut self, duration: Duration) {
        let _ = tokio::time::timeout(duration, self.stopping.wait_for(|stop| *stop)).await;
    }

    async fn claim(&self) -> Vec<Claimed> {
        let settings = self.outbox.settings();
        let now = Utc::now();
        let lease = chrono::Duration::from_std(settings.lease).unwrap_or(chrono::Duration::MAX);
        match OutboxRepo::claim(&self.db, &self.id, now, now + lease, settings.batch_size).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(worker = %self.id, error = %e, "claiming due e-mail failed; retrying");
                Vec::new()
            }
        }
    }

    async fn deliver(&self, claimed: Claimed) {
        let message = match self.read(claimed).await {
            Ok(message) => message,
            Err(e) => {
                // Left `sending`: the lease runs out and the message is tried again.
                tracing::warn!(message_id = %claimed.id, error = %e, "reading an e-mail failed");
                return;
            }
        };
        let retry = self.outbox.settings().retry;
        let attempts = u32::try_from(message.attempts).unwrap_or(u32::MAX);
        let metrics = self.outbox.metrics();
        let outcome = match self.smtp.send(&message).await {
            Ok(()) => {
                metrics.sent();
                tracing::info!(message_id = %message.id, kind = %message.kind, attempts, "e-mail sent");
                Outcome::Sent
            }
            Err(SendError::Transient(error)) if attempts < retry.max_attempts => {
                metrics.retried();
                let delay = retry.delay(attempts);
                tracing::warn!(message_id = %message.id, attempts, retry_in_ms = delay.as_millis() as u64,
                    error = %error, "e-mail delivery failed; will retry");
                let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                Outcome::RetryAt {
                    at: Utc::now() + delay,
                    error,
                }
            }
            Err(SendError::Transient(error) | SendError::Permanent(error)) => {
                metrics.dead();
                tracing::error!(message_id = %message.id, attempts, error = %error,
                    "e-mail delivery failed for good; the message is dead");
                Outcome::Dead { error }
            }
        };
        self.record(claimed, outcome).await;
    }

    async fn read(
        &self,
        claimed: Claimed,
    ) -> Result<agenda_entity::outbox_message::Model, agenda_storage::StorageError> {
        let tx = self.db.read_in(claimed.scope).await?;
        let message = OutboxRepo::get(&tx, claimed.scope, claimed.id).await?;
        tx.commit().await?;
        Ok(message)
    }

    /// Writes the outcome in the message's tenant. After a `250 OK` a lost update
    /// means a second send, so it is retried a few times before giving up (the
    /// lease then decides).
    async fn record(&self, claimed: Claimed, outcome: Outcome) {
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=5 {
            let result = async {
                let tx = self.db.begin_in(claimed.scope).await?;
                let held = OutboxRepo::record(
                    &tx,
                    claimed.scope,
                    claimed.id,
                    &self.id,
                    outcome.clone(),
                    Utc::now(),
                )
                .await?;
                tx.commit().await?;
                Ok::<_, agenda_storage::StorageError>(held)
            }
            .await;
            match result {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!(message_id = %claimed.id, worker = %self.id,
                        "the claim on this e-mail had passed to another worker; outcome not recorded");
                    return;
                }
                Err(e) if attempt < 5 => {
                    tracing::warn!(message_id = %claimed.id, error = %e, attempt, "recording an e-mail's outcome failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    tracing::error!(message_id = %claimed.id, error = %e,
                        "recording an e-mail's outcome failed; its lease will expire and it will be tried again");
                }
            }
        }
    }
}
