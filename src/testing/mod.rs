//! Test support: a fault-injecting storage backend, direct reads of a store's file, the
//! store invariants, and the bodies of the fuzz targets.
//!
//! Not part of the stable API: it exists so that the crate's integration tests, its
//! fuzz targets and the tests that replay the fuzz corpus share one implementation.

mod crash;
mod disk;
mod fault;
pub mod fuzz;
mod keys;
mod rng;
mod workload;

pub use crash::{CrashCase, CrashReport, run_crash_case};
pub use disk::{
    DiskImage, DiskRecord, check_store_invariants, check_view_values, read_backend, read_file,
};
pub use fault::{FaultBackend, FaultCounters, FaultMode, FaultPlan, FaultTarget, SECTOR};
pub use keys::strings_with_and_without_zero_bytes;
pub use rng::{Rng, seed_from_time};
pub use workload::{
    Workload, check_lossy, check_prefix, check_recovered, check_verify, item_value,
};
