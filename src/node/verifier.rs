//! Intake signature checks for accounts chains, in batches, off the node loop.
//!
//! The node loop hands each transactions-topic record it takes to
//! [`super::accounts_pool::AccountsPool`], which parses it and queues it here in
//! numbered jobs; this thread checks the signatures of a whole job with one
//! batch check ([`crate::chain::accounts::sigcheck`]) and answers with one verdict per record
//! ([`crate::chain::accounts::verify_many`]: a failed batch is split in halves to find
//! the bad signatures).
//!
//! Invariants:
//! 1. The thread knows nothing of the chain, the pool or offsets: it only answers
//!    "does this signature verify for this chain id", in the order it was asked.
//!    Everything that depends on the chain (nonces, balances, conflicts, "already on
//!    the chain") is decided on the node loop when the answer arrives, so it is judged
//!    against the tip at that moment.
//! 2. A record is "read" for commit purposes only once the loop has its verdict and
//!    has put it in the pool or rejected it; the loop applies verdicts in the order the
//!    records arrived (see `AccountsPool::take`), so a commit position never passes a
//!    record still being checked.
//! 3. The thread ends when the loop drops its end of the job channel.

use std::collections::HashMap;
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Receiver, Sender};
use ed25519_dalek::VerifyingKey;

use crate::chain::accounts::{
    verify_many, AccountsError, Address, ChainId, SignedTransfer, VerifiedTransfer,
};

/// Keys decompressed by the thread, kept for the next transfer of the same sender;
/// cleared when it grows past this many (a cache: bounded, never needed for
/// correctness).
const KEY_CACHE: usize = 100_000;

/// Transfers to check, numbered by the caller.
#[derive(Debug)]
pub struct Job {
    pub first_seq: u64,
    pub transfers: Vec<SignedTransfer>,
}

/// The verdicts for a [`Job`], in its order.
#[derive(Debug)]
pub struct Verdicts {
    pub first_seq: u64,
    pub results: Vec<Result<VerifiedTransfer, AccountsError>>,
}

/// The verifier thread and its two channels.
pub struct Verifier {
    jobs: Option<Sender<Job>>,
    verdicts: Receiver<Verdicts>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

impl Verifier {
    /// Starts the thread for transfers of chain `chain`.
    pub fn start(chain: ChainId) -> std::io::Result<Verifier> {
        let (jobs_tx, jobs_rx) = unbounded::<Job>();
        let (verdicts_tx, verdicts) = unbounded();
        let thread = std::thread::Builder::new()
            .name("tx-verifier".into())
            .spawn(move || {
                let mut keys = HashMap::new();
                for job in jobs_rx {
                    let results = check(&job.transfers, &chain, &mut keys);
                    let answer = Verdicts {
                        first_seq: job.first_seq,
                        results,
                    };
                    if verdicts_tx.send(answer).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Verifier {
            jobs: Some(jobs_tx),
            verdicts,
            thread: Some(thread),
        })
    }

    /// Queues a job; false if the thread is gone (it never ends on its own).
    pub fn submit(&self, job: Job) -> bool {
        self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok())
    }

    /// Where the verdicts arrive.
    pub fn verdicts(&self) -> &Receiver<Verdicts> {
        &self.verdicts
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            // At most one batch in progress: milliseconds.
            let _ = thread.join();
        }
    }
}

/// The verdict for each transfer of `batch`, through the thread's key cache.
fn check(
    batch: &[SignedTransfer],
    chain: &ChainId,
    keys: &mut HashMap<Address, VerifyingKey>,
) -> Vec<Result<VerifiedTransfer, AccountsError>> {
    if keys.len() > KEY_CACHE {
        keys.clear();
    }
    verify_many(batch, chain, keys)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::chain::accounts::Transfer;

    const CHAIN: ChainId = ChainId([9; 32]);

    fn signed(n: u8, nonce: u64, chain: &ChainId) -> SignedTransfer {
        let key = SigningKey::from_bytes(&[n; 32]);
        Transfer {
            from: Address::of(&key.verifying_key()),
            to: Address::of(&SigningKey::from_bytes(&[n + 1; 32]).verifying_key()),
            amount: 1,
            nonce,
        }
        .sign(&key, chain)
    }

    #[test]
    fn a_batch_names_exactly_its_bad_signatures() {
        let mut batch: Vec<SignedTransfer> = (0..20).map(|i| signed(i, 0, &CHAIN)).collect();
        batch[3] = signed(3, 0, &ChainId([1; 32])); // another chain
        batch[7].sig[10] ^= 1; // altered
        batch[11].transfer.amount += 1; // altered content
        let verdicts = check(&batch, &CHAIN, &mut HashMap::new());
        for (i, v) in verdicts.iter().enumerate() {
            let bad = [3, 7, 11].contains(&i);
            assert_eq!(v.is_err(), bad, "transfer {i}: {v:?}");
            if bad {
                assert!(matches!(v, Err(AccountsError::BadSignature { .. })));
            }
        }
        let all_good: Vec<_> = (0..5).map(|i| signed(i, 1, &CHAIN)).collect();
        assert!(check(&all_good, &CHAIN, &mut HashMap::new())
            .iter()
            .all(|v| v.is_ok()));
    }

    #[test]
    fn the_thread_answers_jobs_in_order() {
        let v = Verifier::start(CHAIN).expect("thread");
        for job in 0..3u64 {
            let mut transfers: Vec<_> = (0..4).map(|i| signed(i, job, &CHAIN)).collect();
            transfers[job as usize].sig[0] ^= 1;
            assert!(v.submit(Job {
                first_seq: job * 4,
                transfers
            }));
        }
        for job in 0..3u64 {
            let got = v
                .verdicts()
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("verdicts");
            assert_eq!(got.first_seq, job * 4);
            let bad: Vec<usize> = (0..4).filter(|&i| got.results[i].is_err()).collect();
            assert_eq!(bad, vec![job as usize]);
        }
    }
}
