//! The miner thread: runs proof of work off the node loop so the loop keeps reading
//! the chain topic, and can cancel the search the moment a rival's block arrives.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::chain::{Mined, Miner, Work};

struct Job {
    id: u64,
    work: Work,
    cancel: Arc<AtomicBool>,
}

/// The outcome of one job; `mined` is None when it was cancelled.
pub struct MineResult {
    pub id: u64,
    pub mined: Option<Mined>,
    pub elapsed: Duration,
}

/// A dedicated thread owning a multi-threaded [`Miner`].
pub struct MinerThread {
    jobs: Option<Sender<Job>>,
    current: Option<Arc<AtomicBool>>,
    thread: Option<JoinHandle<()>>,
}

impl MinerThread {
    pub fn start(threads: usize, results: Sender<MineResult>) -> std::io::Result<Self> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        let thread = std::thread::Builder::new()
            .name("miner".into())
            .spawn(move || run(Miner::new(threads), queue, results))?;
        Ok(MinerThread {
            jobs: Some(jobs),
            current: None,
            thread: Some(thread),
        })
    }

    /// Starts mining `work` (cancelling whatever was being mined).
    pub fn submit(&mut self, id: u64, work: Work) {
        self.cancel();
        let cancel = Arc::new(AtomicBool::new(false));
        self.current = Some(Arc::clone(&cancel));
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job { id, work, cancel });
        }
    }

    /// Stops the current search at once.
    pub fn cancel(&mut self) {
        if let Some(flag) = self.current.take() {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

impl Drop for MinerThread {
    fn drop(&mut self) {
        self.cancel();
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(miner: Miner, queue: Receiver<Job>, results: Sender<MineResult>) {
    for job in queue {
        if job.cancel.load(Ordering::SeqCst) {
            continue;
        }
        let started = Instant::now();
        let mined = miner.mine(&job.work, &job.cancel);
        let result = MineResult {
            id: job.id,
            mined,
            elapsed: started.elapsed(),
        };
        if results.send(result).is_err() {
            return;
        }
    }
}
