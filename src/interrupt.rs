//! Ctrl-C during `launch`: the first SIGINT asks the launch to stop (the CLI then cleans up what
//! the interrupted attempt created and exits 130); a second one exits at once, saying what was
//! left behind. Clusters already up stay up and are named, with the command that removes them.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The exit code of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

/// A launch stopped by Ctrl-C; `message` says what was cleaned up and what was left.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: {message}")]
pub struct Interrupted {
    /// What was cleaned up and what was left (with the commands that remove it).
    pub message: String,
}

/// Watches SIGINT for one command. [`Interrupts::install`] must run inside a tokio runtime.
#[derive(Debug, Clone)]
pub struct Interrupts {
    first: watch::Receiver<bool>,
    left: Arc<Mutex<String>>,
}

impl Interrupts {
    /// Starts watching: the first Ctrl-C flips [`Interrupts::requested`]; the second prints
    /// what [`Interrupts::leaving`] last said is left and exits with code 130 at once.
    pub fn install(runtime: &tokio::runtime::Runtime) -> Self {
        let (tx, first) = watch::channel(false);
        let left = Arc::new(Mutex::new(String::new()));
        let said = left.clone();
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                return; // no signal handling here: Ctrl-C keeps its default effect
            }
            let _ = tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                let left = said.lock().map(|s| s.clone()).unwrap_or_default();
                eprintln!(
                    "\ninterrupted again: exiting now{}",
                    if left.is_empty() {
                        String::new()
                    } else {
                        format!("; left behind: {left}")
                    }
                );
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
        });
        Interrupts { first, left }
    }

    /// Whether Ctrl-C was pressed.
    pub fn requested(&self) -> bool {
        *self.first.borrow()
    }

    /// Resolves when Ctrl-C is pressed (at once if it was already).
    pub async fn wait(&self) {
        let mut first = self.first.clone();
        let _ = first.wait_for(|pressed| *pressed).await;
    }

    /// Records what a second Ctrl-C would leave behind (said when it comes).
    pub fn leaving(&self, what: impl Into<String>) {
        if let Ok(mut left) = self.left.lock() {
            *left = what.into();
        }
    }
}
