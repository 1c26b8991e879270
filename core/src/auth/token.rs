//! etcd's simple tokens: `<16 letters>.<index of the Authenticate entry>`, held per member.
//!
//! Every member registers a token when it applies the Authenticate entry, so a token works on
//! any member that has applied that far; a member that has not yet makes the request wait
//! (the token names the index to wait for). A token lives [`DEFAULT_TOKEN_TTL`] past its last
//! use. Tokens are not replicated state: a restarted member has none, and clients
//! authenticate again on `invalid auth token`, as with etcd.

use crate::time::{Duration, Instant};
use rand::Rng;
use std::collections::BTreeMap;

/// etcd's `--auth-token-ttl` default: 300 s.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(300);
/// Letters in a token's random part.
const PREFIX_LEN: usize = 16;

/// The tokens a member knows.
#[derive(Clone, Debug, Default)]
pub struct TokenTable {
    /// Token → (user, expiry).
    tokens: BTreeMap<String, (String, Instant)>,
}

/// What a token lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenLookup {
    /// The token belongs to this user.
    User(String),
    /// The token was issued at a log index this member has not applied yet.
    NotYetApplied(u64),
    /// Unknown, expired or malformed.
    Invalid,
}

impl TokenTable {
    /// The index of the Authenticate entry a token names (`<prefix>.<index>`), if well formed.
    pub fn entry_index(token: &str) -> Option<u64> {
        token.split_once('.').and_then(|(_, index)| index.parse().ok())
    }

    /// A fresh random token prefix (16 ASCII letters) from the member's seeded RNG.
    pub fn new_prefix(rng: &mut impl Rng) -> String {
        const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        (0..PREFIX_LEN).map(|_| LETTERS[rng.gen_range(0..LETTERS.len())] as char).collect()
    }

    /// Registers a token for `user` at `now`.
    pub fn assign(&mut self, token: String, user: String, now: Instant) {
        self.tokens.insert(token, (user, now + DEFAULT_TOKEN_TTL));
    }

    /// The user of `token`, given that this member applied up to `applied`; a use extends the
    /// token's life.
    pub fn lookup(&mut self, token: &str, applied: u64, now: Instant) -> TokenLookup {
        let Some(index) = TokenTable::entry_index(token) else {
            return TokenLookup::Invalid;
        };
        match self.tokens.get_mut(token) {
            Some((user, expiry)) if *expiry > now => {
                *expiry = now + DEFAULT_TOKEN_TTL;
                TokenLookup::User(user.clone())
            }
            Some(_) => {
                self.tokens.remove(token);
                TokenLookup::Invalid
            }
            None if index > applied => TokenLookup::NotYetApplied(index),
            None => TokenLookup::Invalid,
        }
    }

    /// Forgets every token of `user`.
    pub fn revoke_user(&mut self, user: &str) {
        self.tokens.retain(|_, (owner, _)| owner != user);
    }

    /// Forgets every token.
    pub fn clear(&mut self) {
        self.tokens.clear();
    }

    /// Forgets expired tokens.
    pub fn sweep(&mut self, now: Instant) {
        self.tokens.retain(|_, (_, expiry)| *expiry > now);
    }

    /// How many tokens are held.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn tokens_live_from_last_use_and_wait_for_their_entry() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let prefix = TokenTable::new_prefix(&mut rng);
        assert_eq!(prefix.len(), 16);
        assert!(prefix.bytes().all(|b| b.is_ascii_alphabetic()));
        let mut table = TokenTable::default();
        let token = format!("{prefix}.7");
        assert_eq!(table.lookup(&token, 6, Instant::ZERO), TokenLookup::NotYetApplied(7));
        assert_eq!(table.lookup(&token, 7, Instant::ZERO), TokenLookup::Invalid);
        assert_eq!(table.lookup("garbage", 100, Instant::ZERO), TokenLookup::Invalid);
        table.assign(token.clone(), "alice".into(), Instant::ZERO);
        let at = |secs| Instant::ZERO + Duration::from_secs(secs);
        assert_eq!(table.lookup(&token, 7, at(299)), TokenLookup::User("alice".into()));
        assert_eq!(table.lookup(&token, 7, at(598)), TokenLookup::User("alice".into()));
        assert_eq!(table.lookup(&token, 7, at(898)), TokenLookup::Invalid, "300 s unused");
        table.assign(token.clone(), "alice".into(), at(900));
        table.assign("x.8".into(), "bob".into(), at(900));
        table.revoke_user("alice");
        assert_eq!(
            (table.len(), table.lookup("x.8", 8, at(900))),
            (1, TokenLookup::User("bob".into()))
        );
        table.sweep(at(2000));
        assert!(table.is_empty());
    }
}
