//! Nostr approval requests for the resurrection pool.
//!
//! - [`NostrSettings`]: the `[nostr]` section (and the seed JSON's `nostr`
//!   object): relays, the recipient, the approvers, where the secret key
//!   is (`token_file`, a seed's `secret_key`, or the `token_env` variable,
//!   default `NOSTR_SECRET_KEY`, which the binary applies with
//!   [`NostrSettings::with_env`]: the crate reads no environment), the DM
//!   kind ([`Dm`]: NIP-17 gift wrap by default, NIP-04 kind 4 as an option)
//!   and the deadlines.
//! - [`Relays`]: NIP-01 over WebSocket: publish and await `["OK", id, true]`
//!   within a deadline (one relay's `OK` is enough), read a `REQ` up to
//!   `EOSE`; a relay that fails backs off (doubling, capped) and is skipped
//!   until then.
//! - [`NostrApprovals`]: [`NostrApprovals::request`] sends a signed and
//!   encrypted DM to the recipient and each approver and keeps the request
//!   pending in a state file; [`NostrApprovals::poll`] reads the replies by
//!   subscription (`#p` = our key, since the request) and turns `revive
//!   <name>`, `skip <name>` and `+1` (as a reply to the request) from an
//!   approver into the [`nexus_notify::Decision`]s Telegram gives; expiry
//!   too. [`NostrApprovals::withdraw`] forgets a request answered elsewhere
//!   and says so.
//!
//! Events are built, signed (BIP-340) and encrypted by the `nostr` crate:
//! no cryptography here.
//!
//! # What this crate must never do
//! - Send an unsigned event, or send anything without a secret key (no key:
//!   no [`NostrApprovals`] at all).
//! - Show the secret key: not in a log, an error or a `Debug` output (it is
//!   a `nexus_secret::Secret`).
//! - Accept an answer from a key that is not an approver, from before the
//!   request, or for a request that is no longer pending.
//! - Wait on a relay without a deadline, or read a relay message beyond
//!   [`relay::MAX_MESSAGE`].

mod approval;
mod error;
pub mod relay;
mod settings;

pub use approval::{ApprovalState, NostrApprovals, Pending};
pub use error::Error;
pub use nostr::{Keys, PublicKey};
pub use relay::{Published, Relays};
pub use settings::{Dm, NostrSettings, PubkeyError, parse_pubkey};
