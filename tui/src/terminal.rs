//! The real terminal: raw mode, alternate screen, mouse wheel and bracketed
//! paste on entry; all of it undone on exit, on panic, and on SIGTERM (the
//! runtime turns SIGTERM into a normal exit).

use std::io::{Write, stdout};
use std::path::PathBuf;

use crossterm::event::{DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture};
use crossterm::execute;
use ratatui::DefaultTerminal;

/// Sets the terminal up for the TUI and installs a panic hook: a panic of the
/// UI thread restores the terminal before it is reported; a panic in a
/// background task (which only ends that task — an agent's panic fails its
/// turn) is written to `panic_log` instead of over the screen.
pub fn enter(panic_log: PathBuf) -> std::io::Result<DefaultTerminal> {
    let terminal = ratatui::try_init()?;
    // ratatui's hook restores raw mode and the screen, then reports.
    let restore_and_report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some("main") {
            let _ = execute!(stdout(), DisableMouseCapture, DisableBracketedPaste);
            restore_and_report(info);
        } else {
            if let Some(dir) = panic_log.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&panic_log) {
                let _ = writeln!(f, "{info}\n{}", std::backtrace::Backtrace::force_capture());
            }
        }
    }));
    execute!(stdout(), EnableMouseCapture, EnableBracketedPaste)?;
    Ok(terminal)
}

/// Gives the terminal back as it was.
pub fn leave() {
    let _ = execute!(stdout(), DisableMouseCapture, DisableBracketedPaste);
    ratatui::restore();
}
