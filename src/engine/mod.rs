//! The mapping engine: from raw venue frames to canonical events, driven
//! entirely by a compiled venue definition.
//!
//! Data flow for one frame: [`decode`] (binary, gzip/deflate → text) →
//! [`json`] (parse once into a borrowed tape) → control rules (acks, pongs,
//! server pings that need a reply, context capture) → routes (`when`
//! conditions) → per-item field expressions ([`expr`]: native fast path or
//! jaq) → [`crate::domain::Event`]s.

pub mod book;
pub mod expr;
pub mod json;
pub mod mapper;
pub mod venue;
