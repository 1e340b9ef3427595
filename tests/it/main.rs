//! The integration tests, in one binary (each file is a module): one link
//! of the crate instead of one per file. `tests/book_alloc.rs` stays a
//! binary of its own, as it installs a counting global allocator.

// Test helpers are `pub` for each other across modules of this one binary.
#![allow(unreachable_pub)]

#[path = "../common/mod.rs"]
mod common;

mod accounting;
mod batched;
mod book_integrity;
mod book_sync_config;
mod captures;
mod checksum_scales;
mod cli_errors;
mod cluster;
mod consumers;
mod consumers_batch;
mod consumers_faults;
mod consumers_tools;
mod deploy;
mod deployment_docs;
mod direct_writer;
mod e2e_books;
mod e2e_compressed;
mod e2e_relay;
mod e2e_reload;
mod e2e_shutdown;
mod fast_path_agreement;
mod first_hour;
mod fixtures;
mod frame_compression;
mod fuzz_frames;
mod handover;
mod hostile_jq;
mod instruments;
mod jetstream_refusing;
mod liveness;
mod log_flood;
mod memory_flood;
mod nats_security;
mod no_venue_code;
mod record;
mod relay_config;
mod rest_budget;
mod schema;
mod soak;
mod stream_ownership;
mod time_warnings;
mod top;
mod two_relays;
mod venue_config_errors;
mod venue_faults;
mod wire_protobuf;
