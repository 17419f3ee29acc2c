//! Human output: a thread's events as a readable transcript — who posted what,
//! the agent's text as it streams, and how each turn ended. `--json` output does
//! not come through here: it prints the server's event objects untouched.

use std::collections::HashSet;
use std::io::Write;

use tandem_protocol::items;
use tandem_protocol::{Event, EventBody, RawEvent};

/// Renders events one at a time, flushing after each so pipes see them live.
#[derive(Default)]
pub struct Transcript {
    streamed: HashSet<String>,
    mid_line: bool,
}

impl Transcript {
    /// Writes one event in the chosen format: `--json` prints the raw object,
    /// otherwise the parsed event (when it parsed) is rendered for people.
    pub fn write(
        &mut self,
        out: &mut impl Write,
        raw: &RawEvent,
        event: Option<&Event>,
        json: bool,
    ) -> std::io::Result<()> {
        if json {
            out.write_all(raw.get().as_bytes())?;
            out.write_all(b"\n")?;
        } else if let Some(event) = event {
            self.human(out, event)?;
        }
        out.flush()
    }

    fn line(&mut self, out: &mut impl Write, text: &str) -> std::io::Result<()> {
        if self.mid_line {
            out.write_all(b"\n")?;
            self.mid_line = false;
        }
        writeln!(out, "{text}")
    }

    fn human(&mut self, out: &mut impl Write, ev: &Event) -> std::io::Result<()> {
        let imported = if ev.imported { " (imported)" } else { "" };
        match &ev.body {
            EventBody::ThreadStarted { title, .. } => match title {
                Some(t) => self.line(out, &format!("[thread started: {t}]")),
                None => self.line(out, "[thread started]"),
            },
            EventBody::ThreadUpdated { title, shared } => self.line(
                out,
                &format!(
                    "[thread updated: {}{}]",
                    title.as_deref().unwrap_or("(no title)"),
                    if *shared { "" } else { ", not shared" }
                ),
            ),
            EventBody::TurnStarted { input, client, agent, .. } => {
                let who = format!("{client}{imported}");
                self.line(out, &format!("[{who} → {agent}] {input}"))
            }
            EventBody::ItemStarted { item, .. } => {
                // A command shows as soon as it runs; its output and exit
                // status follow when it completes.
                let running = item.extra.get("status").and_then(|s| s.as_str()) == Some("inProgress");
                match item.summary(0) {
                    Some(lines) if running && item.item_type == items::COMMAND_EXECUTION => {
                        lines.iter().try_for_each(|l| self.line(out, l))
                    }
                    _ => Ok(()),
                }
            }
            EventBody::AgentMessageDelta { item_id, delta, .. } => {
                self.streamed.insert(item_id.clone());
                out.write_all(delta.as_bytes())?;
                self.mid_line = !delta.ends_with('\n');
                Ok(())
            }
            EventBody::ItemCompleted { item, .. } => {
                // Live messages were already shown delta by delta; imported ones
                // (and other item types) arrive whole.
                if self.streamed.remove(&item.id) {
                    return Ok(());
                }
                if let Some(lines) = item.summary(8) {
                    for l in lines {
                        self.line(out, &l)?;
                    }
                    return Ok(());
                }
                if item.item_type != items::AGENT_MESSAGE {
                    return Ok(());
                }
                match item.text.as_deref() {
                    Some(text) if !text.is_empty() => self.line(out, text),
                    _ => Ok(()),
                }
            }
            EventBody::TurnCompleted { status, error, .. } => {
                let status = status.as_str();
                match error {
                    Some(e) => self.line(out, &format!("[{status}: {e}]")),
                    None => self.line(out, &format!("[{status}]")),
                }
            }
            EventBody::Unknown => Ok(()),
        }
    }
}

/// Parses a raw event; `None` for one this build cannot read (it is skipped).
pub fn parse(raw: &RawEvent) -> Option<Event> {
    serde_json::from_str(raw.get()).ok()
}
