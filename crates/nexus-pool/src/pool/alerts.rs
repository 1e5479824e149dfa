//! Alertmanager's notifications ([`crate::alertmanager`]) as the pool's
//! loop takes them in: each becomes an observation for the incident
//! engine, kept in the pool state like the agents' own (a restart sends
//! it again), and is handed to the Gitea channel at once.

use super::Pool;
use crate::alertmanager::{AlertInbox, Notification};

impl Pool {
    /// Takes Alertmanager's notifications from `inbox` (the receiver's
    /// other end, served by `http::serve`) in [`Pool::idle`].
    pub fn receive_alerts(&mut self, inbox: AlertInbox) {
        self.alert_inbox = Some(inbox);
    }

    /// One notification: an observation for the engine, sent at once.
    pub(super) fn take_notification(&mut self, n: &Notification) {
        let check = n.check();
        if self.incidents.is_none() {
            tracing::warn!(
                "alertmanager: {} ({} alert(s)) received, but no Gitea is configured ([incident]): no issue",
                check.summary,
                n.alerts.len()
            );
            return;
        }
        tracing::info!("alertmanager: {}", check.summary);
        self.state.observations.add(check);
        self.dirty = true;
        self.dispatch(false);
        self.publish_channels();
    }
}

/// Waits for Alertmanager's next notification; never, without a receiver.
pub(super) async fn next_notification(inbox: &mut Option<AlertInbox>) -> Option<Notification> {
    match inbox {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
