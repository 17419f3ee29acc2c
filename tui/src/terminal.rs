//! The real terminal: raw mode, alternate screen, mouse wheel and bracketed
//! paste on entry; all of it undone on exit, on panic, and on SIGTERM (the
//! runtime turns SIGTERM into a normal exit).

use std::io::stdout;

use crossterm::event::{DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture};
use crossterm::execute;
use ratatui::DefaultTerminal;

/// Sets the terminal up for the TUI; also installs a panic hook that restores it.
pub fn enter() -> std::io::Result<DefaultTerminal> {
    let terminal = ratatui::try_init()?;
    // ratatui's hook restores raw mode and the screen; undo ours first.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(stdout(), DisableMouseCapture, DisableBracketedPaste);
        previous(info);
    }));
    execute!(stdout(), EnableMouseCapture, EnableBracketedPaste)?;
    Ok(terminal)
}

/// Gives the terminal back as it was.
pub fn leave() {
    let _ = execute!(stdout(), DisableMouseCapture, DisableBracketedPaste);
    ratatui::restore();
}
