//! A terminal for the tests of `ringside top`: a detached tmux session of
//! a fixed size on a tmux server of the test's own (`tmux -S`, its socket
//! in a temporary directory, so that tests never share a server and leave
//! no socket behind), running an interactive shell a test types into
//! (`send-keys`) and reads the screen of (`capture-pane`). The server is
//! killed when the `Tmux` drops.

use std::process::Command;
use std::thread;
use std::time::Instant;

use super::{TempDir, WAIT_LIMIT, WAIT_STEP};

/// The shell's prompt, set so that a test can tell the shell is back.
pub const PROMPT: &str = "ready$ ";

pub struct Tmux {
    socket: String,
    /// Holds the socket; dropped after the server is killed.
    _dir: TempDir,
}

impl Tmux {
    /// A `width` x `height` terminal running `sh`, waiting at its prompt.
    pub fn start(width: u16, height: u16) -> Tmux {
        let dir = TempDir::new();
        let tmux = Tmux {
            socket: dir.join("tmux"),
            _dir: dir,
        };
        let (width, height) = (width.to_string(), height.to_string());
        tmux.run(&["new-session", "-d", "-x", &width, "-y", &height, "sh"]);
        // dash sets its own PS1 when run as root, whatever the environment.
        // The keys may come before its first prompt (`# `), which then
        // starts the line the new prompt is drawn on.
        tmux.send_keys(&[&format!("PS1='{PROMPT}'"), "Enter"]);
        let prompt = |screen: &str| {
            let mut lines = screen.lines();
            lines.any(|l| l.ends_with(PROMPT.trim_end()) && !l.contains("PS1"))
        };
        tmux.wait_for("the shell's prompt", prompt);
        tmux
    }

    /// Types `keys` (tmux key names: `Enter`, `C-c`, or text).
    pub fn send_keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// The visible screen, one line per row.
    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "0"])
    }

    /// Whether the pane shows the alternate screen (a full-screen program
    /// runs, or one left without restoring the terminal).
    pub fn alternate_screen(&self) -> bool {
        self.run(&["display-message", "-p", "-t", "0", "#{alternate_on}"])
            .trim()
            == "1"
    }

    /// Polls the screen until `ready` holds, for at most `WAIT_LIMIT`;
    /// panics with `what` and the last screen otherwise.
    pub fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            thread::sleep(WAIT_STEP);
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .args(["-S", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs (apt-get install tmux)");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-S", &self.socket, "kill-server"])
            .output();
    }
}
