//! What a person sees: a command run in a detached tmux session of a fixed size, its screen
//! captured as text while it runs and after it ends.
#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of its own (its own socket), killed on drop.
pub struct Screen {
    socket: String,
}

impl Screen {
    /// Starts `command` (a shell command line) in a 120x40 terminal. The shell stays after
    /// the command so the last screen can be read.
    pub fn start(command: &str) -> Screen {
        let socket = format!(
            "tare-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let screen = Screen { socket };
        let line = format!("{command}; echo EXIT=$?; sleep 600");
        let status = screen
            .tmux()
            .args([
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "40",
                "sh",
                "-c",
                &line,
            ])
            .env_remove("NO_COLOR")
            .status()
            .expect("tmux (scripts/test.sh installs it)");
        assert!(status.success(), "tmux new-session failed");
        screen
    }

    fn tmux(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket]);
        cmd
    }

    /// The visible screen, as text.
    pub fn capture(&self) -> String {
        let out = self
            .tmux()
            .args(["capture-pane", "-p"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Captures until `check` accepts the screen (within `limit`), and returns that screen.
    pub fn wait_for(&self, what: &str, limit: Duration, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.capture();
            if check(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the command to end and returns the last screen and its exit code line.
    pub fn finish(&self, limit: Duration) -> String {
        self.wait_for("the command to end", limit, |s| s.contains("EXIT="))
    }

    /// Runs a command that moves blobs: waits for a transfer bar under a line containing
    /// `header`, then for the command to succeed with every bar cleared. Returns the screen
    /// with the bar and the last one.
    pub fn watch_transfer(command: &str, header: &str) -> (String, String) {
        let screen = Screen::start(command);
        let moving = screen.wait_for("a transfer bar", Duration::from_secs(60), |s| {
            !bar_lines(s).is_empty()
        });
        assert!(
            moving.lines().any(|l| l.contains(header)),
            "{header:?} above the bars:\n{moving}"
        );
        let done = screen.finish(Duration::from_secs(120));
        assert!(done.contains("EXIT=0"), "{done}");
        assert!(bar_lines(&done).is_empty(), "bars cleared:\n{done}");
        (moving, done)
    }
}

/// The screen lines that are transfer bars: `sha256:… [===>   ] 1.00 MiB / 3.00 MiB …`.
pub fn bar_lines(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .filter(|l| l.contains(" [") && l.contains("] ") && l.contains(" / "))
        .collect()
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").status();
    }
}
