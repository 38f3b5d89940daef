//! The node loop.
