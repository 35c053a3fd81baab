//! `ringside top`: the `stat` table refreshed live, as `linkerd viz top`
//! refreshes its own, with the refusals and errors of the last intervals.
//!
//! Scrapes run on a thread of their own and arrive over a channel, so a
//! silent or unreachable admin (a scrape may wait seconds for it) never
//! holds the keyboard: `q` always quits at once. An admin that cannot be
//! reached is shown, and asked again every interval. The terminal goes
//! back to how it was on every way out: `q`, Ctrl-C, SIGINT or SIGTERM
//! from elsewhere, an error (`Restore`'s drop) and a panic (ratatui's
//! hook, installed by `ratatui::try_init`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use super::scrape::{scrape, Scrape};
use super::top_state::Top;
use super::top_view;
use crate::config::TopArgs;

/// How long a key may wait to be read: the UI's reaction time.
const KEY_POLL: Duration = Duration::from_millis(100);

/// Runs until `q`, Ctrl-C or a signal; an error only when the terminal
/// itself fails.
pub fn run(args: &TopArgs) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let scrapes = spawn_scraper(args);
    let mut terminal = ratatui::try_init()?;
    let _restore = Restore;
    let mut top = Top::new(args);
    let mut dirty = true;
    while !stop.load(Ordering::Relaxed) {
        if dirty {
            terminal.draw(|frame| top_view::draw(frame, &top))?;
            dirty = false;
        }
        if event::poll(KEY_POLL)? {
            match event::read()? {
                Event::Key(key) if key.kind == KeyEventKind::Press => {
                    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
                    match key.code {
                        KeyCode::Char('q') | KeyCode::Esc => break,
                        KeyCode::Char('c') if ctrl => break,
                        KeyCode::Char('s') => top.toggle_sort(),
                        _ => {}
                    }
                }
                _ => {}
            }
            dirty = true;
        }
        while let Ok((at, result)) = scrapes.try_recv() {
            top.scraped(at, result);
            dirty = true;
        }
    }
    Ok(())
}

/// Gives the terminal back (cooked mode, main screen) when `run` returns,
/// with or without an error.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// When a scrape answered, and the page or why there is none.
type Scraped = (Instant, Result<Scrape, String>);

/// A scrape every interval, for as long as the UI listens.
fn spawn_scraper(args: &TopArgs) -> mpsc::Receiver<Scraped> {
    let (admin, interval) = (args.admin, args.interval);
    let (sender, scrapes) = mpsc::channel();
    thread::spawn(move || loop {
        let result = scrape(admin).map_err(|err| format!("{err:#}"));
        if sender.send((Instant::now(), result)).is_err() {
            return;
        }
        thread::sleep(interval);
    });
    scrapes
}
