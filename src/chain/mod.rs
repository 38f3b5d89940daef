//! Chain rules (filled in by the chain-core work).
