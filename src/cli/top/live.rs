//! The live terminal: a thread scrapes the relay every interval and sends
//! each result; the main thread draws and reads keys. A failed scrape keeps
//! the last figures on screen with the error above them, and the view goes
//! on trying.

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::model::{self, Overview, Scrape};
use super::scrape::{Endpoint, ScrapeError};
use super::view::{self, Screen, Ui};

/// How often keys are looked for between scrapes.
const KEY_POLL: Duration = Duration::from_millis(100);

/// Instrument rows one Page Up / Page Down moves.
const PAGE: usize = 10;

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Leave.
    Quit,
    /// The view changed.
    Redraw,
    /// Nothing.
    Nothing,
}

/// Apply a key to the view. `venues` are the venue ids in row order,
/// `instruments` the number of instrument rows of the venue drilled into.
pub(super) fn key(ui: &mut Ui, k: KeyEvent, venues: &[String], instruments: usize) -> Action {
    if k.kind == KeyEventKind::Release {
        return Action::Nothing;
    }
    let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
    let drilled = ui.venue.is_some();
    let last = |n: usize| n.saturating_sub(1);
    match k.code {
        _ if ctrl_c => return Action::Quit,
        KeyCode::Char('q') => return Action::Quit,
        KeyCode::Esc if !drilled => return Action::Quit,
        KeyCode::Esc | KeyCode::Left | KeyCode::Backspace if drilled => {
            ui.venue = None;
            ui.scroll = 0;
        }
        KeyCode::Enter | KeyCode::Right if !drilled && !venues.is_empty() => {
            ui.selected = ui.selected.min(last(venues.len()));
            ui.venue = Some(venues[ui.selected].clone());
            ui.scroll = 0;
        }
        KeyCode::Up | KeyCode::Char('k') if drilled => ui.scroll = ui.scroll.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') if drilled => {
            ui.scroll = (ui.scroll + 1).min(last(instruments));
        }
        KeyCode::PageUp if drilled => ui.scroll = ui.scroll.saturating_sub(PAGE),
        KeyCode::PageDown if drilled => ui.scroll = (ui.scroll + PAGE).min(last(instruments)),
        KeyCode::Up | KeyCode::Char('k') => ui.selected = ui.selected.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => {
            ui.selected = (ui.selected + 1).min(last(venues.len()));
        }
        _ => return Action::Nothing,
    }
    Action::Redraw
}

/// Scrape every `interval` on a thread of its own until the receiver goes.
fn scraper(endpoint: Endpoint, interval: Duration) -> mpsc::Receiver<Result<Scrape, ScrapeError>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let mut next = Instant::now() + interval;
        loop {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            next = Instant::now() + interval;
            if tx.send(rt.block_on(endpoint.scrape())).is_err() {
                return;
            }
        }
    });
    rx
}

/// The figures on screen.
struct State {
    prev: Option<Scrape>,
    cur: Scrape,
    overview: Overview,
    error: Option<String>,
}

impl State {
    fn update(&mut self, r: Result<Scrape, ScrapeError>) {
        match r {
            Ok(s) => {
                self.prev = Some(std::mem::replace(&mut self.cur, s));
                self.overview = model::overview(self.prev.as_ref(), &self.cur);
                self.error = None;
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    fn instruments(&self, ui: &Ui) -> usize {
        ui.venue
            .as_ref()
            .and_then(|v| self.cur.health.venues.get(v))
            .and_then(|v| v.instruments.as_ref())
            .map_or(0, Vec::len)
    }
}

/// Run the live view until `q`.
pub(super) fn run(
    endpoint: Endpoint,
    interval: Duration,
    first: Scrape,
    ui: Ui,
) -> anyhow::Result<ExitCode> {
    let url = endpoint.base().to_owned();
    let rx = scraper(endpoint, interval);
    let mut terminal = ratatui::try_init()?;
    let result = (|| -> anyhow::Result<()> {
        let overview = model::overview(None, &first);
        let mut state = State {
            prev: None,
            cur: first,
            overview,
            error: None,
        };
        let mut ui = ui;
        let mut dirty = true;
        loop {
            if dirty {
                terminal.draw(|f| {
                    let screen = Screen {
                        url: &url,
                        overview: &state.overview,
                        health: &state.cur.health,
                        error: state.error.as_deref(),
                        interactive: true,
                    };
                    view::render(&screen, &ui, f.area(), f.buffer_mut());
                })?;
                dirty = false;
            }
            if event::poll(KEY_POLL)? {
                match event::read()? {
                    Event::Key(k) => {
                        let venues: Vec<String> = state
                            .overview
                            .venues
                            .iter()
                            .map(|v| v.venue.clone())
                            .collect();
                        let instruments = state.instruments(&ui);
                        match key(&mut ui, k, &venues, instruments) {
                            Action::Quit => return Ok(()),
                            Action::Redraw => dirty = true,
                            Action::Nothing => {}
                        }
                    }
                    Event::Resize(..) => dirty = true,
                    _ => {}
                }
            }
            while let Ok(r) = rx.try_recv() {
                state.update(r);
                dirty = true;
            }
        }
    })();
    ratatui::restore();
    result.map(|()| ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(ui: &mut Ui, code: KeyCode, venues: usize, instruments: usize) -> Action {
        let names: Vec<String> = (0..venues).map(|i| format!("v{i}")).collect();
        key(ui, KeyEvent::from(code), &names, instruments)
    }

    #[test]
    fn arrows_select_enter_drills_and_esc_backs_out_then_quits() {
        let mut ui = Ui::default();
        assert_eq!(press(&mut ui, KeyCode::Up, 3, 0), Action::Redraw);
        assert_eq!(ui.selected, 0);
        press(&mut ui, KeyCode::Down, 3, 0);
        press(&mut ui, KeyCode::Down, 3, 0);
        press(&mut ui, KeyCode::Down, 3, 0);
        assert_eq!(ui.selected, 2);
        press(&mut ui, KeyCode::Enter, 3, 0);
        assert_eq!(ui.venue.as_deref(), Some("v2"));
        press(&mut ui, KeyCode::Down, 3, 5);
        press(&mut ui, KeyCode::PageDown, 3, 5);
        assert_eq!(ui.scroll, 4);
        press(&mut ui, KeyCode::Up, 3, 5);
        assert_eq!((ui.scroll, ui.selected), (3, 2));
        assert_eq!(press(&mut ui, KeyCode::Esc, 3, 5), Action::Redraw);
        assert_eq!((ui.venue.as_deref(), ui.scroll), (None, 0));
        assert_eq!(press(&mut ui, KeyCode::Esc, 3, 0), Action::Quit);
    }

    #[test]
    fn q_and_ctrl_c_quit_anywhere_and_other_keys_do_nothing() {
        let mut ui = Ui {
            venue: Some("v0".into()),
            ..Ui::default()
        };
        assert_eq!(press(&mut ui, KeyCode::Char('x'), 1, 0), Action::Nothing);
        assert_eq!(press(&mut ui, KeyCode::Char('q'), 1, 0), Action::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(key(&mut ui, ctrl_c, &[], 0), Action::Quit);
        let mut empty = Ui::default();
        assert_eq!(press(&mut empty, KeyCode::Enter, 0, 0), Action::Nothing);
    }
}
