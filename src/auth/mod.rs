//! Who calls the operator's HTTP endpoints, checked so that a flood of bad requests costs the API server almost
//! nothing: every endpoint is hostile input.
//!
//! - [`jwt`]: the claims of a token read without verifying it, to refuse most bad tokens before any API call
//!   (wrong audience, expired, not bound to a pod).
//! - [`review`]: the API server's TokenReview, bounded in flight (the excess is refused at once), its verdicts
//!   cached by the token's SHA-256 (refusals too, briefly), and limited per source address.
//! - [`access`]: the API server's SubjectAccessReview (may this user read that?), bounded and cached likewise.
//! - [`limiter`]: the per-source token buckets.

pub mod access;
pub mod jwt;
pub mod limiter;
pub mod review;
