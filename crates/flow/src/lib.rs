//! Flow validation: read what the dataplane did (Hubble flow JSON lines), resolve each end
//! to a snapshot pod, reserved identity or address, judge the flow with the policy model
//! ([`netpol::Engine`]), compare with the dataplane's verdict, and aggregate per hour into
//! the shapes of [`flowtypes`].
//!
//! Memory does not grow with the input: lines are read one at a time into one buffer;
//! decisions are cached per (source identity, destination identity, protocol, port) up to
//! [`Config::cache_limit`]; each hour keeps two Space-Saving summaries of
//! [`Config::counters`] counters ([`topk`]) and the event sample is bounded per class. What
//! grows is one summary per hour of input time, and, when asked for
//! ([`Validator::record_graph`]), one [`graph::Edge`] per distinct (source, destination,
//! protocol, port) with the hours it was seen in.
//!
//! Top lists are exact while an hour has at most `counters` distinct keys
//! (`topExact: true`); beyond that each count over-estimates the true count by at most its
//! `countError`, which is at most (flows of that verdict in the hour) / `counters`, and
//! every key more frequent than that bound is listed.

pub mod error;
pub mod graph;
pub mod html;
pub mod hubble;
pub mod reader;
pub mod resolve;
mod scan;
pub mod synth;
pub mod topk;
pub mod validate;

pub use error::Error;
pub use validate::{classify, observe, validate, Config, Observed, Outcome, Scope, Validator};
