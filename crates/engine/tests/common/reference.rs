//! The reference model (written next).
