//! Graceful shutdown: one flag, set by Ctrl-C/SIGTERM or by an embedding program.
//!
//! A node that stops gracefully commits its offsets and leaves the consumer group, so
//! the group hands its partitions to the other nodes at once (Tansu 0.6.0 never
//! reassigns the partitions of a member that vanished without leaving).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cloneable stop signal.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    pub fn new() -> Self {
        Shutdown::default()
    }

    /// A shutdown triggered by Ctrl-C or SIGTERM (installs the process-wide handler).
    pub fn on_signals() -> Result<Self, ctrlc::Error> {
        let shutdown = Shutdown::new();
        let flag = Arc::clone(&shutdown.0);
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
        Ok(shutdown)
    }

    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
