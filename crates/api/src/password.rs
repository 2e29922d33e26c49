//! Password hashing, and the bound on how much of it runs at once.
//!
//! Hashes are argon2id with the OWASP-recommended parameters ([`PARAMS`]: 19 MiB,
//! 2 iterations, 1 lane) and a random salt, stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$…`), so parameters can be raised later without
//! invalidating stored hashes.
//!
//! Every hash or check costs 19 MiB and tens of milliseconds of a core, and sign-in
//! needs no account, so the server never runs more than
//! `PASSWORD_HASH_CONCURRENCY` of them at once ([`PasswordHashing`]). Up to
//! `PASSWORD_HASH_QUEUE` more requests wait their turn; beyond that a request is
//! refused at once with [`Overloaded`] (503 with `Retry-After` in the API) without
//! hashing anything.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// argon2id parameters of new hashes: memory in KiB, iterations, lanes.
pub const PARAMS: (u32, u32, u32) = (19 * 1024, 2, 1);

fn argon2() -> Argon2<'static> {
    let (m, t, p) = PARAMS;
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(m, t, p, None).expect("valid argon2 parameters"),
    )
}

/// Hashes `password` for storage (synchronously: call it off the async workers, or
/// through [`PasswordHashing::hash`]).
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches the stored `hash`. A malformed hash never matches.
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a random password with the same parameters as every new hash, to check
/// against when the account does not exist, so that "unknown email" and "wrong
/// password" cost the same. Computed once per process, by [`PasswordHashing::new`]
/// at startup rather than by the first request that needs it.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY
        .get_or_init(|| hash(&uuid::Uuid::now_v7().to_string()).expect("hashing a random password"))
}

/// Too many password checks are running and waiting; the request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks are in progress")]
pub struct Overloaded;

/// Why a hash or check did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    /// The hashing task panicked or was cancelled, or argon2 refused the input.
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// The right to run one argon2 computation now: a place in line and a running slot.
/// Dropping it frees both.
#[derive(Debug)]
pub struct HashPermit {
    _running: OwnedSemaphorePermit,
    _admitted: OwnedSemaphorePermit,
}

/// At most `concurrency` argon2 computations at once, at most `queue` more requests
/// waiting for one; cheap to clone (one instance is shared by the whole server).
///
/// Waiting is fair (first come, first served). The computation runs on tokio's
/// blocking threads and holds its permit until it ends, even if the request that
/// asked for it has gone away, so the bound is on real work, not on requests.
#[derive(Debug, Clone)]
pub struct PasswordHashing {
    /// `concurrency` permits: one per computation running.
    running: Arc<Semaphore>,
    /// `concurrency + queue` permits: one per request running or waiting.
    admitted: Arc<Semaphore>,
    concurrency: usize,
    queue: usize,
}

impl PasswordHashing {
    /// The limiter; also computes the process's dummy hash (once) so no request pays
    /// for it. `concurrency` is at least 1.
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let concurrency = concurrency.max(1);
        dummy_hash();
        PasswordHashing {
            running: Arc::new(Semaphore::new(concurrency)),
            admitted: Arc::new(Semaphore::new(concurrency + queue)),
            concurrency,
            queue,
        }
    }

    /// Takes a place in line (or fails at once with [`Overloaded`] when the line is
    /// full), then waits for a running slot.
    pub async fn admit(&self) -> Result<HashPermit, Overloaded> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| Overloaded)?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        Ok(HashPermit {
            _running: running,
            _admitted: admitted,
        })
    }

    /// Computations running now.
    pub fn running(&self) -> usize {
        self.concurrency - self.running.available_permits()
    }

    /// Requests admitted and waiting for a running slot.
    pub fn waiting(&self) -> usize {
        let admitted = self.concurrency + self.queue - self.admitted.available_permits();
        admitted.saturating_sub(self.running())
    }

    /// Hashes `password` for storage, within the bound.
    pub async fn hash(&self, password: String) -> Result<String, HashingError> {
        self.run(move || hash(&password).map_err(|e| HashingError::Failed(e.to_string())))
            .await?
    }

    /// Checks `password` against the stored hash, or against the dummy hash when there
    /// is no account (`None`): the same work either way.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, HashingError> {
        self.run(move || verify(&password, stored.as_deref().unwrap_or_else(|| dummy_hash())))
            .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        let permit = self.admit().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| HashingError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash("correct horse battery staple").unwrap();
        let b = hash("correct horse battery staple").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "random salt");
        assert!(verify("correct horse battery staple", &a));
        assert!(!verify("wrong", &a));
        assert!(!verify("x", "not a hash"));
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() {
        let real = hash("a password").unwrap();
        let params = |h: &str| h.rsplitn(3, '$').nth(2).map(str::to_owned);
        assert_eq!(params(dummy_hash()), params(&real));
    }

    #[tokio::test]
    async fn the_line_is_bounded_and_fair() {
        let hashing = PasswordHashing::new(1, 1);
        let held = hashing.admit().await.unwrap();
        assert_eq!((hashing.running(), hashing.waiting()), (1, 0));
        let queued = {
            let hashing = hashing.clone();
            tokio::spawn(async move { hashing.verify("x".into(), None).await })
        };
        while hashing.waiting() < 1 {
            tokio::task::yield_now().await;
        }
        // Running 1 + waiting 1: the line is full, the next is refused without work.
        assert!(matches!(
            hashing.verify("y".into(), None).await,
            Err(HashingError::Overloaded(Overloaded))
        ));
        drop(held);
        assert!(!queued.await.unwrap().unwrap(), "the waiting check ran");
        assert_eq!((hashing.running(), hashing.waiting()), (0, 0));
    }
}
