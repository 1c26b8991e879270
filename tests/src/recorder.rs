//! What the clients did and saw, in the simulator's own terms so that its checkers judge a
//! real run: the operation [`History`] (invoke and complete times, unknown outcomes), every
//! lease's [`LeaseLife`] and every [`WatchSession`]. Times are nanoseconds since the run
//! started, on the one monotonic clock all processes of this machine share.

use std::collections::BTreeMap;
use std::sync::Mutex;
use stead_core::time::Instant;
use stead_sim::check_lease::LeaseLife;
use stead_sim::check_watch::WatchSession;
use stead_sim::history::{History, OpKind, Outcome};

/// The shared record of one run.
pub struct Recorder {
    start: std::time::Instant,
    history: Mutex<History>,
    leases: Mutex<Vec<LeaseLife>>,
    /// Every watch session, and whether it is still open.
    sessions: Mutex<Vec<(WatchSession, bool)>>,
    /// Every error a client call got, by message.
    errors: Mutex<BTreeMap<String, usize>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty record whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            start: std::time::Instant::now(),
            history: Mutex::default(),
            leases: Mutex::default(),
            sessions: Mutex::default(),
            errors: Mutex::default(),
        }
    }

    /// The time now on the run's clock.
    pub fn now(&self) -> Instant {
        Instant::from_nanos(self.start.elapsed().as_nanos() as u64)
    }

    /// Records that `client` sends `kind`; the id to complete it with.
    pub fn invoke(&self, client: usize, kind: OpKind) -> usize {
        let mut history = self.history.lock().expect("the recorder is not poisoned");
        history.invoke(client, kind, self.now())
    }

    /// Records how operation `id` ended (for an unknown outcome: when the client gave up).
    pub fn complete(&self, id: usize, outcome: Outcome) {
        let mut history = self.history.lock().expect("the recorder is not poisoned");
        history.complete(id, outcome, self.now());
    }

    /// Counts an error a client call got.
    pub fn error(&self, message: &str) {
        let mut errors = self.errors.lock().expect("the recorder is not poisoned");
        *errors.entry(message.to_string()).or_default() += 1;
    }

    /// Every error client calls got, by message.
    pub fn errors(&self) -> BTreeMap<String, usize> {
        self.errors.lock().expect("the recorder is not poisoned").clone()
    }

    /// Keeps a lease's life (once the client is done with it).
    pub fn lease(&self, life: LeaseLife) {
        self.leases.lock().expect("the recorder is not poisoned").push(life);
    }

    /// Opens a watch session; its index for [`Recorder::update_session`].
    pub fn open_session(&self, session: WatchSession) -> usize {
        let mut sessions = self.sessions.lock().expect("the recorder is not poisoned");
        sessions.push((session, true));
        sessions.len() - 1
    }

    /// Changes session `index` (and says whether it is still open).
    pub fn update_session(&self, index: usize, change: impl FnOnce(&mut WatchSession) -> bool) {
        let mut sessions = self.sessions.lock().expect("the recorder is not poisoned");
        let (session, open) = &mut sessions[index];
        *open = change(session);
    }

    /// The last revision every open session has received (`None`: no open session).
    pub fn slowest_open_session(&self) -> Option<i64> {
        let sessions = self.sessions.lock().expect("the recorder is not poisoned");
        let open = sessions.iter().filter(|(_, open)| *open);
        open.map(|(s, _)| s.events.last().map_or(s.start - 1, |e| e.kv.mod_revision)).min()
    }

    /// Everything recorded; sessions still open are marked open at `revision`.
    pub fn finish(&self, revision: i64) -> (History, Vec<LeaseLife>, Vec<WatchSession>) {
        let history = self.history.lock().expect("the recorder is not poisoned").clone();
        let leases = self.leases.lock().expect("the recorder is not poisoned").clone();
        let sessions = self.sessions.lock().expect("the recorder is not poisoned");
        let sessions = sessions.iter().map(|(session, open)| {
            let mut session = session.clone();
            if *open {
                session.open_at = Some(revision);
            }
            session
        });
        (history, leases, sessions.collect())
    }
}
