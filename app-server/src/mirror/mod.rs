//! Mirrors of Claude Code and Codex sessions: the allowlist that says which
//! session files are shared, the conversion of their records into Tandem
//! events, and the follower that tails exactly the listed files into their
//! mirrored threads (DESIGN §8). Nothing here reads a file that is not listed.

pub mod allowlist;
pub mod convert;
pub mod follow;
pub mod locate;
