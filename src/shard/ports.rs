//! `PortPolicies`: a shard's copy of the inbound policy of each port in
//! use, under Linkerd's policy controller (`discovery::inbound`).
//!
//! The first connection to a port asks the control thread for the port's
//! receiver and waits, bounded by `FIRST_ANSWER_WAIT`, for the port to be
//! settled (the service answered, or could not be asked); the port's
//! `PortPolicy` then holds the current answer in a shard-local cell,
//! which a task of the shard refreshes on each change. A connection or a
//! request reads that cell: no lock, no atomic, no allocation.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::discovery::inbound::{InboundHandle, ServerPolicy, MAX_PORTS};
use crate::io::{Deadlines, Shutdown};

/// How long a port's first connection waits for its policy: the control
/// thread settles a port at its first answer or first failed call, so
/// this bounds only a control plane that hangs.
pub const FIRST_ANSWER_WAIT: Duration = Duration::from_secs(1);

/// One port's current policy on this shard.
pub struct PortPolicy {
    current: RefCell<Arc<ServerPolicy>>,
    /// Fired (and replaced) at each new answer: what an open connection
    /// waits on to be judged again.
    changed: RefCell<Rc<Shutdown>>,
}

impl PortPolicy {
    fn new(policy: Arc<ServerPolicy>) -> PortPolicy {
        PortPolicy {
            current: RefCell::new(policy),
            changed: RefCell::new(Rc::new(Shutdown::new())),
        }
    }

    /// Fires at the next new answer.
    pub fn next_change(&self) -> Rc<Shutdown> {
        self.changed.borrow().clone()
    }

    /// Runs `judge` on the policy as now, without cloning it.
    pub fn with<T>(&self, judge: impl FnOnce(&ServerPolicy) -> T) -> T {
        judge(&self.current.borrow())
    }
}

/// The ports of this shard.
#[derive(Default)]
pub struct PortPolicies {
    /// Where ports are asked for: Linkerd mode's control thread; `None`:
    /// no policy controller, `[inbound] authorize` applies.
    handle: Option<InboundHandle>,
    ports: RefCell<HashMap<u16, Rc<PortPolicy>>>,
}

impl PortPolicies {
    pub fn new(handle: Option<InboundHandle>) -> PortPolicies {
        PortPolicies {
            handle,
            ports: RefCell::default(),
        }
    }

    /// Whether a policy controller decides inbound ports.
    pub fn active(&self) -> bool {
        self.handle.is_some()
    }

    /// The known policy of `port`, without waiting.
    fn known(&self, port: u16) -> Option<Rc<PortPolicy>> {
        self.ports.borrow().get(&port).cloned()
    }

    /// `port`'s policy, asked for on its first connection; `None` when no
    /// policy controller decides, or the control thread is gone.
    pub async fn get(&self, port: u16, deadlines: &Deadlines) -> Option<Rc<PortPolicy>> {
        let handle = self.handle.as_ref()?;
        if let Some(known) = self.known(port) {
            return Some(known);
        }
        let asked = deadlines
            .timeout(FIRST_ANSWER_WAIT, handle.lookup(port))
            .await;
        let mut receiver = match asked {
            Some(Ok(receiver)) => receiver,
            _ => return None,
        };
        let settled = receiver.wait_for(|answer| answer.settled);
        let _ = deadlines.timeout(FIRST_ANSWER_WAIT, settled).await;
        // Another connection may have asked meanwhile: one copy per port.
        if let Some(known) = self.known(port) {
            return Some(known);
        }
        let policy = Rc::new(PortPolicy::new(receiver.borrow_and_update().policy.clone()));
        if self.ports.borrow().len() < MAX_PORTS {
            self.ports.borrow_mut().insert(port, policy.clone());
        }
        let following = Rc::downgrade(&policy);
        crate::io::spawn(async move {
            while receiver.changed().await.is_ok() {
                let Some(port) = following.upgrade() else {
                    return;
                };
                *port.current.borrow_mut() = receiver.borrow_and_update().policy.clone();
                let fired = port.changed.replace(Rc::new(Shutdown::new()));
                fired.trigger();
            }
        });
        Some(policy)
    }
}
