//! A stream's session ending under it: at the session's expiry, or when it is revoked.
//!
//! A token checked when a stream opens says nothing about an hour later, so a stream opened
//! with a session that expires (or is revoked, e.g. on logout) ends then, with a final
//! `event: session_end` whose data says why (`{"error": "session_expired" | "session_revoked",
//! "message"}`, the shape of an error event): the client knows to log in again rather than
//! reconnect with the same credentials.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::time::{Instant, Sleep};

use super::RevocationWatch;
use crate::sse::session_end_frame;

/// Why a session's stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Expired,
    Revoked,
}

/// What ends a stream with its session.
#[derive(Debug)]
pub(crate) struct SessionEnd {
    expiry: Option<Pin<Box<Sleep>>>,
    revoked: Option<RevocationWatch>,
}

impl SessionEnd {
    /// `None` when the session neither expires nor can be revoked.
    pub fn new(expires_at: Option<SystemTime>, revoked: Option<RevocationWatch>) -> Option<Self> {
        let expiry = expires_at.map(|at| {
            let left = at.duration_since(SystemTime::now()).unwrap_or_default();
            Box::pin(tokio::time::sleep_until(Instant::now() + left))
        });
        (expiry.is_some() || revoked.is_some()).then_some(Self { expiry, revoked })
    }

    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Reason> {
        if let Some(w) = self.revoked.as_mut() {
            if w.revoked.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Reason::Revoked);
            }
        }
        if let Some(sleep) = self.expiry.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Reason::Expired);
            }
        }
        Poll::Pending
    }
}

/// The last event of a stream whose session ended.
pub(crate) fn frame(reason: Reason) -> Bytes {
    match reason {
        Reason::Expired => {
            session_end_frame("session_expired", "the session expired; log in again")
        }
        Reason::Revoked => {
            session_end_frame("session_revoked", "the session was revoked; log in again")
        }
    }
}
