//! Opaque TCP forwarding: the splice and copy pumps (`pump`, `pipe`) and
//! the two-way `tunnel` with its half-close rules. It knows no HTTP and
//! no routes: the connection stage (`proxy/`) decides what is opaque and
//! hands over two connected sockets.

mod pipe;
mod pump;
mod tunnel;

pub use pump::PumpResources;
pub use tunnel::{tunnel, Closed, End, IdleTimeout};
